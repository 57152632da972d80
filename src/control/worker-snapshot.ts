import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { InspectReply } from '../celery/worker-replies.js';
import { FIGURE_METHODS, INSPECT_METHODS, type InspectMethod, type InspectReplies, type WorkerInfo } from '../state/inspect-replies.js';
import type { ControlClient, Targets } from './client.js';
import { MAX_WORKERS_PER_COMMAND } from '../celery/validators.js';

export type { WorkerInfo } from '../state/inspect-replies.js';

/** The methods only this view asks for; the figure methods come from the exporter's inspector. */
const VIEW_METHODS = INSPECT_METHODS.filter((m) => !FIGURE_METHODS.includes(m));
/** The key of the background round in `#rounds` (forced rounds are keyed by worker, '' for all). */
const BACKGROUND = '\0background';

export interface WorkerSnapshotOptions {
  /** Background refresh period while someone uses the snapshot. */
  refreshSeconds: number;
  /** A worker that answered nothing for this long is dropped. */
  forgetSeconds: number;
}

/**
 * The cluster as Flower's /api/workers reports it. One sender per inspect method and worker:
 * the exporter's inspector asks every live worker for `stats` and `active_queues` at its interval
 * (exporter/worker-inspector.ts); the background round here asks everyone the other six (one
 * parallel round, about one reply timeout long), and the figure methods only of workers the
 * inspector does not ask (no heartbeat of theirs is alive). Every answer, whoever asked, lands in
 * the registry's reply store, so this view shows the inspector's newer figures too. A forced
 * round (first use, `refresh`) asks all eight at once, for everyone or one worker; the
 * inspector waits for it and takes its answers. Rounds are shared: callers asking while one
 * runs wait for it instead of starting another. The background loop starts on first use, so a
 * service nobody asks about workers sends nothing extra.
 */
export class WorkerSnapshot {
  /** The registry's store, so the inspector's answers show here too. */
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
    private readonly registry: WorkerRegistry,
  ) {
    this.#replies = registry.replies;
  }

  /** Starts the background refresh (idempotent) and waits for a first round if none ran yet. */
  use(): Promise<void> {
    this.#startTimer();
    if (this.lastRoundAt === 0) return this.refresh();
    return this.#rounds.get('') ?? this.#rounds.get(BACKGROUND) ?? Promise.resolve();
  }

  /** One parallel inspect round, for every worker or one; joins a round already running. */
  refresh(worker?: string): Promise<void> {
    this.#startTimer();
    const key = worker ?? '';
    const running = this.#rounds.get(key) ?? (worker !== undefined ? this.#rounds.get('') : undefined);
    if (running) return running;
    const round = this.#round(worker, false).finally(() => this.#rounds.delete(key));
    this.#rounds.set(key, round);
    return round;
  }

  /** The background round; a forced round for everyone under way serves it. */
  #refreshInBackground(): Promise<void> {
    const running = this.#rounds.get('') ?? this.#rounds.get(BACKGROUND);
    if (running) return running;
    const round = this.#round(undefined, true).finally(() => this.#rounds.delete(BACKGROUND));
    this.#rounds.set(BACKGROUND, round);
    return round;
  }

  #startTimer(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#replies.keepEveryAnswer();
    this.#timer = setInterval(() => void this.#refreshInBackground().catch(() => undefined), this.options.refreshSeconds * 1000);
    this.#timer.unref();
  }

  async #round(worker: string | undefined, background: boolean): Promise<void> {
    const targets: Targets = worker !== undefined ? { workers: [worker] } : { all: true };
    const asked = this.#ask(background ? VIEW_METHODS : INSPECT_METHODS, targets);
    // A forced round asks the inspector's methods too: the inspector waits for its answers.
    const first = await (background ? asked : this.registry.sharedRound(asked));
    const rounds = [first];
    if (background) {
      const unasked = [...new Set(first.answers.map((a) => a.worker))].filter((w) => !this.#askedByInspector(w));
      if (unasked.length > 0) rounds.push(await this.#ask(FIGURE_METHODS, { workers: unasked.slice(0, MAX_WORKERS_PER_COMMAND) }));
    }
    const now = this.clock.nowMs();
    const answers = rounds.flatMap((r) => r.answers);
    this.registry.recordReplies(answers, { list: true });
    this.#replies.forget(now, this.options.forgetSeconds);
    this.lastRoundAt = now;
    const failures = rounds.flatMap((r) => r.failures);
    if (failures.length > 0) {
      this.logger.debug({ err: (failures[0] as Error).message }, 'worker inspection round incomplete');
      if (failures.length === rounds.reduce((n, r) => n + r.methods, 0)) throw failures[0];
    }
  }

  /** One parallel round of `methods`: the workers' answers and the calls that failed. */
  async #ask(
    methods: readonly InspectMethod[],
    targets: Targets,
  ): Promise<{ answers: InspectReply[]; failures: unknown[]; methods: number }> {
    const results = await Promise.allSettled(methods.map((m) => this.control.run(m, {}, targets)));
    const answers: InspectReply[] = [];
    const failures: unknown[] = [];
    results.forEach((r, i) => {
      if (r.status === 'rejected') failures.push(r.reason);
      else for (const w of r.value.results) if (w.status === 'ok') answers.push({ worker: w.worker, method: methods[i]!, value: w.reply });
    });
    return { answers, failures, methods: methods.length };
  }

  /** The inspector asks live workers (by heartbeat) itself: this view does not ask them for the figures again. */
  #askedByInspector(worker: string): boolean {
    const known = this.registry.get(worker);
    return known !== undefined && this.registry.isAlive(known);
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
