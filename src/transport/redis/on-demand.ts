import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../log.js';
import { explainTlsError } from '../tls.js';
import { redisServerOptions, type RedisServer } from './client-options.js';

/**
 * A Redis client opened on first use and again after a loss, for request-driven work (task
 * publishing, the result backend). Fails fast instead of queueing: no offline queue, no
 * retries, a bounded connect, so a command that fails was never sent later behind the caller's back.
 * A certificate the server presented and we refused comes back explained (../tls.ts).
 */
export class OnDemandRedis {
  #client: Redis | undefined;
  /** The connect in progress: every caller that finds none ready waits for this one. */
  #connecting: Promise<Redis> | undefined;

  constructor(
    private readonly server: RedisServer,
    private readonly options: { connectionName: string; connectTimeoutMs: number; commandTimeoutMs?: number },
    private readonly logger: Logger,
  ) {}

  #clientOptions(): RedisOptions {
    return {
      ...redisServerOptions(this.server, this.options.connectionName, this.options.connectTimeoutMs),
      ...(this.options.commandTimeoutMs !== undefined ? { commandTimeout: this.options.commandTimeoutMs } : {}),
    };
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
    // ioredis rejects a failed connect with "Connection is closed."; the socket's own error (a
    // refused certificate, a refused connection) is what the caller needs to hear.
    let socketError: Error | undefined;
    client.on('error', (err: Error) => {
      socketError ??= err;
      this.logger.debug({ err: err.message }, `${this.options.connectionName}: Redis error`);
    });
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
      throw explainTlsError(socketError ?? (e as Error));
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.#client?.disconnect();
    this.#client = undefined;
  }
}
