import { Redis, type RedisOptions } from 'ioredis';
import type { RedisEndpoint } from '../config/broker-url.js';
import type { Logger } from '../log.js';

/**
 * A Redis client opened on first use and again after a loss, for request-driven work (task
 * publishing, the result backend). Fails fast instead of queueing: no offline queue, no
 * retries, a bounded connect, so a command that fails was never sent later behind the caller's back.
 */
export class OnDemandRedis {
  #client: Redis | undefined;
  /** The connect in progress: every caller that finds none ready waits for this one. */
  #connecting: Promise<Redis> | undefined;

  constructor(
    private readonly endpoint: RedisEndpoint,
    private readonly options: { connectionName: string; connectTimeoutMs: number; commandTimeoutMs?: number; masterName?: string },
    private readonly logger: Logger,
  ) {}

  #clientOptions(): RedisOptions {
    const e = this.endpoint;
    const common: RedisOptions = {
      db: e.db,
      connectionName: this.options.connectionName,
      lazyConnect: true,
      connectTimeout: this.options.connectTimeoutMs,
      ...(this.options.commandTimeoutMs !== undefined ? { commandTimeout: this.options.commandTimeoutMs } : {}),
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      ...(e.username !== undefined ? { username: e.username } : {}),
      ...(e.password !== undefined ? { password: e.password.reveal() } : {}),
      ...(e.tls ? { tls: {} } : {}),
    };
    if (e.sentinels)
      return {
        ...common,
        sentinels: e.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: this.options.masterName ?? 'mymaster',
        role: 'master',
      };
    return { ...common, host: e.node!.host, port: e.node!.port };
  }

  /**
   * A connected client; rejects (with Redis's reason) within the connect timeout. Callers that
   * arrive while a connect is under way share it: each starting its own would disconnect the one
   * before (50 concurrent first requests once ended in 49 failures).
   */
  client(): Promise<Redis> {
    const current = this.#client;
    if (current?.status === 'ready') return Promise.resolve(current);
    this.#connecting ??= this.#connect().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  async #connect(): Promise<Redis> {
    const current = this.#client;
    current?.disconnect();
    const client = new Redis(this.#clientOptions());
    client.on('error', (err: Error) => this.logger.debug({ err: err.message }, `${this.options.connectionName}: Redis error`));
    this.#client = client;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('connect timed out')), this.options.connectTimeoutMs))),
      ]);
      return client;
    } catch (e) {
      client.disconnect();
      if (this.#client === client) this.#client = undefined;
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#client?.disconnect();
    this.#client = undefined;
  }
}
