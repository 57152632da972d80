import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { InspectReply } from '../celery/worker-replies.js';
import { InspectReplies, INSPECT_METHODS, type InspectMethod, type WorkerInfo } from '../state/inspect-replies.js';
import type { ControlClient, Targets } from './client.js';

/** What Flower's /api/workers shows per worker, in its order: one inspect reply per method. */
export const SNAPSHOT_METHODS = INSPECT_METHODS;
export type SnapshotMethod = InspectMethod;
export type { WorkerInfo } from '../state/inspect-replies.js';

export interface WorkerSnapshotOptions {
  /** Background refresh period while someone uses the snapshot. */
  refreshSeconds: number;
  /** A worker that answered nothing for this long is dropped. */
  forgetSeconds: number;
}

/**
 * The cluster as Flower's /api/workers reports it, kept fresh in the background: each round
 * sends the eight inspect commands at once (one parallel round, about one reply timeout long)
 * rather than eight broadcasts in a row per request. Rounds are shared: callers asking while
 * one runs wait for it instead of starting another. The background loop starts on first use,
 * so a service nobody asks about workers sends nothing extra.
 */
export class WorkerSnapshot {
  /** The registry's store when there is one, so the inspector's answers show here too. */
  readonly #replies: InspectReplies;
  readonly #rounds = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  lastRoundAt = 0;

  constructor(
    private readonly control: ControlClient,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: WorkerSnapshotOptions,
    /**
     * The exporter's view: every round's answers are recorded through it (its `replies` are this
     * view's store), and the inspector's answers land in the same store.
     */
    private readonly registry?: WorkerRegistry,
  ) {
    this.#replies = registry?.replies ?? new InspectReplies();
  }

  /** Starts the background refresh (idempotent) and waits for a first round if none ran yet. */
  use(): Promise<void> {
    this.#startTimer();
    if (this.lastRoundAt === 0) return this.refresh();
    return this.#rounds.get('') ?? Promise.resolve();
  }

  /** One parallel inspect round, for every worker or one; joins a round already running. */
  refresh(worker?: string): Promise<void> {
    this.#startTimer();
    const key = worker ?? '';
    const running = this.#rounds.get(key) ?? (worker !== undefined ? this.#rounds.get('') : undefined);
    if (running) return running;
    const round = this.#round(worker).finally(() => this.#rounds.delete(key));
    this.#rounds.set(key, round);
    return round;
  }

  #startTimer(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#replies.keepEveryAnswer();
    this.#timer = setInterval(() => void this.refresh().catch(() => undefined), this.options.refreshSeconds * 1000);
    this.#timer.unref();
  }

  async #round(worker: string | undefined): Promise<void> {
    const targets: Targets = worker !== undefined ? { workers: [worker] } : { all: true };
    const asked = Promise.allSettled(SNAPSHOT_METHODS.map((m) => this.control.run(m, {}, targets)));
    const results = await (this.registry ? this.registry.sharedRound(asked) : asked);
    const now = this.clock.nowMs();
    const answers: InspectReply[] = [];
    let failed: unknown;
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        failed = r.reason;
        return;
      }
      for (const w of r.value.results) {
        if (w.status === 'ok') answers.push({ worker: w.worker, method: SNAPSHOT_METHODS[i]!, value: w.reply });
      }
    });
    if (this.registry) this.registry.recordReplies(answers, { list: true });
    else this.#replies.record(answers, now, true);
    this.#replies.forget(now, this.options.forgetSeconds);
    this.lastRoundAt = now;
    if (failed !== undefined) {
      this.logger.debug({ err: (failed as Error).message }, 'worker inspection round incomplete');
      if (results.every((r) => r.status === 'rejected')) throw failed;
    }
  }

  /**
   * Puts back a worker's last inspect replies read from persistence (before the first round): shown
   * as they were, with their old timestamp, so the forget rule ages them as if we had kept running.
   */
  restore(worker: string, info: WorkerInfo): void {
    this.#replies.restore(worker, info);
  }

  /** True while the entry is only what the file said: it proves nothing about liveness. */
  isRestored(worker: string): boolean {
    return this.#replies.isRestored(worker);
  }

  get(worker: string): WorkerInfo | undefined {
    return this.#replies.get(worker);
  }

  all(): ReadonlyMap<string, WorkerInfo> {
    return this.#replies.all();
  }

  /** Workers whose `registered` reply lists the task (names may carry " [rate_limit=...]" suffixes). */
  registeredBy(taskName: string): string[] {
    const out: string[] = [];
    for (const [name, info] of this.#replies.all()) {
      const reg = info.registered;
      if (Array.isArray(reg) && reg.some((t) => typeof t === 'string' && (t === taskName || t.startsWith(`${taskName} `)))) out.push(name);
    }
    return out;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
