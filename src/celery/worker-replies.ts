/**
 * What Celery 5.2.6 workers answer to `stats` and `active_queues` (docs/wire-protocol.md, captures
 * in test/fixtures/captures/celery-5.2.6/control_replies_by_pool.json). The one place these
 * replies are read: the background inspector, remediation and command confirmations all use it,
 * so they cannot disagree about what a pool looks like.
 */

/**
 * One worker's answer to one inspect method, whoever asked: the background inspector and the
 * workers snapshot (Flower's /api/workers) both hand their rounds' answers to the worker registry
 * in this shape, so a `stats` or `active_queues` round serves both views.
 */
export interface InspectReply {
  readonly worker: string;
  readonly method: string;
  readonly value: unknown;
}

const asRecord = (value: unknown): Record<string, unknown> | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/** The parts of a `stats` reply we use. */
export interface WorkerStats {
  /**
   * Live pool child processes: `pool.processes` is their pid list (prefork, solo). Only this moves
   * after pool_grow/pool_shrink, so confirmations and remediation bounds use it.
   */
  poolProcesses?: number;
  /** `pool.max-concurrency`: the only size a threads (or eventlet/gevent) pool reports. */
  maxConcurrency?: number;
  /**
   * Tasks the worker can run at once: the child processes where there are some, else the
   * threads pool's max-concurrency (a threads worker with -c 2 runs two tasks, and has no
   * `processes` list). This is what `celery_active_process_count` sums per queue.
   */
  concurrency?: number;
  /** Present only on workers started with --autoscale. */
  autoscaler?: { min: number; max: number };
}

export function parseStats(value: unknown): WorkerStats | undefined {
  const stats = asRecord(value);
  if (!stats) return undefined;
  const out: WorkerStats = {};
  const pool = asRecord(stats.pool);
  if (pool) {
    if (Array.isArray(pool.processes)) out.poolProcesses = pool.processes.length;
    const max = pool['max-concurrency'];
    if (typeof max === 'number' && Number.isInteger(max) && max >= 0) out.maxConcurrency = max;
  }
  const concurrency = out.poolProcesses ?? out.maxConcurrency;
  if (concurrency !== undefined) out.concurrency = concurrency;
  const auto = asRecord(stats.autoscaler);
  if (auto && typeof auto.min === 'number' && typeof auto.max === 'number') out.autoscaler = { min: auto.min, max: auto.max };
  return out;
}

/** `active_queues` replies are lists of kombu `Queue.as_dict()`; undefined when not a list. */
export function parseActiveQueues(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const names: string[] = [];
  for (const q of value) {
    const name = asRecord(q)?.name;
    if (typeof name === 'string') names.push(name);
  }
  return names;
}
