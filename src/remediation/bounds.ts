import type { RemediationExecutor, SuppressReason } from './types.js';
import type { RemediationAction, RemediationRule } from './rules.js';
import type { RemediationState } from './state.js';
import { stateKeys } from './state-keys.js';

export interface BoundsInput {
  rule: RemediationRule;
  action: RemediationAction;
  /** Rendered and converted once (convertArguments): numbers are numbers here. */
  args: Record<string, unknown>;
  targets: string[];
  /** Filled with the arguments of workers that get a clamped n. */
  perTarget: Map<string, Record<string, unknown>>;
  /**
   * Filled with the pool size each kept worker is counted at: its live stats, or the size a
   * recent grow or shrink is heading to when stats do not show it yet.
   */
  counted: Map<string, number>;
  skip: (worker: string, reason: SuppressReason, detail?: string) => void;
  /** On a resolved notification: where the firing alert recorded what it grew on a worker. */
  shrinkBackKey: ((worker: string) => string) | undefined;
}

/**
 * Bounds from live stats: grow never past the ceiling (n is clamped to what is left), shrink
 * never below the floor, autoscale only with min ≤ max ≤ ceiling; on resolve, shrink back at
 * most what this alert grew. Workers that cannot take the action are skipped with 'bound'.
 */
export async function applyBounds(executor: RemediationExecutor, state: RemediationState, input: BoundsInput): Promise<string[]> {
  const { rule, action, args, targets, perTarget, counted: countedAt, skip, shrinkBackKey } = input;
  if (action !== 'pool_grow' && action !== 'pool_shrink' && action !== 'autoscale') return targets;
  const b = rule.bounds;
  const isCount = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;
  if (action === 'autoscale') {
    const { max, min } = args;
    if (!(isCount(max, 0) && isCount(min, 0) && min <= max && max <= (b.max_autoscale ?? Infinity))) {
      for (const w of targets)
        skip(w, 'bound', `autoscale needs 0 ≤ min ≤ max ≤ ${b.max_autoscale}, got min=${String(min)} max=${String(max)}`);
      return [];
    }
    return targets;
  }
  const n = args.n ?? 1;
  if (!isCount(n, 1)) {
    for (const w of targets) skip(w, 'bound', `n must be a positive integer, got ${String(args.n)}`);
    return [];
  }
  const stats = await executor.poolStats(targets);
  /** The pool size a recent resize of this worker is heading to, while its key lives. */
  const heading = async (a: 'pool_grow' | 'pool_shrink', worker: string): Promise<number | undefined> => {
    const v = await state.get(stateKeys.pendingResize(a, worker));
    return v === undefined ? undefined : Number(v);
  };
  const kept: string[] = [];
  for (const worker of targets) {
    const s = stats.get(worker);
    if (!s || s.processes === undefined) {
      skip(worker, 'bound', 'no live pool size (worker did not answer stats, or its pool cannot be resized)');
      continue;
    }
    let allowed: number;
    if (action === 'pool_grow') {
      const counted = Math.max(s.processes, (await heading('pool_grow', worker)) ?? 0);
      const recent = counted - s.processes;
      countedAt.set(worker, counted);
      allowed = Math.min(n, (b.max_pool_processes ?? 0) - counted);
      if (allowed < 1) {
        skip(
          worker,
          'bound',
          `already at ${counted} processes${recent > 0 ? ` (${recent} from a grow not in stats yet)` : ''} (ceiling ${b.max_pool_processes})`,
        );
        continue;
      }
    } else {
      const counted = Math.min(s.processes, (await heading('pool_shrink', worker)) ?? Infinity);
      countedAt.set(worker, counted);
      allowed = Math.min(n, counted - b.min_pool_processes);
      if (shrinkBackKey) {
        const grown = Number((await state.get(shrinkBackKey(worker))) ?? '0');
        if (grown < 1) {
          skip(worker, 'nothing_to_revert', 'this alert did not grow this worker');
          continue;
        }
        allowed = Math.min(allowed, grown);
      }
      if (allowed < 1) {
        skip(worker, 'bound', `already at ${counted} processes (floor ${b.min_pool_processes})`);
        continue;
      }
    }
    if (allowed !== n) perTarget.set(worker, { ...args, n: allowed });
    kept.push(worker);
  }
  return kept;
}

export interface ResizeRecord {
  action: RemediationAction;
  args: Record<string, unknown>;
  perTarget: ReadonlyMap<string, Record<string, unknown>>;
  /** The pool size applyBounds counted each worker at. */
  counted: ReadonlyMap<string, number>;
  /** The workers the command succeeded on. */
  acted: readonly string[];
  /** Where a firing alert records what it grew on a worker. */
  grownKey: (worker: string) => string;
  resolvedStep: boolean;
  pendingMs: number;
  memoryMs: number;
}

/**
 * The bounds' memory of a resize that acted, read by applyBounds next time: the size each worker
 * is heading to until stats show it, and what a firing alert grew (its shrink-back undoes at most
 * that, then forgets it).
 */
export async function rememberResize(state: RemediationState, r: ResizeRecord): Promise<void> {
  const { action, args, acted } = r;
  if (action !== 'pool_grow' && action !== 'pool_shrink') return;
  for (const worker of acted) {
    const n = r.perTarget.get(worker)?.n ?? args.n;
    if (typeof n === 'number') {
      // Pool processes change on the pool's next maintenance tick (up to ~5 s), so `stats`
      // lags: until then the bounds count the size this change is heading to. A size, not a
      // delta: once stats show the change, it must not be counted a second time.
      // (The worker's in-flight lock is still held: nobody else updates this key meanwhile.)
      const counted = r.counted.get(worker);
      if (counted !== undefined) {
        const heading = action === 'pool_grow' ? counted + n : counted - n;
        await state.put(stateKeys.pendingResize(action, worker), String(heading), r.pendingMs);
      }
      if (!r.resolvedStep && action === 'pool_grow') await state.put(r.grownKey(worker), String(n), r.memoryMs);
    }
    if (r.resolvedStep && action === 'pool_shrink') await state.release(r.grownKey(worker));
  }
}
