import type { Redis } from 'ioredis';
import { asError, withDeadline } from '../async.js';
import { priorityKeys, type RedisLayout } from './keys.js';
import type { QueueDepth } from '../transport.js';

/**
 * kombu's `_size()` for each queue (docs/wire-protocol.md §C2): the sum of LLEN over the queue's
 * priority lists, all queues in one pipeline. A missing list is 0; Redis keeps no consumer count.
 * In the same pipeline, so at the same moment, LINDEX -1 reads each list's oldest message
 * (kombu LPUSHes and BRPOPs) for its task id: the age of the oldest waiting message.
 */
export async function readQueueDepths(
  commands: Redis,
  layout: RedisLayout,
  queues: readonly string[],
  timeoutMs: number,
): Promise<QueueDepth[]> {
  const unreadable = (error: string): QueueDepth[] => queues.map((name) => ({ name, messages: null, consumers: null, error }));
  const keysPerQueue = queues.map((queue) => priorityKeys(layout, queue));
  const pipeline = commands.pipeline();
  for (const keys of keysPerQueue) for (const key of keys) pipeline.llen(key).lindex(key, -1);
  let results: Array<[Error | null, unknown]> | null;
  try {
    results = await withDeadline(pipeline.exec(), timeoutMs, 'reading queue lengths');
  } catch (error) {
    return unreadable(asError(error).message);
  }
  if (!results) return unreadable('queue length pipeline aborted');
  let index = 0;
  return queues.map((name, i) => {
    let messages = 0;
    let error: string | undefined;
    const oldestTaskIds: string[] = [];
    for (let k = 0; k < keysPerQueue[i]!.length; k++) {
      const [err, value] = results[index++] ?? [new Error('missing reply'), null];
      const [, tail] = results[index++] ?? [null, null];
      if (err) error ??= err.message;
      else messages += Number(value);
      const id = taskIdOf(tail);
      if (id !== undefined) oldestTaskIds.push(id);
    }
    return error === undefined ? { name, messages, consumers: null, oldestTaskIds } : { name, messages: null, consumers: null, error };
  });
}

/** The task id in a kombu message's headers (Celery protocol 2), or undefined. */
function taskIdOf(message: unknown): string | undefined {
  if (typeof message !== 'string' || message === '') return undefined;
  try {
    const id = (JSON.parse(message) as { headers?: { id?: unknown } }).headers?.id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Empties every priority list of a queue in one MULTI (LLEN each, then DEL each): Redis runs it
 * as one step, so the count is exactly what was removed even while clients LPUSH meanwhile.
 */
export async function purgeQueueLists(commands: Redis, layout: RedisLayout, queue: string, timeoutMs: number): Promise<number> {
  const keys = priorityKeys(layout, queue);
  const multi = commands.multi();
  for (const key of keys) multi.llen(key);
  multi.del(...keys);
  const results = await withDeadline(multi.exec(), timeoutMs, 'purging the queue');
  if (!results) throw new Error('purge transaction aborted');
  let removed = 0;
  for (const [err, value] of results.slice(0, keys.length)) {
    if (err) throw err;
    removed += Number(value);
  }
  return removed;
}
