import type { Alert } from './alertmanager.js';

/**
 * Verify the effect: an acted decision of a rule with `verify: { within_seconds: N }` is
 * effective if its alert resolves (Alertmanager's resolved notification for the same alert
 * instance) or its queue's time to drain falls to N seconds or less within N seconds, and
 * ineffective otherwise. The verdict is handed to `onVerdict` (audit, metric, and the memory
 * that stops the next firing repeating an action that did not help).
 */

export interface Verdict {
  rule: string;
  action: string;
  alert: Pick<Alert, 'fingerprint' | 'startsAt' | 'labels'>;
  queue: string | undefined;
  result: 'effective' | 'ineffective';
  /** What showed it: the resolved notification, the time to drain, or the window ran out. */
  via: 'resolved' | 'time_to_drain' | 'timeout';
  seconds: number;
  /** The last time to drain read (s), when the queue is known. */
  timeToDrain?: number;
}

interface Pending {
  readonly verdict: Omit<Verdict, 'result' | 'via' | 'seconds'>;
  readonly startedAt: number;
  readonly withinMs: number;
  readonly timer: NodeJS.Timeout;
  readonly poll: NodeJS.Timeout;
  readonly key: string;
}

export class Verifier {
  readonly #pending = new Map<string, Pending>();

  constructor(
    private readonly now: () => number,
    /** The queue's time to drain now (s), or undefined when it cannot be read. */
    private readonly timeToDrain: (queue: string) => Promise<number | undefined>,
    private readonly onVerdict: (v: Verdict) => void,
    /** With replicas, the resolved notification may reach another one: it records it in the shared state. */
    private readonly resolvedElsewhere: (alert: Pick<Alert, 'fingerprint' | 'startsAt'>) => Promise<boolean> = async () => false,
    private readonly pollMs = 2000,
  ) {}

  get pending(): number {
    return this.#pending.size;
  }

  start(input: Omit<Verdict, 'result' | 'via' | 'seconds'>, withinSeconds: number): void {
    const key = keyOf(input.rule, input.alert);
    if (this.#pending.has(key)) return;
    const withinMs = withinSeconds * 1000;
    const timer = setTimeout(() => void this.#finish(key, 'ineffective', 'timeout'), withinMs);
    const queue = input.queue;
    // Polled: the queue's time to drain, and whether another replica heard the alert resolve.
    const poll = setInterval(
      () => {
        const p = this.#pending.get(key);
        if (!p) return;
        this.resolvedElsewhere(input.alert).then(
          (resolved) => {
            if (resolved) this.#finish(key, 'effective', 'resolved');
          },
          () => undefined,
        );
        if (queue === undefined) return;
        this.timeToDrain(queue).then(
          (t) => {
            if (t === undefined || !this.#pending.has(key)) return;
            p.verdict.timeToDrain = t;
            if (t <= withinSeconds) this.#finish(key, 'effective', 'time_to_drain');
          },
          () => undefined,
        );
      },
      Math.min(this.pollMs, Math.max(200, withinMs / 4)),
    );
    timer.unref();
    poll.unref();
    this.#pending.set(key, { verdict: { ...input }, startedAt: this.now(), withinMs, timer, poll, key });
  }

  /** A resolved notification: every verification waiting on that alert instance is effective. */
  resolved(alert: Pick<Alert, 'fingerprint' | 'startsAt'>): void {
    for (const p of [...this.#pending.values()])
      if (p.verdict.alert.fingerprint === alert.fingerprint && p.verdict.alert.startsAt === alert.startsAt)
        this.#finish(p.key, 'effective', 'resolved');
  }

  /** Ends every pending verification without a verdict (shutdown). */
  stop(): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      clearInterval(p.poll);
    }
    this.#pending.clear();
  }

  #finish(key: string, result: Verdict['result'], via: Verdict['via']): void {
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    clearTimeout(p.timer);
    clearInterval(p.poll);
    this.onVerdict({ ...p.verdict, result, via, seconds: Math.round((this.now() - p.startedAt) / 100) / 10 });
  }
}

const keyOf = (rule: string, alert: Pick<Alert, 'fingerprint' | 'startsAt'>) => `${rule}\u0000${alert.fingerprint}\u0000${alert.startsAt}`;
