import type { InspectReply } from '../celery/worker-replies.js';

/** What Flower's /api/workers shows per worker, in its order: one inspect reply per method. */
export const INSPECT_METHODS = ['stats', 'active_queues', 'registered', 'scheduled', 'active', 'reserved', 'revoked', 'conf'] as const;
export type InspectMethod = (typeof INSPECT_METHODS)[number];

/**
 * The two methods the exporter's figures come from (queues, pool processes): the background
 * inspector asks every live worker for them, so the workers snapshot does not ask those workers again.
 */
export const FIGURE_METHODS: readonly InspectMethod[] = ['stats', 'active_queues'];

/** One worker's last answer to each method, and when it last answered anything (s, local clock). */
export type WorkerInfo = Partial<Record<InspectMethod, unknown>> & { timestamp: number };

const isInspectMethod = (method: string): method is InspectMethod => (INSPECT_METHODS as readonly string[]).includes(method);

/** A handler's failure (`{"error": ...}`) is not an answer to keep (control/replies.ts). */
const isError = (value: unknown): boolean =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1 && 'error' in value;

/**
 * Every worker's last inspect answers as they came, whoever asked (the background inspector or
 * a round of the workers snapshot): the one store behind Flower's /api/workers and what
 * tasks.persist keeps of it. A worker is listed (shown) once it answered a snapshot round, so
 * Flower sees all eight methods from the start; until then the inspector's answers are only
 * kept, and only once the view is in use (before that nobody reads them).
 */
export class InspectReplies {
  readonly #listed = new Map<string, WorkerInfo>();
  readonly #unlisted = new Map<string, WorkerInfo>();
  /** Workers whose entry was read back from tasks.persist and that have not answered since. */
  readonly #restored = new Set<string>();
  #keepEveryAnswer = false;

  /** The view is in use: keep the answers of workers not listed yet too. */
  keepEveryAnswer(): void {
    this.#keepEveryAnswer = true;
  }

  /** Records one round's answers at `nowMs`; `list`: they come from a snapshot round, which lists the workers. */
  record(replies: readonly InspectReply[], nowMs: number, list: boolean): void {
    const seen = new Set<string>();
    for (const r of replies) {
      // A second process using the same node name answers too; the first answer counts (as in ControlClient).
      const key = `${r.method} ${r.worker}`;
      if (!isInspectMethod(r.method) || isError(r.value) || seen.has(key)) continue;
      seen.add(key);
      let info = this.#listed.get(r.worker);
      if (info === undefined && list) {
        info = this.#unlisted.get(r.worker) ?? { timestamp: nowMs / 1000 };
        this.#unlisted.delete(r.worker);
        this.#listed.set(r.worker, info);
      }
      if (info === undefined) {
        if (!this.#keepEveryAnswer) continue;
        this.#unlisted.set(r.worker, (info = this.#unlisted.get(r.worker) ?? { timestamp: nowMs / 1000 }));
      }
      this.#restored.delete(r.worker);
      const added = !(r.method in info);
      info[r.method] = r.value;
      info.timestamp = nowMs / 1000;
      if (added) this.#inFlowerOrder(r.worker, info);
    }
  }

  /** Keeps each entry's keys in Flower's order (timestamp, then the methods) whoever answered first. */
  #inFlowerOrder(worker: string, info: WorkerInfo): void {
    const ordered: WorkerInfo = { timestamp: info.timestamp };
    for (const m of INSPECT_METHODS) if (m in info) ordered[m] = info[m];
    (this.#listed.has(worker) ? this.#listed : this.#unlisted).set(worker, ordered);
  }

  /** Drops workers that answered nothing for `seconds`. */
  forget(nowMs: number, seconds: number): void {
    for (const entries of [this.#listed, this.#unlisted]) {
      for (const [name, info] of entries) {
        if (nowMs / 1000 - info.timestamp <= seconds) continue;
        entries.delete(name);
        this.#restored.delete(name);
      }
    }
  }

  /**
   * Puts back a worker's last inspect replies read from persistence (before the first round): shown
   * as they were, with their old timestamp, so the forget rule ages them as if we had kept running.
   */
  restore(worker: string, info: WorkerInfo): void {
    if (this.#listed.has(worker)) return;
    this.#listed.set(worker, info);
    this.#restored.add(worker);
  }

  /** True while the entry is only what the file said: it proves nothing about liveness. */
  isRestored(worker: string): boolean {
    return this.#restored.has(worker);
  }

  get(worker: string): WorkerInfo | undefined {
    return this.#listed.get(worker);
  }

  /** The listed workers. */
  all(): ReadonlyMap<string, WorkerInfo> {
    return this.#listed;
  }
}
