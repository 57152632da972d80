import { parseActiveQueues, parseStats } from '../celery/worker-replies.js';
import type { WireArguments } from './command-arguments.js';

/**
 * How a command's effect shows in a read-only command's reply. The confirmation loop asks
 * `probe` again and again until `reached` holds or the bound passes.
 */
export interface Confirmation {
  probe(args: WireArguments): { method: string; arguments: Record<string, unknown> };
  /** For effects relative to the worker's state before the command: read from a probe reply sent first. */
  baseline?(reply: unknown): number | undefined;
  /** `reply` is undefined when the worker did not answer the probe. */
  reached(reply: unknown, args: WireArguments, baseline: number | undefined): boolean;
  /** What is waited for, for the result message, e.g. "3 pool processes". */
  expectation(args: WireArguments, baseline: number | undefined): string;
}

/** `stats.pool.processes` is the list of live prefork children; it changes within ~5 s (§B5). */
const poolProcessCount = (stats: unknown): number | undefined => parseStats(stats)?.poolProcesses;

export function poolSizeConfirmation(direction: 1 | -1): Confirmation {
  return {
    probe: () => ({ method: 'stats', arguments: {} }),
    baseline: poolProcessCount,
    reached: (reply, args, baseline) => baseline !== undefined && poolProcessCount(reply) === baseline + direction * (args.n as number),
    expectation: (args, baseline) =>
      baseline === undefined
        ? 'a pool process count in stats'
        : `${baseline + direction * (args.n as number)} pool processes (was ${baseline})`,
  };
}

const queueNames = (reply: unknown): string[] => parseActiveQueues(reply) ?? [];

export function consumingConfirmation(consuming: boolean): Confirmation {
  return {
    probe: () => ({ method: 'active_queues', arguments: {} }),
    reached: (reply, args) => Array.isArray(reply) && queueNames(reply).includes(args.queue as string) === consuming,
    expectation: (args) => `queue ${String(args.queue)} ${consuming ? 'in' : 'gone from'} active_queues`,
  };
}

/** `registered` lists `"<task> [k=v k=v]"`, values as Python's str(); a task without set values is its bare name. */
export function registeredInfo(reply: unknown, task: string): Map<string, string> | undefined {
  if (!Array.isArray(reply)) return undefined;
  for (const entry of reply) {
    if (typeof entry !== 'string') continue;
    if (entry === task) return new Map();
    if (entry.startsWith(`${task} [`) && entry.endsWith(']')) {
      const fields = entry.slice(task.length + 2, -1).split(' ');
      return new Map(fields.map((f) => [f.slice(0, Math.max(f.indexOf('='), 0)), f.slice(f.indexOf('=') + 1)]));
    }
  }
  return undefined;
}

/** Python's str() of the JSON number we sent, for the values this module allows (no exponents). */
const pythonNumber = (n: number): string => String(n);

export const rateLimitConfirmation: Confirmation = {
  probe: () => ({ method: 'registered', arguments: { taskinfoitems: ['rate_limit'] } }),
  reached: (reply, args) => {
    const info = registeredInfo(reply, args.task_name as string);
    return info !== undefined && info.get('rate_limit') === (args.rate_limit === null ? undefined : (args.rate_limit as string));
  },
  expectation: (args) =>
    args.rate_limit === null
      ? `no rate limit on ${String(args.task_name)} in registered`
      : `${String(args.task_name)} [rate_limit=${String(args.rate_limit)}] in registered`,
};

export const timeLimitConfirmation: Confirmation = {
  probe: () => ({ method: 'registered', arguments: { taskinfoitems: ['soft_time_limit', 'time_limit'] } }),
  reached: (reply, args) => {
    const info = registeredInfo(reply, args.task_name as string);
    const shown = (value: unknown): string | undefined => (value === null ? undefined : pythonNumber(value as number));
    return info !== undefined && info.get('soft_time_limit') === shown(args.soft) && info.get('time_limit') === shown(args.hard);
  },
  expectation: (args) =>
    args.hard === null
      ? `no time limits on ${String(args.task_name)} in registered`
      : `${String(args.task_name)} [soft_time_limit=${String(args.soft)} time_limit=${String(args.hard)}] in registered`,
};

export const autoscaleConfirmation: Confirmation = {
  probe: () => ({ method: 'stats', arguments: {} }),
  reached: (reply, args) => {
    const autoscaler = parseStats(reply)?.autoscaler;
    return autoscaler?.max === args.max && autoscaler?.min === args.min;
  },
  expectation: (args) => `stats.autoscaler max=${String(args.max)} min=${String(args.min)}`,
};

export const revokeConfirmation: Confirmation = {
  probe: () => ({ method: 'revoked', arguments: {} }),
  reached: (reply, args) => {
    const ids = Array.isArray(args.task_id) ? (args.task_id as string[]) : [args.task_id as string];
    return Array.isArray(reply) && ids.every((id) => reply.includes(id));
  },
  expectation: () => 'the task ids in revoked',
};

/** A worker that stopped answering ping has gone (shutdown waits for running tasks first). */
export const goneConfirmation: Confirmation = {
  probe: () => ({ method: 'ping', arguments: {} }),
  reached: (reply) => reply === undefined,
  expectation: () => 'no answer to ping',
};
