import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { InspectReply } from '../celery/worker-replies.js';
import type { ControlClient, Targets } from './client.js';

/** What Flower's /api/workers shows per worker, in its order: one inspect reply per method. */
export const SNAPSHOT_METHODS = ['stats', 'active_queues', 'registered', 'scheduled', 'active', 'reserved', 'revoked', 'conf'] as const;
export type SnapshotMethod = (typeof SNAPSHOT_METHODS)[number];

export type WorkerInfo = Partial<Record<SnapshotMethod, unknown>> & { timestamp: number };

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
  readonly #workers = new Map<string, WorkerInfo>();
  readonly #rounds = new Map<string, Promise<void>>();
  /** Workers whose entry was read back from tasks.persist and that have not answered since. */
  readonly #restored = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  lastRoundAt = 0;

  constructor(
    private readonly control: ControlClient,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: WorkerSnapshotOptions,
    /** The exporter's view: each round's `stats` and `active_queues` answers are recorded there too. */
    private readonly registry?: WorkerRegistry,
  ) {}

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
        if (w.status !== 'ok') continue;
        let info = this.#workers.get(w.worker);
        if (!info) this.#workers.set(w.worker, (info = { timestamp: now / 1000 }));
        this.#restored.delete(w.worker);
        info[SNAPSHOT_METHODS[i]!] = w.reply;
        info.timestamp = now / 1000;
        answers.push({ worker: w.worker, method: SNAPSHOT_METHODS[i]!, value: w.reply });
      }
    });
    this.registry?.recordReplies(answers);
    for (const [name, info] of this.#workers) {
      if (now / 1000 - info.timestamp <= this.options.forgetSeconds) continue;
      this.#workers.delete(name);
      this.#restored.delete(name);
    }
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
    if (this.#workers.has(worker)) return;
    this.#workers.set(worker, info);
    this.#restored.add(worker);
  }

  /** True while the entry is only what the file said: it proves nothing about liveness. */
  isRestored(worker: string): boolean {
    return this.#restored.has(worker);
  }

  get(worker: string): WorkerInfo | undefined {
    return this.#workers.get(worker);
  }

  all(): ReadonlyMap<string, WorkerInfo> {
    return this.#workers;
  }

  /** Workers whose `registered` reply lists the task (names may carry " [rate_limit=...]" suffixes). */
  registeredBy(taskName: string): string[] {
    const out: string[] = [];
    for (const [name, info] of this.#workers) {
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
