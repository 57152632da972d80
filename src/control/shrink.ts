import { parseStats } from '../celery/worker-replies.js';
import type { BrokerTransport, ControlRequest } from '../transport/transport.js';
import type { WorkerResult } from './results.js';

/**
 * pool_shrink bounded by each worker's live pool. billiard's Pool.shrink terminates idle
 * processes one at a time until it has removed n, and only when it runs out of idle ones does it
 * raise "All processes busy!": asked for 50 on an idle 5-process worker, it removes all five and
 * then answers an error, leaving a worker that is UP with no process to run a task. So the live
 * count is read first (stats) and n is cut per worker to leave `keep` processes.
 */

/** Processes a shrink leaves unless the request explicitly asks for fewer. */
export const DEFAULT_KEEP_PROCESSES = 1;
/** The most a request may ask to keep: as many as a pool may be grown to. */
export const MAX_KEEP_PROCESSES = 1000;

export interface ShrinkPlan {
  /** Workers to send to, grouped by the n each gets. */
  readonly groups: Map<number, string[]>;
  /** Per worker: live processes before, and how many will be removed. */
  readonly before: Map<string, { processes: number; n: number }>;
  /** Workers nothing is sent to, with why. */
  readonly refused: WorkerResult[];
}

type Targeting = Pick<ControlRequest, 'destination' | 'pattern' | 'matcher'>;

/** The live process count a stats reply shows: prefork's pid list, else the pool's max-concurrency. */
export function liveProcesses(stats: unknown): number | undefined {
  const s = parseStats(stats);
  return s?.poolProcesses ?? s?.maxConcurrency;
}

/**
 * Asks the targeted workers for stats and plans the shrink. A named worker that does not answer
 * gets nothing sent (no_reply): without its live count the bound cannot be kept. Pattern targets
 * become the names of the workers that answered, so each gets exactly its own n.
 */
export async function planShrink(
  transport: BrokerTransport,
  targeting: Targeting,
  named: readonly string[] | null,
  n: number,
  keep: number,
  timeoutMs: number,
): Promise<ShrinkPlan> {
  const replies = await transport.broadcast({ method: 'stats', arguments: {}, ...targeting }, { reply: true, timeoutMs });
  const stats = new Map<string, unknown>();
  for (const r of replies) if (!stats.has(r.worker)) stats.set(r.worker, r.value);
  const groups = new Map<number, string[]>();
  const before = new Map<string, { processes: number; n: number }>();
  const refused: WorkerResult[] = [];
  for (const worker of named ?? [...stats.keys()].sort()) {
    if (!stats.has(worker)) {
      refused.push({
        worker,
        status: 'no_reply',
        message: `no stats reply within ${timeoutMs} ms: the live pool size is unknown, nothing was sent`,
      });
      continue;
    }
    const processes = liveProcesses(stats.get(worker));
    if (processes === undefined) {
      refused.push({
        worker,
        status: 'error',
        kind: 'pool_floor',
        message: 'the worker reported no pool size in stats, so a shrink could not be bounded; nothing was sent',
      });
      continue;
    }
    const allowed = Math.min(n, processes - keep);
    if (allowed < 1) {
      refused.push({
        worker,
        status: 'error',
        kind: 'pool_floor',
        message: `the pool has ${processes} process${processes === 1 ? '' : 'es'} and a shrink leaves at least ${keep}; nothing was sent`,
        before: processes,
        after: processes,
      });
      continue;
    }
    before.set(worker, { processes, n: allowed });
    groups.set(allowed, [...(groups.get(allowed) ?? []), worker]);
  }
  return { groups, before, refused };
}

/** "3 → 1 processes (asked 50; leaves at least 1)": what a shrink did to one worker, in words. */
export function describeShrink(before: number, removed: number, asked: number, keep: number): string {
  const bounded = removed < asked ? `; asked ${asked}, bounded to leave at least ${keep}` : '';
  return `pool ${before} → ${before - removed} process${before - removed === 1 ? '' : 'es'}${bounded}`;
}
