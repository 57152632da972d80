import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { Logger } from '../../log.js';
import { asError } from '../async.js';
import { pidboxRequestBody, PIDBOX_EXCHANGE, REPLY_EXCHANGE, replyLimit, requestExpires, type LamportClock } from '../pidbox.js';
import type { BroadcastOptions, ControlReply, ControlRequest } from '../transport.js';

/**
 * Pidbox over AMQP (docs/wire-protocol.md §B1-B3, §B6): requests go to the `celery.pidbox`
 * fanout; replies come back on one reply queue per connection and are matched to their
 * broadcast by ticket. A broadcast ends at its reply limit or its idle timeout, whichever first.
 */

/** kombu's control_queue_expires (10 s) and control_queue_ttl (300 s), as the worker declares them. */
export const REPLY_QUEUE_ARGUMENTS = { 'x-expires': 10_000, 'x-message-ttl': 300_000 };

interface PendingBroadcast {
  readonly replies: ControlReply[];
  readonly limit: number | undefined;
  readonly idleMs: number;
  timer: NodeJS.Timeout | undefined;
  readonly resolve: (replies: ControlReply[]) => void;
}

/** The broadcasts of one connection still collecting replies, by ticket. */
export class PendingReplies {
  readonly #pending = new Map<string, PendingBroadcast>();

  /** Starts collecting for `ticket`; resolves with what arrived, at the limit or the idle timeout. */
  expect(ticket: string, limit: number | undefined, idleMs: number): Promise<ControlReply[]> {
    return new Promise<ControlReply[]>((resolve) => {
      const pending: PendingBroadcast = { replies: [], limit, idleMs, timer: undefined, resolve };
      this.#pending.set(ticket, pending);
      this.#arm(ticket, pending);
    });
  }

  /** One reply message; a ticket no broadcast waits for (a late reply) is ignored. */
  deliver(ticket: string, replies: readonly ControlReply[]): void {
    const pending = this.#pending.get(ticket);
    if (!pending) return;
    pending.replies.push(...replies);
    if (pending.limit !== undefined && pending.replies.length >= pending.limit) this.finish(ticket);
    else this.#arm(ticket, pending);
  }

  /** Forgets a broadcast that was never sent (its publish failed). */
  cancel(ticket: string): void {
    clearTimeout(this.#pending.get(ticket)?.timer);
    this.#pending.delete(ticket);
  }

  finish(ticket: string): void {
    const pending = this.#pending.get(ticket);
    if (!pending) return;
    this.#pending.delete(ticket);
    clearTimeout(pending.timer);
    pending.resolve(pending.replies);
  }

  /**
   * The connection is gone. Replies that already arrived are real answers, so every broadcast
   * resolves with them, exactly like an idle timeout would; none hangs.
   */
  finishAll(): void {
    for (const ticket of [...this.#pending.keys()]) this.finish(ticket);
  }

  #arm(ticket: string, pending: PendingBroadcast): void {
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => this.finish(ticket), Math.max(0, pending.idleMs));
  }
}

/** A reply as the worker sends it: ticket and clock in the headers, `{"<node>": <value>}` body. */
export interface AmqpReply {
  readonly ticket: string | undefined;
  readonly clock: number | undefined;
  /** Undefined when the body is not a JSON object. */
  readonly replies: ControlReply[] | undefined;
}

export function parseReply(message: ConsumeMessage): AmqpReply {
  const headers = message.properties.headers as Record<string, unknown> | undefined;
  const ticket = headers?.['ticket'];
  const clock = headers?.['clock'];
  let replies: ControlReply[] | undefined;
  try {
    const body: unknown = JSON.parse(message.content.toString('utf8'));
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      replies = Object.entries(body).map(([worker, value]) => ({ worker, value }));
    }
  } catch {
    replies = undefined;
  }
  return { ticket: typeof ticket === 'string' ? ticket : undefined, clock: typeof clock === 'number' ? clock : undefined, replies };
}

