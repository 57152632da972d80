import type { Channel, ChannelModel } from 'amqplib';
import type { RawEventMessage } from '../transport.js';

/**
 * The event consumer's deliveries read straight off amqplib's frame buffer.
 *
 * Why: every Celery event is its own AMQP message, three frames (basic.deliver, content header,
 * body). amqplib decodes each frame into an object, every property of the header (the headers
 * table included), assembles the message through per-message closures and dispatches it through
 * two event emitters. At paced rates that was a fifth of the exporter's CPU on RabbitMQ
 * (bench/README.md, "A lean delivery path"). The event path needs four things from a delivery:
 * its tag (to ack), routing key, content type and encoding, and the body, which is a slice of the
 * bytes already read. Reading those in place leaves nothing else to build.
 *
 * Only frames of one channel are taken, and only from a basic.deliver to our consumer through the
 * end of its body; everything else (other channels, other methods, a delivery already begun
 * before the interception started, a malformed frame) is left to amqplib exactly as before, so it
 * keeps its own error handling and heartbeat accounting. AMQP never interleaves another method
 * into a message's content frames on the same channel (0-9-1 §4.2.6), so a delivery is taken
 * whole or not at all.
 */

/** What the event path needs of one delivery: the sink's message, and the tag to ack it by. */
export interface EventDelivery extends RawEventMessage {
  readonly deliveryTag: number;
}

const FRAME_METHOD = 1;
const FRAME_HEADER = 2;
const FRAME_BODY = 3;
const FRAME_END = 0xce;
/** type (1) + channel (2) + size (4). */
const FRAME_HEADER_BYTES = 7;
/** class 60 (basic), method 60 (deliver). */
const BASIC_DELIVER = (60 << 16) | 60;
/** Property flags of the basic class: content-type is bit 15, content-encoding bit 14. */
const HAS_CONTENT_TYPE = 0x8000;
const HAS_CONTENT_ENCODING = 0x4000;

/**
 * The few short strings a stream repeats (routing keys, content types), decoded once: a delivery
 * whose bytes match a remembered one reuses its string instead of decoding and allocating anew.
 */
class ShortStrings {
  readonly #known: Array<{ bytes: Buffer; value: string }> = [];

  constructor(private readonly capacity: number) {}

  read(buf: Buffer, at: number, length: number): string {
    next: for (const known of this.#known) {
      if (known.bytes.length !== length) continue;
      for (let i = 0; i < length; i++) if (known.bytes[i] !== buf[at + i]) continue next;
      return known.value;
    }
    const value = buf.toString('utf8', at, at + length);
    if (this.#known.length < this.capacity) this.#known.push({ bytes: Buffer.from(buf.subarray(at, at + length)), value });
    return value;
  }
}

/**
 * The pure part: given a connection's read buffer and an offset in it, takes the frame there
 * when it belongs to a delivery to `consumerTag` on `channel`. Offsets instead of slices: a
 * message costs one Buffer view (its body), not one per frame and field.
 */
export class DeliveryFrameReader {
  /** Set between a taken basic.deliver and the end of its body. */
  #tag = 0;
  #routingKey = '';
  #contentType: string | undefined;
  #contentEncoding: string | undefined;
  #expect: 'method' | 'header' | 'body' = 'method';
  #bodySize = 0;
  #parts: Buffer[] = [];
  #received = 0;
  #stopped = false;
  readonly #consumerTag: Buffer;
  readonly #strings = new ShortStrings(32);
  /** Deliveries taken so far (the tests' proof that this path, not amqplib's, ran). */
  taken = 0;

  constructor(
    readonly channel: number,
    consumerTag: string,
    private readonly deliver: (delivery: EventDelivery) => void,
  ) {
    this.#consumerTag = Buffer.from(consumerTag, 'utf8');
  }

  /** No new delivery is taken once this is called; one already begun is finished. */
  stop(): void {
    this.#stopped = true;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  get idle(): boolean {
    return this.#expect === 'method';
  }

  /** Bytes consumed at `at`: a whole frame of ours, or 0 to leave the frame to amqplib. */
  take(buf: Buffer, at = 0): number {
    if (buf.length < at + FRAME_HEADER_BYTES + 1 || buf.readUInt16BE(at + 1) !== this.channel) return 0;
    const size = buf.readUInt32BE(at + 3);
    const total = FRAME_HEADER_BYTES + size + 1;
    if (buf.length < at + total || buf[at + total - 1] !== FRAME_END) return 0;
    const type = buf[at]!;
    const payload = at + FRAME_HEADER_BYTES;
    switch (this.#expect) {
      case 'method':
        return type === FRAME_METHOD && !this.#stopped && this.#method(buf, payload, size) ? total : 0;
      case 'header':
        if (type !== FRAME_HEADER) throw new Error(`AMQP: expected a content header after basic.deliver, got frame type ${type}`);
        this.#header(buf, payload);
        return total;
      case 'body':
        if (type !== FRAME_BODY) throw new Error(`AMQP: expected a content body frame, got frame type ${type}`);
        this.#body(buf.subarray(payload, payload + size));
        return total;
    }
  }

  #method(buf: Buffer, at: number, size: number): boolean {
    if (size < 4 || buf.readUInt32BE(at) !== BASIC_DELIVER) return false;
    at += 4;
    const tag = this.#consumerTag;
    // Not our consumer: amqplib dispatches it (and its content frames) as it always has.
    if (buf[at] !== tag.length || buf.compare(tag, 0, tag.length, at + 1, at + 1 + tag.length) !== 0) return false;
    at += 1 + tag.length;
    // delivery-tag: a 64-bit integer; amqplib hands it around as a Number, and so do we.
    this.#tag = buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
    at += 8 + 1; // + redelivered (a bit in its own octet)
    at += 1 + buf[at]!; // exchange
    this.#routingKey = this.#strings.read(buf, at + 1, buf[at]!);
    this.#expect = 'header';
    return true;
  }

