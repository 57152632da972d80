import type { Logger } from '../log.js';
import type { TransportObserver } from './transport.js';

/** Connection state as readiness, self-telemetry and the console see it. */
export interface BrokerStatus {
  connected: boolean;
  subscribed: boolean;
  reconnects: number;
  lastError?: string;
  /** When (ms) `connected` last changed: "reconnecting since 03:12" on the console. */
  since?: number;
  /** AMQP only, once subscribed: events read by the lean delivery path (false: amqplib's own). */
  leanDelivery?: boolean;
}

/** Keeps `status` up to date from the transport's connection events, and logs them. */
export function brokerStatusObserver(
  status: BrokerStatus,
  logger: Logger,
  brokerDisplay: string,
  now: () => number = Date.now,
): TransportObserver {
  return {
    connected: () => {
      if (!status.connected) status.since = now();
      status.connected = true;
      status.lastError = undefined;
      logger.info({ broker: brokerDisplay }, 'broker connected');
    },
    disconnected: (error) => {
      if (status.connected) logger.warn({ err: error.message }, 'broker connection lost');
      if (status.connected || status.since === undefined) status.since = now();
      status.connected = false;
      status.subscribed = false;
      status.lastError = error.message;
    },
    reconnecting: (attempt, delayMs) => {
      status.reconnects++;
      logger.info({ attempt, delayMs }, 'reconnecting to broker');
    },
    // The transport itself warns when the lean path cannot be installed; this keeps the metric.
    leanDelivery: (active) => {
      status.leanDelivery = active;
    },
  };
}
