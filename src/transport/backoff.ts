/**
 * Capped exponential backoff with jitter, shared by the broker transports' reconnect loops.
 *
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

/** The same policy bound to one transport's settings. */
export function createBackoff(settings: { readonly initialMs: number; readonly maxMs: number }): { nextDelay(attempt: number): number } {
  return { nextDelay: (attempt) => backoffDelay(attempt, settings.initialMs, settings.maxMs) };
}
