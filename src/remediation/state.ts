import type { Redis } from 'ioredis';

/**
 * Where remediation remembers what it did: idempotency keys, cooldowns, action counts per window
 * and what a firing alert changed (for shrink-back). One instance keeps it in memory; replicas
 * behind one URL share it in Redis, where every claim is an atomic SET NX with expiry so two
 * replicas never both act.
 */
export interface RemediationState {
  /** Atomically takes `key` for `ttlMs`; false if somebody already holds it. */
  claim(key: string, ttlMs: number): Promise<boolean>;
  has(key: string): Promise<boolean>;
  release(key: string): Promise<void>;
  /** Adds one to the counter of the current fixed window and returns the new count. */
  count(key: string, windowMs: number): Promise<number>;
  /** Reads the counter of the current window without changing it. */
  peekCount(key: string, windowMs: number): Promise<number>;
  put(key: string, value: string, ttlMs: number): Promise<void>;
  get(key: string): Promise<string | undefined>;
}

export class MemoryState implements RemediationState {
  readonly #entries = new Map<string, { value: string; expiresAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  #live(key: string): { value: string; expiresAt: number } | undefined {
    const e = this.#entries.get(key);
    if (e && e.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }

  #sweep(): void {
    if (this.#entries.size < 10_000) return;
    const now = this.now();
    for (const [k, e] of this.#entries) if (e.expiresAt <= now) this.#entries.delete(k);
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    if (this.#live(key)) return false;
    this.#sweep();
    this.#entries.set(key, { value: '1', expiresAt: this.now() + ttlMs });
    return true;
  }

  async has(key: string): Promise<boolean> {
    return this.#live(key) !== undefined;
  }

  async release(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  #windowKey(key: string, windowMs: number): string {
    return `${key}:${Math.floor(this.now() / windowMs)}`;
  }

  async count(key: string, windowMs: number): Promise<number> {
    const k = this.#windowKey(key, windowMs);
    const n = Number(this.#live(k)?.value ?? '0') + 1;
    this.#entries.set(k, { value: String(n), expiresAt: this.now() + windowMs * 2 });
    return n;
  }

  async peekCount(key: string, windowMs: number): Promise<number> {
    return Number(this.#live(this.#windowKey(key, windowMs))?.value ?? '0');
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    this.#entries.set(key, { value, expiresAt: this.now() + ttlMs });
  }

  async get(key: string): Promise<string | undefined> {
    return this.#live(key)?.value;
  }
}

export class RedisState implements RemediationState {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly now: () => number = Date.now,
  ) {}

  async claim(key: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.prefix + key, '1', 'PX', Math.max(1, Math.round(ttlMs)), 'NX')) === 'OK';
  }

  async has(key: string): Promise<boolean> {
    return (await this.redis.exists(this.prefix + key)) === 1;
  }

  async release(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }

  #windowKey(key: string, windowMs: number): string {
    return `${this.prefix}${key}:${Math.floor(this.now() / windowMs)}`;
  }

  async count(key: string, windowMs: number): Promise<number> {
    const k = this.#windowKey(key, windowMs);
    const [[, n]] = (await this.redis.multi().incr(k).pexpire(k, windowMs * 2).exec()) as [[Error | null, number], unknown];
    return n;
  }

  async peekCount(key: string, windowMs: number): Promise<number> {
    return Number((await this.redis.get(this.#windowKey(key, windowMs))) ?? '0');
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.redis.get(this.prefix + key)) ?? undefined;
  }
}
