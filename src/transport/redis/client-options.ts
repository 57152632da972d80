import type { RedisOptions } from 'ioredis';
import type { BrokerTlsOptions } from '../tls.js';
import { GuardedStandaloneConnector } from './connector.js';

/** What the Redis transport is told, and how every connection to a Redis server is configured in ioredis. */

export interface RedisDirectEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface RedisSentinelEndpoint {
  readonly sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>;
  /** kombu's `master_name` transport option. */
  readonly masterName: string;
  /** Sentinel's own AUTH (kombu's `sentinel_kwargs`), apart from the master's; revealed by the caller. */
  readonly sentinelUsername?: string;
  readonly sentinelPassword?: string;
}

/**
 * Where one Redis server is and how to log in: the broker, or another Redis URL the config names
 * beside it (result backend, shared remediation state). Every connection to it is opened with
 * these, through redisServerOptions, so none can drift from another (../connections.ts builds them).
 */
export type RedisServer = (RedisDirectEndpoint | RedisSentinelEndpoint) & RedisLogin;

export interface RedisLogin {
  readonly db: number;
  /** `rediss://`: connect with TLS, with `tlsOptions` (CA, client certificate, name, verification). */
  readonly tls: boolean;
  readonly tlsOptions?: BrokerTlsOptions;
  readonly username?: string;
  /** Already revealed from its Secret by the caller; never logged here. */
  readonly password?: string;
}

export interface RedisConnectionSettings extends RedisLogin {
  /** kombu `global_keyprefix`, `priority_steps` and `sep`: must match the workers' options. */
  readonly globalKeyprefix: string;
  readonly prioritySteps: readonly number[];
  readonly sep: string;
  readonly maxMessageBytes: number;
  /**
   * Messages read off the socket but not yet processed may hold this many bytes; beyond it new
   * ones are dropped and counted ('backlog_full'). Default 256 MiB.
   */
  readonly maxBacklogBytes?: number;
  /** A connection with no traffic and no PING answer for this long is reconnected. */
  readonly healthCheckSeconds: number;
  readonly reconnect: { readonly initialMs: number; readonly maxMs: number };
  readonly connectTimeoutMs: number;
  /** Pause between reads of the events socket at low rates, in ms (../read-pacing.ts); 0: off. */
  readonly readPacingMs: number;
  /** CLIENT SETNAME base, `<name>-events` etc., so operators can find us in CLIENT LIST. */
  readonly clientName?: string;
  /** Broadcasts collecting replies at the same time (one blocking connection each); default 8. */
  readonly maxConcurrentBroadcasts?: number;
}

/** A direct node or a Sentinel group, flat beside the rest (as src/transport/index.ts builds it). */
export type RedisTransportSettings = (RedisDirectEndpoint | RedisSentinelEndpoint) & RedisConnectionSettings;

/** Each connection has one job, so none can stall another (see ../redis.ts). */
export type ConnectionRole = 'events' | 'commands' | 'replies';

const DEFAULT_CLIENT_NAME = 'celery-autopilot';

/** ioredis options for one of the transport's connections: every automatic recovery is off, the transport owns it. */
export function redisClientOptions(settings: RedisTransportSettings, role: ConnectionRole): RedisOptions {
  return redisServerOptions(settings, `${settings.clientName ?? DEFAULT_CLIENT_NAME}-${role}`, settings.connectTimeoutMs);
}

/**
 * ioredis options for any connection to `server`: TLS, credentials, Sentinel and db as given,
 * and no automatic recovery (no offline queue, no retries, no reconnect): whoever opens the
 * connection decides what a loss means.
 */
export function redisServerOptions(server: RedisServer, connectionName: string, connectTimeoutMs: number): RedisOptions {
  const common: RedisOptions = {
    db: server.db,
    connectionName,
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    // A command issued while disconnected fails at once instead of waiting in a queue to be sent
    // late; commands in flight when the socket dies are failed, not replayed on the next socket.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    retryStrategy: () => null,
    disableClientInfo: true,
    ...(server.username !== undefined ? { username: server.username } : {}),
    ...(server.password !== undefined ? { password: server.password } : {}),
    ...(server.tls ? { tls: { ...server.tlsOptions } } : {}),
  };
  if ('sentinels' in server) {
    return {
      ...common,
      sentinels: server.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: server.masterName,
      role: 'master',
      ...(server.sentinelUsername !== undefined ? { sentinelUsername: server.sentinelUsername } : {}),
      ...(server.sentinelPassword !== undefined ? { sentinelPassword: server.sentinelPassword } : {}),
      // One pass over the sentinels per attempt; the transport's own backoff paces the retries.
      sentinelRetryStrategy: () => null,
      // The ready check's INFO is what tells ioredis the node it reached is really the master.
      enableReadyCheck: true,
      // On +switch-master the old master's sockets are dropped, so the session reconnects to the new one.
      failoverDetector: true,
    };
  }
  return {
    ...common,
    host: server.host,
    port: server.port,
    Connector: GuardedStandaloneConnector as unknown as NonNullable<RedisOptions['Connector']>,
    // The ready check sends INFO, which a Celery ACL user often may not run; a server still
    // loading its data set answers the PSUBSCRIBE with an error and the session simply retries.
    enableReadyCheck: false,
  };
}
