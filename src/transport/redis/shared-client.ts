import { Redis } from 'ioredis';
import type { Logger } from '../../log.js';
import { explainTlsError } from '../tls.js';
import { redisServerOptions, type RedisServer } from './client-options.js';

/** ioredis's own connect timeout and reconnect pacing: nothing here asks for other values. */
const CONNECT_TIMEOUT_MS = 10_000;
const reconnectDelayMs = (attempt: number): number => Math.min(attempt * 50, 2_000);

/**
 * A Redis client for state that outlives requests (remediation's idempotency keys, cooldowns and
 * kill switch, shared between replicas): connected from the start and reconnected by ioredis
 * after a loss, yet never queueing a command while down, so a read fails at once and the caller
 * keeps its last value. Opened with the same TLS, credentials and db as every other connection.
 */
export function openSharedRedis(server: RedisServer, connectionName: string, logger: Logger): Redis {
  const client = new Redis({
    ...redisServerOptions(server, connectionName, CONNECT_TIMEOUT_MS),
    lazyConnect: false,
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectDelayMs,
  });
  client.on('error', (e: Error) => logger.warn({ err: explainTlsError(e).message }, `${connectionName}: Redis error`));
  return client;
}
