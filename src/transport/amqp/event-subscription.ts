import type { Channel, ConsumeMessage } from 'amqplib';
import type { Logger } from '../../log.js';
import { asError } from '../async.js';
import type { EventSink } from '../transport.js';

/**
 * Upper bound on how long an event stays unacked when traffic is too thin to fill a batch. At
 * normal (paced) rates this timer, not the batch size, decides how often an ack goes out, and
 * each ack is a socket write of its own: at 25 ms, 40 writes a second were ~10 % of the exporter's
 * CPU in a 1,500 events/s profile (bench/README.md). 100 ms keeps the unacked window far inside
 * the prefetch window (150 messages at that rate) for a quarter of the writes.
 */
const ACK_FLUSH_MS = 100;

/** One consumer on the event queue, with cheap batched acknowledgements. */
export class EventSubscription {
  retired = false;
  #unacked = 0;
  #last: ConsumeMessage | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #ackEvery: number;
  readonly #flush = (): void => this.flushAcks();

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

  deliver(message: ConsumeMessage): void {
    try {
      if (message.content.length > this.maxBytes) {
        this.sink.onDrop('oversize');
      } else {
        this.sink.onEvents({
          contentType: message.properties.contentType as string | undefined,
          contentEncoding: message.properties.contentEncoding as string | undefined,
          body: message.content,
          routingKey: message.fields.routingKey,
        });
      }
    } catch (error) {
      // A sink bug must not kill the channel (amqplib would) or stall acks; the message is spent.
      this.logger.error({ err: asError(error).message }, 'event sink threw; event discarded');
    }
    this.#last = message;
    if (++this.#unacked >= this.#ackEvery) this.flushAcks();
    else this.#timer ??= setTimeout(this.#flush, ACK_FLUSH_MS);
  }

  /** Acks everything delivered so far with one `multiple` ack. */
  flushAcks(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const last = this.#last;
    this.#last = undefined;
    this.#unacked = 0;
    if (!last || this.retired) return;
    try {
      this.channel.ack(last, true);
    } catch {
      // The channel is already closed; the broker requeues or drops those messages itself.
    }
  }

  retire(): void {
    this.retired = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
