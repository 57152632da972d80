import type { TransportObserver } from './transport.js';

/**
 * The one reconnect loop both transports use: after a loss or a failed attempt, the next attempt
 * runs after a capped exponential backoff with jitter; a successful connection resets the count.
 * At most one attempt is scheduled at a time, and nothing is scheduled once stopped.
 */

export interface ReconnectSettings {
  readonly initialMs: number;
  readonly maxMs: number;
}

/**
 * The ceiling doubles per attempt (`initialMs`, 2×, 4×… up to `maxMs`) and the delay is drawn
 * from the upper half of it: half-jitter keeps many exporters that lost the same broker from
 * reconnecting in lockstep, while never dropping to ~0 ms the way full jitter can (a tight loop
 * against a broker that refuses connections at once).
 *
 * `attempt` counts from 1. The result is always within [initialMs / 2, maxMs].
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const floor = Math.max(0, initialMs) / 2;
  const cap = Math.max(floor, maxMs);
  const step = Number.isFinite(attempt) ? Math.max(1, Math.floor(attempt)) : 1;
  // 2 ** 1100 is Infinity; clamping the exponent keeps the arithmetic finite (and 0 × ∞ out).
  const ceiling = Math.min(cap, Math.max(0, initialMs) * 2 ** Math.min(step - 1, 52));
  const r = Math.min(1, Math.max(0, random()));
  const delay = ceiling / 2 + r * (ceiling / 2);
  return Math.min(cap, Math.max(floor, Math.round(delay)));
}

export class ReconnectScheduler {
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    private readonly settings: ReconnectSettings,
    private readonly observer: TransportObserver,
    /** Runs one connection attempt; it reports its own outcome through `connected` / `schedule`. */
    private readonly attempt: () => void,
  ) {}

  /** Schedules the next attempt, unless one is already scheduled or the loop was stopped. */
  schedule(): void {
    if (this.#stopped || this.#timer) return;
    this.#attempt += 1;
    const delay = backoffDelay(this.#attempt, this.settings.initialMs, this.settings.maxMs);
    this.observer.reconnecting(this.#attempt, delay);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.attempt();
    }, delay);
  }

  /** The broker is reachable again: the next loss starts from the first, shortest delay. */
  connected(): void {
    this.#attempt = 0;
  }

  /** For close(): cancels a scheduled attempt and refuses new ones. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