  #header(buf: Buffer, at: number): void {
    // class-id (2), weight (2), body size (8), property flags (2), then the properties in flag order.
    this.#bodySize = buf.readUInt32BE(at + 4) * 0x1_0000_0000 + buf.readUInt32BE(at + 8);
    const flags = buf.readUInt16BE(at + 12);
    at += 14;
    this.#contentType = undefined;
    this.#contentEncoding = undefined;
    if (flags & HAS_CONTENT_TYPE) {
      this.#contentType = this.#strings.read(buf, at + 1, buf[at]!);
      at += 1 + buf[at]!;
    }
    if (flags & HAS_CONTENT_ENCODING) this.#contentEncoding = this.#strings.read(buf, at + 1, buf[at]!);
    this.#parts = [];
    this.#received = 0;
    if (this.#bodySize === 0) this.#finish(Buffer.alloc(0));
    else this.#expect = 'body';
  }

  #body(p: Buffer): void {
    this.#received += p.length;
    if (this.#received > this.#bodySize) throw new Error(`AMQP: ${this.#received} body bytes for a ${this.#bodySize}-byte message`);
    if (this.#received === this.#bodySize && this.#parts.length === 0) {
      // The usual case: one body frame. The slice shares amqplib's read buffer, which is never
      // written again (each read is a fresh Buffer), as amqplib's own message.content does.
      this.#finish(p);
      return;
    }
    this.#parts.push(p);
    if (this.#received === this.#bodySize) this.#finish(Buffer.concat(this.#parts));
  }

  #finish(body: Buffer): void {
    this.#expect = 'method';
    this.#parts = [];
    this.taken += 1;
    this.deliver({
      deliveryTag: this.#tag,
      routingKey: this.#routingKey,
      contentType: this.#contentType,
      contentEncoding: this.#contentEncoding,
      body,
    });
  }
}

/** amqplib's Connection, as far as this module touches it (not in its typings). */
interface FrameSource {
  rest: Buffer;
  recvFrame(): unknown;
}

/** The readers of one connection, consulted before amqplib's own frame reader. */
const READERS = Symbol('celery-autopilot delivery readers');
type Intercepted = FrameSource & { [READERS]?: DeliveryFrameReader[] };

/**
 * What the event path relies on in amqplib's private objects, by name, that `model` and `channel`
 * lack: the lean path needs the connection's `rest` buffer, its prototype's `recvFrame` and the
 * channel's number `ch`; read pacing and the forced close need its socket, `stream`. Empty on the
 * amqplib this was written against; an upgrade that renames any of them shows up here (and in
 * test/integration/amqplib-internals.test.ts) instead of as a silent 2× CPU per event.
 */
export function missingAmqplibInternals(model: ChannelModel, channel: Channel): string[] {
  const connection = model.connection as unknown as Partial<FrameSource> & { stream?: unknown };
  const missing: string[] = [];
  if (!Buffer.isBuffer(connection.rest)) missing.push('connection.rest');
  if (typeof (Object.getPrototypeOf(connection) as Partial<FrameSource>).recvFrame !== 'function') missing.push('connection.recvFrame');
  if (channelNumber(channel) === undefined) missing.push('channel.ch');
  const stream = connection.stream as { write?: unknown; bytesRead?: unknown } | undefined;
  if (typeof stream?.write !== 'function' || typeof stream.bytesRead !== 'number') missing.push('connection.stream');
  return missing;
}

/**
 * Makes `reader` see `model`'s frames first. amqplib's frame loop calls `connection.recvFrame()`
 * until it returns nothing; the wrapper takes our frames off `rest` (delivering them) and hands
 * amqplib the first frame that is not ours, or lets it read more from the socket. Returns the
 * undo, which stops the reader (it leaves the list once a delivery already begun is finished),
 * or undefined when this amqplib's internals differ and nothing was installed: amqplib's own
 * path keeps working, at about twice the CPU per event.
 */
export function interceptDeliveries(model: ChannelModel, reader: DeliveryFrameReader): (() => void) | undefined {
  const connection = model.connection as unknown as Intercepted;
  const amqplibRecvFrame = (Object.getPrototypeOf(connection) as Partial<FrameSource>).recvFrame;
  if (!Buffer.isBuffer(connection.rest) || typeof amqplibRecvFrame !== 'function') return undefined;
  let readers = connection[READERS];
  if (!readers) {
    readers = [];
    connection[READERS] = readers;
    const list = readers;
    connection.recvFrame = function recvFrame(this: Intercepted): unknown {
      const buf = this.rest;
      let at = 0;
      try {
        outer: for (;;) {
          for (let i = 0; i < list.length;) {
            const r = list[i]!;
            if (r.stopped && r.idle) {
              list.splice(i, 1);
              continue;
            }
            const used = r.take(buf, at);
            if (used > 0) {
              at += used;
              continue outer;
            }
            i += 1;
          }
          break;
        }
      } finally {
        // Also when a frame was a protocol error: what was delivered must not be read again.
        if (at > 0) this.rest = buf.subarray(at);
      }
      // amqplib's reader: parses the next frame, or reads the socket and calls recvFrame (this
      // wrapper) again, or returns false when nothing more is there.
      return amqplibRecvFrame.call(this);
    };
  }
  readers.push(reader);
  return () => reader.stop();
}

/** amqplib's channel number (`ch`), not in its typings. */
export function channelNumber(channel: Channel): number | undefined {
  const ch = (channel as unknown as { ch?: unknown }).ch;
  return typeof ch === 'number' ? ch : undefined;
}
