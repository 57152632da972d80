import type { Clock } from '../clock.js';
import { FailureLimiter } from './login-limiter.js';

/**
 * Who may spend a password verification (a 32 MiB scrypt) and when. Three rules, all decided
 * before any hashing starts:
 *
 * - A client (IP) is refused (429) once its failures plus its attempts in flight reach
 *   `maxFailures` in the window: an attempt counts when it starts, so N parallel requests cannot
 *   all slip past the limit while the first is still hashing.
 * - A client with recent failures has at most PER_CLIENT_IN_FLIGHT attempts waiting or hashing;
 *   beyond that it is answered 429 at once. (A clean client is bounded by the first rule only,
 *   so a script's few parallel requests are never refused.)
 * - At most SLOTS verifications run at a time, and clients with recent failures ("dirty") may
 *   hold only SLOTS - 1 of them and wait in a short queue (full: 429), so a client without
 *   failures always finds a slot within about one verification, and is never refused. Waiters
 *   are served one client at a time in turn, so a client with many attempts queued cannot make
 *   one with a single attempt wait behind all of them.
 *
 * A username with many failures (from anywhere) backs off exponentially, but only for dirty
 * clients: the right password from a client that has not failed is never refused, so nobody can
 * lock a real user out by failing in their name.
 */
export type GateEntry =
  | { admitted: true; release(outcome: 'success' | 'failure' | 'error'): void }
  | { admitted: false; retryAfterSeconds: number; why: 'client' | 'username' | 'busy' };

/** Two verifications at once leave libuv's default four threads room for file and DNS work. */
const SLOTS = 2;
const PER_CLIENT_IN_FLIGHT = 2;
const DIRTY_WAITING = 32;
/** A bound on memory only: clean clients are never refused below it. */
const CLEAN_WAITING = 10_000;
const MAX_USERS = 100_000;
const MAX_BACKOFF_MS = 60_000;

export class PasswordGate {
  readonly #clients: FailureLimiter;
  readonly #inFlight = new Map<string, number>();
  readonly #users = new Map<string, { failures: number; lastMs: number }>();
  readonly #running = { clean: 0, dirty: 0 };
  readonly #waiting = { clean: new FairQueue(), dirty: new FairQueue() };
  readonly #windowMs: number;

  constructor(
    private readonly clock: Clock,
    private readonly options: { maxFailures: number; windowSeconds: number },
  ) {
    this.#clients = new FailureLimiter(clock, options);
    this.#windowMs = options.windowSeconds * 1000;
  }

  /** Seconds until a client over its failure limit may try again; 0 when it may now. */
  clientRetryAfterSeconds(ip: string): number {
    return this.#clients.retryAfterSeconds([clientKey(ip)]);
  }

  /** A failure that needed no verification slot (a wrong bearer token). */
  recordClientFailure(ip: string): void {
    this.#clients.recordFailure([clientKey(ip)]);
  }

  /** Waits for a verification slot, or refuses at once. The entry must be released exactly once. */
  async enter(ip: string, username: string): Promise<GateEntry> {
    const key = clientKey(ip);
    const failures = this.#clients.count(key);
    const inFlight = this.#inFlight.get(key) ?? 0;
    if (failures + inFlight >= this.options.maxFailures) {
      return { admitted: false, why: 'client', retryAfterSeconds: Math.max(1, this.#clients.retryAfterSeconds([key])) };
    }
    const clean = failures === 0;
    if (!clean) {
      if (inFlight >= PER_CLIENT_IN_FLIGHT) return { admitted: false, why: 'client', retryAfterSeconds: 1 };
      const wait = this.#userBackoffMs(username);
      if (wait > 0) return { admitted: false, why: 'username', retryAfterSeconds: Math.ceil(wait / 1000) };
    }
    this.#inFlight.set(key, inFlight + 1);
    const lane = clean ? 'clean' : 'dirty';
    if (!(await this.#acquire(lane, key))) {
      this.#leave(key);
      return { admitted: false, why: 'busy', retryAfterSeconds: 1 };
    }
    let released = false;
    return {
      admitted: true,
      release: (outcome) => {
        if (released) return;
        released = true;
        this.#leave(key);
        this.#running[lane]--;
        if (outcome === 'failure') {
          this.#clients.recordFailure([key]);
          this.#recordUserFailure(username);
        } else if (outcome === 'success') {
          this.#users.delete(username);
        }
        this.#wake();
      },
    };
  }

  #leave(key: string): void {
    const n = (this.#inFlight.get(key) ?? 1) - 1;
    if (n <= 0) this.#inFlight.delete(key);
    else this.#inFlight.set(key, n);
  }

  #canRun(lane: 'clean' | 'dirty'): boolean {
    const total = this.#running.clean + this.#running.dirty;
    return total < SLOTS && (lane === 'clean' || this.#running.dirty < SLOTS - 1);
  }

  #acquire(lane: 'clean' | 'dirty', key: string): Promise<boolean> {
    if (this.#canRun(lane) && (lane === 'dirty' || this.#waiting.clean.size === 0)) {
      this.#running[lane]++;
      return Promise.resolve(true);
    }
    const queue = this.#waiting[lane];
    if (queue.size >= (lane === 'clean' ? CLEAN_WAITING : DIRTY_WAITING)) return Promise.resolve(false);
    return new Promise((resolve) =>
      queue.push(key, () => {
        this.#running[lane]++;
        resolve(true);
      }),
    );
  }

  /** Clean clients first; a dirty one only into a slot that leaves one free for them. */
  #wake(): void {
    for (;;) {
      if (this.#waiting.clean.size > 0 && this.#canRun('clean')) this.#waiting.clean.shift()!();
      else if (this.#waiting.dirty.size > 0 && this.#canRun('dirty')) this.#waiting.dirty.shift()!();
      else return;
    }
  }

  #userBackoffMs(username: string): number {
    const u = this.#users.get(username);
    if (!u || u.failures < this.options.maxFailures) return 0;
    const now = this.clock.nowMs();
    if (now - u.lastMs > this.#windowMs) return 0;
    const backoff = Math.min(MAX_BACKOFF_MS, this.#windowMs, 1000 * 2 ** Math.min(16, u.failures - this.options.maxFailures));
    return Math.max(0, u.lastMs + backoff - now);
  }

  // Every presented name is tracked, known or not: a backoff only for real names would tell which exist.
  #recordUserFailure(username: string): void {
    const now = this.clock.nowMs();
    const u = this.#users.get(username);
    const failures = u && now - u.lastMs <= this.#windowMs ? u.failures + 1 : 1;
    this.#users.delete(username);
    this.#users.set(username, { failures, lastMs: now });
    while (this.#users.size > MAX_USERS) this.#users.delete(this.#users.keys().next().value!);
  }
}

const clientKey = (ip: string): string => `ip:${ip}`;

/** Waiters per client, taken one client at a time in turn (round robin), each client's in order. */
class FairQueue {
  readonly #byClient = new Map<string, Array<() => void>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(key: string, waiter: () => void): void {
    let queue = this.#byClient.get(key);
    if (!queue) this.#byClient.set(key, (queue = []));
    queue.push(waiter);
    this.#size++;
  }

  shift(): (() => void) | undefined {
    const next = this.#byClient.entries().next();
    if (next.done) return undefined;
    const [key, queue] = next.value;
    const waiter = queue.shift()!;
    // To the back of the line: the next turn is another client's.
    this.#byClient.delete(key);
    if (queue.length > 0) this.#byClient.set(key, queue);
    this.#size--;
    return waiter;
  }
}
