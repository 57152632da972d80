import type { Redis } from 'ioredis';
import { asError, withDeadline } from '../async.js';
import { BrokerUnavailableError } from '../transport.js';

/**
 * The blocking connections that collect pidbox replies: a BRPOP holds its whole connection, so
 * each broadcast waiting for replies takes one connection to itself. At most `max` are in use at
 * once (later broadcasts wait their turn), a couple of idle ones are kept warm, and a lost
 * session takes all of them down with it.
 */

/** What the pool needs to know of the session a connection is for. */
export interface PoolSession {
  readonly dead: boolean;
}

/** Idle reply connections kept warm; more are opened on demand and closed after use. */
const IDLE_REPLY_CONNECTIONS = 2;

export class ReplyPool {
  #inUse = 0;
  #idle: Redis[] = [];
  readonly #busy = new Set<Redis>();
  #waiters: Array<{ resolve: (client: Redis) => void; reject: (error: Error) => void }> = [];

  constructor(
    private readonly newClient: () => Redis,
    private readonly max: number,
    private readonly connectTimeoutMs: number,
  ) {}

  /** A ready blocking connection for one broadcast; waits while the bound is reached. */
  async acquire(session: PoolSession): Promise<Redis> {
    if (this.#inUse >= this.max) {
      const client = await new Promise<Redis>((resolve, reject) => this.#waiters.push({ resolve, reject }));
      this.#busy.add(client);
      return client;
    }
    this.#inUse += 1;
    while (this.#idle.length > 0) {
      const idle = this.#idle.pop()!;
      if (idle.status === 'ready') {
        this.#busy.add(idle);
        return idle;
      }
      idle.disconnect();
    }
    const client = this.newClient();
    this.#busy.add(client);
    try {
      await withDeadline(client.connect(), this.connectTimeoutMs, 'connecting the pidbox reply connection');
    } catch (error) {
      this.#discard(client);
      throw new BrokerUnavailableError(`cannot open a pidbox reply connection: ${asError(error).message}`);
    }
    if (session.dead) {
      this.#discard(client);
      throw new BrokerUnavailableError();
    }
    return client;
  }

  /** Hands a connection back: to the next waiter, to the idle ones, or closed when `broken`. */
  release(session: PoolSession, client: Redis, broken: boolean): void {
    this.#busy.delete(client);
    const usable = !broken && !session.dead && client.status === 'ready';
    const waiter = usable ? this.#waiters.shift() : undefined;
    if (waiter) {
      waiter.resolve(client);
      return;
    }
    this.#inUse -= 1;
    if (!usable) {
      client.disconnect();
      // A slot freed by a broken connection lets a waiter open a fresh one.
      const next = this.#waiters.shift();
      if (next) this.acquire(session).then(next.resolve, next.reject);
      return;
    }
    if (this.#idle.length < IDLE_REPLY_CONNECTIONS) this.#idle.push(client);
    else client.disconnect();
  }

  /** The session is gone: every connection is dropped and every waiter refused with `error`. */
  drain(error: Error = new BrokerUnavailableError()): void {
    for (const client of this.#idle.splice(0)) client.disconnect();
    for (const client of this.#busy) client.disconnect();
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  #discard(client: Redis): void {
    this.#busy.delete(client);
    client.disconnect();
    this.#inUse -= 1;
  }
}
