import type { Channel, ChannelModel, ConsumeMessage, Message } from 'amqplib';
import type { Logger } from '../../log.js';
import { asError } from '../async.js';
import type { EventSink } from '../transport.js';
import type { AmqpTransportSettings } from './settings.js';
import { channelNumber, DeliveryFrameReader, interceptDeliveries, missingAmqplibInternals, type EventDelivery } from './delivery-frames.js';

/**
 * Upper bound on how long an event stays unacked when traffic is too thin to fill a batch. At
 * normal (paced) rates this timer, not the batch size, decides how often an ack goes out, and
 * each ack is a socket write of its own: at 25 ms, 40 writes a second were ~10 % of the exporter's
 * CPU in a 1,500 events/s profile (bench/README.md). 100 ms keeps the unacked window far inside
 * the prefetch window (150 messages at that rate) for a quarter of the writes.
 */
const ACK_FLUSH_MS = 100;

/**
 * The event queue as Celery's EventReceiver declares it (§A1), bound to everything on the event
 * exchange, with message TTL and queue expiry when set, and the prefetch window on its channel.
 */
export async function declareEventQueue(channel: Channel, exchange: string, queue: AmqpTransportSettings['eventQueue']): Promise<void> {
  const args: Record<string, number> = {};
  if (queue.messageTtlMs > 0) args['x-message-ttl'] = Math.round(queue.messageTtlMs);
  if (queue.expiresMs > 0) args['x-expires'] = Math.round(queue.expiresMs);
  await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
  await channel.assertQueue(queue.name, { durable: false, autoDelete: queue.autoDelete ?? true, exclusive: false, arguments: args });
  await channel.bindQueue(queue.name, exchange, '#');
  await channel.prefetch(queue.prefetch);
}

/** One consumer on the event queue, with cheap batched acknowledgements. */
export class EventSubscription {
  retired = false;
  #unacked = 0;
  #lastTag: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #ackEvery: number;
  readonly #flush = (): void => this.flushAcks();
  #lean: DeliveryFrameReader | undefined;
  #stopLean: (() => void) | undefined;

  constructor(
    readonly channel: Channel,
    private readonly sink: EventSink,
    private readonly maxBytes: number,
    prefetch: number,
    private readonly logger: Logger,
  ) {
    // Acks must go out well before the prefetch window fills, or the broker stalls the stream.
    this.#ackEvery = prefetch > 0 ? Math.max(1, Math.min(500, Math.floor(prefetch / 4))) : 500;
  }

  /**
   * Once the broker has registered our consumer, its deliveries are read off the connection's
   * frames by ./delivery-frames.ts instead of amqplib's message assembly. Deliveries that arrive
   * before (in the same read as consume-ok) come through amqplib's callback: the same `deliver`.
   * False when this amqplib's internals do not allow it: every delivery then comes through the
   * callback, correct but at about twice the CPU.
   */
  takeDeliveriesFrom(model: ChannelModel, consumerTag: string): boolean {
    if (this.#lean) return true;
    const missing = missingAmqplibInternals(model, this.channel);
    if (missing.length > 0)
      this.logger.warn(
        { missing },
        'amqplib internals the event path relies on are missing (an amqplib upgrade?): events are read through amqplib itself, at about twice the CPU per event; see celery_autopilot_amqp_event_delivery',
      );
    const ch = channelNumber(this.channel);
    if (ch === undefined) return false;
    const lean = new DeliveryFrameReader(ch, consumerTag, (delivery) => this.deliver(delivery));
    this.#stopLean = interceptDeliveries(model, lean);
    if (!this.#stopLean) return false;
    this.#lean = lean;
    return true;
  }

  /** Deliveries read by the lean path so far. */
  get leanDeliveries(): number {
    return this.#lean?.taken ?? 0;
  }

  /** A delivery that came through amqplib's consumer callback (before the lean path took over). */
  deliverMessage(message: ConsumeMessage): void {
    this.deliver({
      deliveryTag: message.fields.deliveryTag,
      routingKey: message.fields.routingKey,
      contentType: message.properties.contentType as string | undefined,
      contentEncoding: message.properties.contentEncoding as string | undefined,
      body: message.content,
    });
  }

  deliver(delivery: EventDelivery): void {
    try {
      if (delivery.body.length > this.maxBytes) {
        this.sink.onDrop('oversize');
      } else {
        this.sink.onEvents(delivery);
      }
    } catch (error) {
      // A sink bug must not kill the channel (amqplib would) or stall acks; the message is spent.
      this.logger.error({ err: asError(error).message }, 'event sink threw; event discarded');
    }
    this.#lastTag = delivery.deliveryTag;
    if (++this.#unacked >= this.#ackEvery) this.flushAcks();
    else this.#timer ??= setTimeout(this.#flush, ACK_FLUSH_MS);
  }

  /** Acks everything delivered so far with one `multiple` ack. */
  flushAcks(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const last = this.#lastTag;
    this.#lastTag = undefined;
    this.#unacked = 0;
    if (last === undefined || this.retired) return;
    try {
      // amqplib's ack reads only the delivery tag of the message it is given.
      this.channel.ack({ fields: { deliveryTag: last } } as Message, true);
    } catch {
      // The channel is already closed; the broker requeues or drops those messages itself.
    }
  }

  retire(): void {
    this.retired = true;
    this.#stopLean?.();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
