import type { Config } from '../config/load.js';
import type { Logger } from '../log.js';
import { AmqpTransport } from './amqp.js';
import { RedisTransport } from './redis.js';
import { loadTlsOptions } from './tls.js';
import type { BrokerTransport, TransportObserver } from './transport.js';
import { randomUUID } from 'node:crypto';

/**
 * Builds the transport the broker URL asks for, with every setting taken from the config. The
 * TLS files are read here, once: an unreadable one throws a BrokerTlsError naming its key.
 */
export function createTransport(config: Config, observer: TransportObserver, logger: Logger): BrokerTransport {
  const reconnect = { initialMs: config.reconnect.initial_delay_seconds * 1000, maxMs: config.reconnect.max_delay_seconds * 1000 };
  const broker = config.broker;
  const tls = broker.tls ? { tls: loadTlsOptions(config.broker_tls) } : {};
  if (broker.kind === 'amqp') {
    return new AmqpTransport(
      {
        url: broker.url.reveal(),
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
        ...tls,
      },
      observer,
      logger.child({ component: 'amqp' }),
    );
  }
  const options = config.broker_transport_options;
  const endpoint = broker.sentinels
    ? {
        sentinels: [...broker.sentinels],
        masterName: options.master_name ?? '',
        ...(options.sentinel_username !== undefined ? { sentinelUsername: options.sentinel_username } : {}),
        ...(options.sentinel_password !== undefined ? { sentinelPassword: options.sentinel_password.reveal() } : {}),
      }
    : { host: broker.node!.host, port: broker.node!.port };
  return new RedisTransport(
    {
      ...endpoint,
      db: broker.db,
      tls: broker.tls,
      ...(tls.tls ? { tlsOptions: tls.tls } : {}),
      ...(broker.username !== undefined ? { username: broker.username } : {}),
      ...(broker.password !== undefined ? { password: broker.password.reveal() } : {}),
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