/**
 * Publishes one request on the pidbox fanout and, when replies are wanted, returns the promise
 * of them. Throws (nothing sent, nothing pending) when the channel is already gone.
 */
export function publishRequest(
  channel: Channel,
  pending: PendingReplies,
  clock: LamportClock,
  request: ControlRequest,
  options: BroadcastOptions,
  reply: { readonly ticket: string; readonly oid: string } | undefined,
): Promise<ControlReply[]> {
  const body = pidboxRequestBody(request, reply);
  // Typed explicitly: amqplib would send a clock of 128..32767 as a 16-bit int (table type
  // 's'), which py-amqp 5.1 reads as a short string; the worker then dies with a
  // UnicodeDecodeError on every command. Celery itself sends an int32 and a double.
  const headers = {
    clock: { '!': 'int', value: clock.forward() },
    expires: { '!': 'double', value: requestExpires(options, Date.now()) },
  };
  const result = reply ? pending.expect(reply.ticket, replyLimit(request, options), options.timeoutMs) : Promise.resolve([]);
  try {
    channel.publish(PIDBOX_EXCHANGE, '', Buffer.from(JSON.stringify(body), 'utf8'), {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      deliveryMode: 2,
      priority: 0,
      headers,
    });
  } catch (error) {
    if (reply) pending.cancel(reply.ticket);
    throw error;
  }
  return result;
}

/** What the pidbox channel needs of its connection's session. */
export interface PidboxSession {
  readonly model: ChannelModel;
  /** kombu's oid: names this connection's reply queue and routes replies to it. */
  readonly oid: string;
  readonly pending: PendingReplies;
  cause?: Error | undefined;
}

export interface PidboxChannelHooks {
  readonly logger: Logger;
  readonly clock: LamportClock;
  /** The channel is gone: the connection is rebuilt as a whole. */
  channelClosed(): void;
  /** Re-declaring a cancelled reply consumer failed. */
  failed(error: Error): void;
}

/** The control channel of one connection: both pidbox exchanges, and its reply consumer. */
export async function openPidboxChannel(session: PidboxSession, hooks: PidboxChannelHooks): Promise<Channel> {
  const channel = await session.model.createChannel();
  channel.on('error', (error: Error) => {
    session.cause ??= error;
    hooks.logger.warn({ err: error.message }, 'pidbox channel error');
  });
  channel.on('close', () => hooks.channelClosed());
  await channel.assertExchange(PIDBOX_EXCHANGE, 'fanout', { durable: false, autoDelete: false });
  await channel.assertExchange(REPLY_EXCHANGE, 'direct', { durable: false, autoDelete: false });
  await consumeReplies(session, channel, hooks);
  return channel;
}

async function consumeReplies(session: PidboxSession, channel: Channel, hooks: PidboxChannelHooks): Promise<void> {
  const queue = `${session.oid}.reply.celery.pidbox`;
  await channel.assertQueue(queue, { durable: false, autoDelete: true, arguments: REPLY_QUEUE_ARGUMENTS });
  await channel.bindQueue(queue, REPLY_EXCHANGE, session.oid);
  await channel.consume(
    queue,
    (message) => {
      if (message) onReply(session, message, hooks);
      else {
        hooks.logger.warn({ queue }, 'broker cancelled the pidbox reply consumer; re-declaring it');
        consumeReplies(session, channel, hooks).catch((error: unknown) => hooks.failed(asError(error)));
      }
    },
    { noAck: true },
  );
}

function onReply(session: PidboxSession, message: ConsumeMessage, hooks: PidboxChannelHooks): void {
  const reply = parseReply(message);
  if (reply.clock !== undefined) hooks.clock.adjust(reply.clock);
  if (reply.ticket === undefined) return;
  if (reply.replies === undefined) {
    hooks.logger.warn({ ticket: reply.ticket }, 'pidbox reply is not a JSON object; ignored');
    return;
  }
  session.pending.deliver(reply.ticket, reply.replies);
}
