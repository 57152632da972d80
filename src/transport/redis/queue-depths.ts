import type { Redis } from 'ioredis';
import { asError, withDeadline } from '../async.js';
import { priorityKeys, type RedisLayout } from '../redis-keys.js';
import type { QueueDepth } from '../transport.js';

/**
 * kombu's `_size()` for each queue (docs/wire-protocol.md §C2): the sum of LLEN over the queue's
 * priority lists, all queues in one pipeline. A missing list is 0; Redis keeps no consumer count.
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
  for (const keys of keysPerQueue) for (const key of keys) pipeline.llen(key);
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
    for (let k = 0; k < keysPerQueue[i]!.length; k++) {
      const [err, value] = results[index++] ?? [new Error('missing reply'), null];
      if (err) error ??= err.message;
      else messages += Number(value);
    }
    return error === undefined ? { name, messages, consumers: null } : { name, messages: null, consumers: null, error };
  });
}
