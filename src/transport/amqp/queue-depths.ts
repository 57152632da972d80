import type { Channel, ChannelModel } from 'amqplib';
import { withDeadline } from '../async.js';
import { QueueNotFoundError, type QueueDepth } from '../transport.js';

/**
 * Passive `queue.declare` per queue (docs/wire-protocol.md §C1): ready messages and consumers.
 * A passive declare of a missing queue closes its channel with 404, so checks run on a disposable
 * channel that is replaced after every such loss; the event and pidbox channels never see it.
 */
export async function checkQueueDepths(model: ChannelModel, queues: readonly string[], timeoutMs: number): Promise<QueueDepth[]> {
  const results: QueueDepth[] = [];
  const deadline = Date.now() + timeoutMs;
  let channel: Channel | undefined;
  try {
    for (const name of queues) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        results.push({ name, messages: null, consumers: null, error: `timed out after ${timeoutMs} ms` });
        continue;
      }
      try {
        channel ??= await withDeadline(
          openDisposableChannel(model),
          remaining,
          undefined,
          (late) => void late.close().catch(() => undefined),
        );
        const ok = await withDeadline(channel.checkQueue(name), deadline - Date.now());
        results.push({ name, messages: ok.messageCount, consumers: ok.consumerCount });
      } catch (error) {
        const e = error as { code?: unknown; message?: string };
        if (e.code === 404) {
          results.push({ name, messages: 0, consumers: 0 });
        } else {
          results.push({ name, messages: null, consumers: null, error: e.message ?? String(error) });
        }
        // After a 404 or a timeout this channel is dead or stuck; the next queue gets a new one.
        const stale = channel;
        channel = undefined;
        stale?.close().catch(() => undefined);
      }
    }
  } finally {
    channel?.close().catch(() => undefined);
  }
  return results;
}

async function openDisposableChannel(model: ChannelModel): Promise<Channel> {
  const channel = await model.createChannel();
  // Without a listener the 404 of a passive declare is an unhandled 'error' and kills the process.
  channel.on('error', () => undefined);
  return channel;
}

/**
 * `queue.purge` on a disposable channel (a missing queue closes it with 404): RabbitMQ removes the
 * ready messages in one step and answers their count; unacknowledged ones stay with consumers.
 */
export async function purgeQueueOn(model: ChannelModel, queue: string, timeoutMs: number): Promise<number> {
  const channel = await withDeadline(
    openDisposableChannel(model),
    timeoutMs,
    undefined,
    (late) => void late.close().catch(() => undefined),
  );
  try {
    const ok = await withDeadline(channel.purgeQueue(queue), timeoutMs);
    return ok.messageCount;
  } catch (error) {
    if ((error as { code?: unknown }).code === 404) throw new QueueNotFoundError(queue);
    throw error;
  } finally {
    channel.close().catch(() => undefined);
  }
}
