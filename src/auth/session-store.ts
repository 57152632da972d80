import session, { type SessionData } from 'express-session';
import type { Clock } from '../clock.js';

type Entry = { json: string; expiresAtMs: number };

/**
 * Sessions in memory, bounded in count and age. express-session's MemoryStore never forgets a
 * session nobody asks for again, and an anonymous visitor creates one by opening the login page
 * (its CSRF token, the OAuth state), so an unbounded store would be a memory leak anyone can
 * drive. Signed-in and anonymous sessions live in separate buckets: anonymous ones are capped
 * at a quarter of `maxSessions` and evict only each other, so no number of anonymous visits can
 * push a signed-in user out. Beyond its cap, a bucket drops its least recently written session.
 * The service is one process; a restart logs everyone out.
 */
export class BoundedMemoryStore extends session.Store {
  readonly #signedIn = new Map<string, Entry>();
  readonly #anonymous = new Map<string, Entry>();
  readonly #anonymousCap: number;

  constructor(
    private readonly clock: Clock,
    private readonly options: { maxSessions: number; maxAgeMs: number },
  ) {
    super();
    this.#anonymousCap = Math.max(10, Math.floor(options.maxSessions / 4));
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    const entry = this.#signedIn.get(sid) ?? this.#anonymous.get(sid);
    if (!entry) return callback(null, null);
    if (entry.expiresAtMs <= this.clock.nowMs()) {
      this.#drop(sid);
      return callback(null, null);
    }
    callback(null, JSON.parse(entry.json) as SessionData);
  }

  override set(sid: string, data: SessionData, callback?: (err?: unknown) => void): void {
    // The cookie's own `expires` is wall-clock time; measuring its lifetime on our clock keeps one time source.
    const lifetimeMs = data.cookie?.originalMaxAge ?? this.options.maxAgeMs;
    const expiresAtMs = this.clock.nowMs() + lifetimeMs;
    this.#drop(sid);
    const [bucket, cap] = data.principal ? [this.#signedIn, this.options.maxSessions] : [this.#anonymous, this.#anonymousCap];
    bucket.set(sid, { json: JSON.stringify(data), expiresAtMs });
    this.#evict(bucket, cap);
    callback?.();
  }

  override touch(sid: string, data: SessionData, callback?: () => void): void {
    if (this.#signedIn.has(sid) || this.#anonymous.has(sid)) this.set(sid, data);
    callback?.();
  }

  override destroy(sid: string, callback?: (err?: unknown) => void): void {
    this.#drop(sid);
    callback?.();
  }

  get size(): number {
    return this.#signedIn.size + this.#anonymous.size;
  }

  /** Signed-in sessions held (the rest are anonymous visitors between the login page and sign-in). */
  get signedInCount(): number {
    return this.#signedIn.size;
  }

  #drop(sid: string): void {
    this.#signedIn.delete(sid);
    this.#anonymous.delete(sid);
  }

  #evict(bucket: Map<string, Entry>, cap: number): void {
    if (bucket.size <= cap) return;
    const now = this.clock.nowMs();
    for (const [sid, entry] of bucket) if (entry.expiresAtMs <= now) bucket.delete(sid);
    while (bucket.size > cap) {
      const oldest = bucket.keys().next().value;
      if (oldest === undefined) break;
      bucket.delete(oldest);
    }
  }
}
