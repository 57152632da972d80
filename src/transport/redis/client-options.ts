import type { RedisOptions } from 'ioredis';
import type { BrokerTlsOptions } from '../tls.js';
import { GuardedStandaloneConnector } from './connector.js';

/** What the Redis transport is told, and how each of its connections is configured in ioredis. */

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

export interface RedisConnectionSettings {
  readonly db: number;
  /** `rediss://`: connect with TLS, with `tlsOptions` (CA, client certificate, name, verification). */
  readonly tls: boolean;
  readonly tlsOptions?: BrokerTlsOptions;
  readonly username?: string;
  /** Already revealed from its Secret by the caller; never logged here. */
  readonly password?: string;
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

/** ioredis options for one connection: every automatic recovery is off, the transport owns it. */
export function redisClientOptions(settings: RedisTransportSettings, role: ConnectionRole): RedisOptions {
  const common: RedisOptions = {
    db: settings.db,
    connectionName: `${settings.clientName ?? DEFAULT_CLIENT_NAME}-${role}`,
    lazyConnect: true,
    connectTimeout: settings.connectTimeoutMs,
    // A command issued while disconnected fails at once instead of waiting in a queue to be sent
    // late; commands in flight when the socket dies are failed, not replayed on the next socket.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    retryStrategy: () => null,
    disableClientInfo: true,
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(settings.password !== undefined ? { password: settings.password } : {}),
    ...(settings.tls ? { tls: { ...settings.tlsOptions } } : {}),
  };
  if ('sentinels' in settings) {
    return {
      ...common,
      sentinels: settings.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: settings.masterName,
      role: 'master',
      ...(settings.sentinelUsername !== undefined ? { sentinelUsername: settings.sentinelUsername } : {}),
      ...(settings.sentinelPassword !== undefined ? { sentinelPassword: settings.sentinelPassword } : {}),
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
    host: settings.host,
    port: settings.port,
    Connector: GuardedStandaloneConnector as unknown as NonNullable<RedisOptions['Connector']>,
    // The ready check sends INFO, which a Celery ACL user often may not run; a server still
    // loading its data set answers the PSUBSCRIBE with an error and the session simply retries.
    enableReadyCheck: false,
  };
}
