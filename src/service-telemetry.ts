import type { Logger } from './log.js';
import type { CeleryMetrics } from './metrics/celery-metrics.js';
import type { SelfTelemetrySource } from './metrics/self-metrics.js';
import type { EventProcessor } from './exporter/event-processor.js';
import type { QueueCollector } from './exporter/queue-collector.js';
import type { InFlightTasks } from './state/in-flight-tasks.js';
import type { WorkerRegistry } from './state/workers.js';
import type { TransportObserver } from './transport/transport.js';

/** Connection state as readiness and self-telemetry see it. */
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

/** The modules self-telemetry asks at scrape time. */
export interface SelfTelemetryParts {
  readonly processor: EventProcessor;
  readonly tasks: InFlightTasks;
  readonly workers: WorkerRegistry;
  readonly queues: QueueCollector;
  readonly celeryMetrics: CeleryMetrics;
  readonly status: BrokerStatus;
  isReady(): boolean;
}

/** What self-telemetry reads at scrape time, each answer from the module that owns it. */
export function selfTelemetrySource(
  p: SelfTelemetryParts,
  workersWithoutTaskEvents: () => number,
  persistedRowsSkipped: SelfTelemetrySource['persistedRowsSkipped'],
): SelfTelemetrySource {
  return {
    ingest: () => p.processor.counts,
    broker: () => ({
      ready: p.isReady(),
      reconnects: p.status.reconnects,
      ...(p.status.leanDelivery !== undefined ? { leanDelivery: p.status.leanDelivery } : {}),
    }),
    tracked: () => ({ tasks: p.tasks.size, workers: p.workers.size, taskEvictions: p.tasks.evictions }),
    queueLengthErrors: () => p.queues.errors,
    labelOverflow: () => [
      ...[p.processor.names, p.processor.hostnames, p.processor.queues, p.processor.exceptions].map((l): [string, number] => [
        l.label,
        l.overflowed,
      ]),
      ['series', p.celeryMetrics.tasks.overflowed],
    ],
    workerClockSkew: () =>
      p.workers
        .alive()
        .filter((w) => w.clockSkewSeconds !== undefined)
        .map((w): [string, number] => [w.hostname, w.clockSkewSeconds!]),
    workersWithoutTaskEvents,
    persistedRowsSkipped,
  };
}
