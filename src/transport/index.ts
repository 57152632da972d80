import type { Config } from '../config/load.js';
import type { Logger } from '../log.js';
import { AmqpTransport } from './amqp.js';
import { AmqpTaskPublisher } from './amqp/task-publisher.js';
import { RedisTransport } from './redis.js';
import { RedisTaskPublisher } from './redis/task-publisher.js';
import { brokerConnections } from './connections.js';
import type { TaskPublisher } from './task-publisher.js';
import type { BrokerTransport, TransportObserver } from './transport.js';
import { randomUUID } from 'node:crypto';

export { brokerConnections, type AmqpServer, type BrokerConnections } from './connections.js';
export { openConnection, closeModel } from './amqp/connection.js';
export { OnDemandRedis } from './redis/on-demand.js';
export { openSharedRedis } from './redis/shared-client.js';
export type { RedisServer } from './redis/client-options.js';
export { PublishUnavailableError, PublishUnconfirmedError, type TaskMessage, type TaskPublisher } from './task-publisher.js';
export { explainTlsError } from './tls.js';

/**
 * Builds the transport the broker URL asks for, with every setting taken from the config and the
 * broker reached as every other connection reaches it (./connections.ts): an unreadable TLS file
 * throws a BrokerTlsError naming its key.
 */
export function createTransport(config: Config, observer: TransportObserver, logger: Logger): BrokerTransport {
  const reconnect = { initialMs: config.reconnect.initial_delay_seconds * 1000, maxMs: config.reconnect.max_delay_seconds * 1000 };
  const broker = brokerConnections(config).broker;
  if (broker.kind === 'amqp') {
    return new AmqpTransport(
      {
        ...broker.server,
        eventQueue: {
          name: config.events.queue_name ?? `celeryev.${randomUUID()}`,
          messageTtlMs: Math.round(config.events.queue_message_ttl_seconds * 1000),
          expiresMs: Math.round(config.events.queue_expires_seconds * 1000),
          prefetch: config.events.prefetch,
          // A fixed name is chosen to resume after a restart: the queue must not vanish with us.
          autoDelete: config.events.queue_name === undefined,
        },
        maxMessageBytes: config.events.max_message_bytes,
        heartbeatSeconds: config.events.broker_heartbeat_seconds,
        reconnect,
        connectTimeoutMs: 10_000,
        readPacingMs: config.events.read_pacing_ms,
      },
      observer,
      logger.child({ component: 'amqp' }),
    );
  }
  const options = config.broker_transport_options;
  return new RedisTransport(
    {
      ...broker.server,
      globalKeyprefix: options.global_keyprefix,
      prioritySteps: [...options.priority_steps],
      sep: options.sep,
      maxMessageBytes: config.events.max_message_bytes,
      maxBacklogBytes: config.events.max_backlog_bytes,
      healthCheckSeconds: config.events.broker_heartbeat_seconds,
      reconnect,
      connectTimeoutMs: 10_000,
      readPacingMs: config.events.read_pacing_ms,
    },
    observer,
    logger.child({ component: 'redis' }),
  );
}

/** Task submission to the configured broker, on a connection of its own opened like every other. */
export function createTaskPublisher(config: Config, logger: Logger): TaskPublisher {
  const broker = brokerConnections(config).broker;
  if (broker.kind === 'amqp') return new AmqpTaskPublisher(broker.server, config.tasks.submit.create_missing_queues, logger);
  const o = config.broker_transport_options;
  return new RedisTaskPublisher(
    broker.server,
    { globalKeyprefix: o.global_keyprefix, db: broker.server.db, prioritySteps: [...o.priority_steps], sep: o.sep },
    logger,
  );
}
