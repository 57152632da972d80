import session, { type SessionData } from 'express-session';
import type { Clock } from '../clock.js';

/**
 * Sessions in memory, bounded in count and age. express-session's MemoryStore never forgets a
 * session nobody asks for again, and an anonymous visitor creates one by opening the login page,
 * so an unbounded store would be a memory leak anyone can drive. Beyond `maxSessions` the least
 * recently written session is dropped. The service is one process; a restart logs everyone out.
 */
export class BoundedMemoryStore extends session.Store {
  readonly #sessions = new Map<string, { json: string; expiresAtMs: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly options: { maxSessions: number; maxAgeMs: number },
  ) {
    super();
  }

  override get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    const entry = this.#sessions.get(sid);
    if (!entry) return callback(null, null);
    if (entry.expiresAtMs <= this.clock.nowMs()) {
      this.#sessions.delete(sid);
      return callback(null, null);
    }
    callback(null, JSON.parse(entry.json) as SessionData);
  }

  override set(sid: string, data: SessionData, callback?: (err?: unknown) => void): void {
    // The cookie's own `expires` is wall-clock time; measuring its lifetime on our clock keeps one time source.
    const lifetimeMs = data.cookie?.originalMaxAge ?? this.options.maxAgeMs;
    const expiresAtMs = this.clock.nowMs() + lifetimeMs;
    this.#sessions.delete(sid);
    this.#sessions.set(sid, { json: JSON.stringify(data), expiresAtMs });
    this.#evict();
    callback?.();
  }

  override touch(sid: string, data: SessionData, callback?: () => void): void {
    const entry = this.#sessions.get(sid);
    if (entry) this.set(sid, data);
    callback?.();
  }

  override destroy(sid: string, callback?: (err?: unknown) => void): void {
    this.#sessions.delete(sid);
    callback?.();
  }

  get size(): number {
    return this.#sessions.size;
  }

  #evict(): void {
    if (this.#sessions.size <= this.options.maxSessions) return;
    const now = this.clock.nowMs();
    for (const [sid, entry] of this.#sessions) if (entry.expiresAtMs <= now) this.#sessions.delete(sid);
    while (this.#sessions.size > this.options.maxSessions) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
  }
}
