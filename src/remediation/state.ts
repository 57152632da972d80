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
  put(key: string, value: string, ttlMs: number): Promise<void>;
  get(key: string): Promise<string | undefined>;
}

export interface MemoryStateOptions {
  /**
   * At most this many entries. Expired ones go first; beyond that the oldest are dropped (counted
   * through `onEvict`), so an alert flood cannot grow memory without bound.
   */
  maxEntries: number;
  onEvict?: (evicted: number) => void;
}

export class MemoryState implements RemediationState {
  readonly #entries = new Map<string, { value: string; expiresAt: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly options: MemoryStateOptions = { maxEntries: 100_000 },
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  #live(key: string): { value: string; expiresAt: number } | undefined {
    const e = this.#entries.get(key);
    if (e && e.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }

  /**
   * Makes room for a new key: expired entries first, then the oldest written (Map order), down
   * to 90 % of the bound so a flood pays for the full scan once per tenth of it, not per key.
   */
  #set(key: string, value: string, expiresAt: number): void {
    const max = this.options.maxEntries;
    if (!this.#entries.has(key) && this.#entries.size >= max) {
      const now = this.now();
      for (const [k, e] of this.#entries) if (e.expiresAt <= now) this.#entries.delete(k);
      const target = this.#entries.size >= max ? max - Math.ceil(max / 10) : max;
      let evicted = 0;
      for (const k of this.#entries.keys()) {
        if (this.#entries.size <= target) break;
        this.#entries.delete(k);
        evicted++;
      }
      if (evicted > 0) this.options.onEvict?.(evicted);
    }
    this.#entries.set(key, { value, expiresAt });
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    if (this.#live(key)) return false;
    this.#set(key, '1', this.now() + ttlMs);
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
    this.#set(k, String(n), this.now() + windowMs * 2);
    return n;
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    this.#set(key, value, this.now() + ttlMs);
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
    const [[, n]] = (await this.redis
      .multi()
      .incr(k)
      .pexpire(k, windowMs * 2)
      .exec()) as [[Error | null, number], unknown];
    return n;
  }

  async put(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.prefix + key, value, 'PX', Math.max(1, Math.round(ttlMs)));
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.redis.get(this.prefix + key)) ?? undefined;
  }
}
