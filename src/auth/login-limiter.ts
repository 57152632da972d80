import type { Clock } from '../clock.js';

/**
 * Failures per key within a sliding window: at most `maxFailures`; past that, `retryAfterSeconds`
 * says how long until the oldest ages out. Callers decide what a key is (a client IP, a
 * username, a webhook sender) and what being over means (password-gate.ts: refused for a
 * client, a backoff for a username). (express-rate-limit counts requests per key; this needs
 * failures, checked before the work, so a small one of our own is simpler.)
 *
 * Memory is bounded: beyond `maxKeys` the least recently failed key is forgotten. The service is
 * one process, so in-memory state is the whole truth.
 */
export class FailureLimiter {
  readonly #failures = new Map<string, number[]>();
  readonly #windowMs: number;

  constructor(
    private readonly clock: Clock,
    private readonly options: { maxFailures: number; windowSeconds: number; maxKeys?: number },
  ) {
    this.#windowMs = options.windowSeconds * 1000;
  }

  /** 0 when every key may try again; otherwise seconds until the most constrained key may. */
  retryAfterSeconds(keys: readonly string[]): number {
    const now = this.clock.nowMs();
    let waitMs = 0;
    for (const key of keys) {
      const recent = this.#recent(key, now);
      if (recent.length >= this.options.maxFailures) {
        waitMs = Math.max(waitMs, recent[recent.length - this.options.maxFailures]! + this.#windowMs - now);
      }
    }
    return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0;
  }

  recordFailure(keys: readonly string[]): void {
    const now = this.clock.nowMs();
    for (const key of keys) {
      const recent = this.#recent(key, now);
      recent.push(now);
      // Only the newest maxFailures timestamps matter for the decision.
      if (recent.length > this.options.maxFailures) recent.splice(0, recent.length - this.options.maxFailures);
      this.#failures.delete(key);
      this.#failures.set(key, recent);
    }
    const maxKeys = this.options.maxKeys ?? 100_000;
    while (this.#failures.size > maxKeys) {
      const oldest = this.#failures.keys().next().value;
      if (oldest === undefined) break;
      this.#failures.delete(oldest);
    }
  }

  /** Failures of `key` still inside the window. */
  count(key: string): number {
    return this.#recent(key, this.clock.nowMs()).length;
  }

  /** A successful login clears its username's failures (never the IP's: one good account must not unlock guessing at others). */
  reset(key: string): void {
    this.#failures.delete(key);
  }

  get size(): number {
    return this.#failures.size;
  }

  #recent(key: string, now: number): number[] {
    const all = this.#failures.get(key);
    if (!all) return [];
    const recent = all.filter((t) => t > now - this.#windowMs);
    if (recent.length === 0) this.#failures.delete(key);
    return recent;
  }
}
