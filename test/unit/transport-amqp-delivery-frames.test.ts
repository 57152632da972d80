import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeliveryFrameReader, type EventDelivery } from '../../src/transport/amqp/delivery-frames.js';

/**
 * The lean delivery reader against amqplib's own encoder and decoder: the frames are built by
 * amqplib (lib/defs.js, lib/frame.js; not exported by its package, so loaded by file path), and
 * what our reader takes out of them must equal what amqplib's decoder reads from the same bytes.
 */
const amqplibDir = path.dirname(createRequire(import.meta.url).resolve('amqplib'));
const load = createRequire(path.join(amqplibDir, 'lib', 'defs.js'));
interface Defs {
  BasicDeliver: number;
  BasicProperties: number;
  BasicConsumeOk: number;
  encodeMethod(id: number, channel: number, fields: Record<string, unknown>): Buffer;
  encodeProperties(id: number, channel: number, size: number, fields: Record<string, unknown>): Buffer;
}
interface Frames {
  makeBodyFrame(channel: number, payload: Buffer): Buffer;
  parseFrame(bin: Buffer, max: number): false | { rest: Buffer };
  decodeFrame(frame: unknown): { id?: number; fields?: Record<string, unknown>; content?: Buffer };
}
const defs = load('./defs.js') as Defs;
const frames = load('./frame.js') as Frames;

const CH = 3;
const TAG = 'amq.ctag-lean-reader-test';

interface Spec {
  tag?: number;
  consumerTag?: string;
  routingKey?: string;
  properties?: Record<string, unknown>;
  body?: Buffer;
  channel?: number;
  /** Body frame size (amqplib splits at the negotiated frame max). */
  chunk?: number;
}

/** One delivery as RabbitMQ sends it: basic.deliver, content header, body frames. */
function delivery(spec: Spec = {}): Buffer[] {
  const channel = spec.channel ?? CH;
  const body = spec.body ?? Buffer.from('{"type": "task-succeeded", "hostname": "w1@h", "clock": 7}');
  const parts = [
    defs.encodeMethod(defs.BasicDeliver, channel, {
      consumerTag: spec.consumerTag ?? TAG,
      deliveryTag: spec.tag ?? 1,
      redelivered: false,
      exchange: 'celeryev',
      routingKey: spec.routingKey ?? 'task.succeeded',
    }),
    defs.encodeProperties(defs.BasicProperties, channel, body.length, {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      headers: { hostname: 'w1@h' },
      deliveryMode: 1,
      priority: 0,
      ...spec.properties,
    }),
  ];
  const chunk = spec.chunk ?? 131_072;
  for (let at = 0; at < body.length; at += chunk) parts.push(frames.makeBodyFrame(channel, body.subarray(at, at + chunk)));
  return parts;
}

/** Feeds `bytes` to the reader as the connection's frame loop does (offsets into one buffer): ours taken, anything else counted as left to amqplib. */
function feed(reader: DeliveryFrameReader, bytes: Buffer): { left: number; rest: Buffer } {
  let at = 0;
  let left = 0;
  for (;;) {
    const used = reader.take(bytes, at);
    if (used > 0) {
      at += used;
      continue;
    }
    const frame = frames.parseFrame(bytes.subarray(at), 0);
    if (!frame) return { left, rest: bytes.subarray(at) };
    left += 1;
    at = bytes.length - frame.rest.length;
  }
}

function collect(): { reader: DeliveryFrameReader; got: EventDelivery[] } {
  const got: EventDelivery[] = [];
  return { reader: new DeliveryFrameReader(CH, TAG, (d) => got.push(d)), got };
}

describe('lean AMQP delivery reader', () => {
  it('reads what amqplib reads from the same frames: tag, routing key, content type, encoding and body', () => {
    const { reader, got } = collect();
    const bytes = delivery({ tag: 2 ** 40 + 5, routingKey: 'worker.heartbeat', properties: { contentEncoding: 'binary' } });
    const amqplib = bytes.map((b) => {
      const f = frames.parseFrame(b, 0);
      return frames.decodeFrame(f);
    });
    expect(feed(reader, Buffer.concat(bytes)).left).toBe(0);
    expect(got).toHaveLength(1);
    const [method, header, body] = amqplib;
    expect(got[0]!.deliveryTag).toBe(method!.fields!.deliveryTag);
    expect(got[0]!.routingKey).toBe(method!.fields!.routingKey);
    expect(got[0]!.contentType).toBe(header!.fields!.contentType);
    expect(got[0]!.contentEncoding).toBe(header!.fields!.contentEncoding);
    expect(got[0]!.body.equals(body!.content!)).toBe(true);
    expect(reader.taken).toBe(1);
  });

  it('takes many deliveries in one buffer, in order, with absent or non-ASCII properties', () => {
    const { reader, got } = collect();
    const bytes = Buffer.concat([
      ...delivery({ tag: 1, properties: { contentType: undefined, contentEncoding: undefined, headers: undefined } }),
      ...delivery({ tag: 2, routingKey: 'task.é', properties: { contentType: 'application/jsön' } }),
      ...delivery({ tag: 3, body: Buffer.alloc(0) }),
    ]);
    expect(feed(reader, bytes).left).toBe(0);
    expect(got.map((d) => [d.deliveryTag, d.routingKey, d.contentType, d.contentEncoding, d.body.length])).toEqual([
      [1, 'task.succeeded', undefined, undefined, 58],
      [2, 'task.é', 'application/jsön', 'utf-8', 58],
      [3, 'task.succeeded', 'application/json', 'utf-8', 0],
    ]);
  });

  it('reads every routing key right, past the number of strings it remembers', () => {
    const { reader, got } = collect();
    const keys = Array.from({ length: 80 }, (_, i) => `task.custom-${i % 40}`);
    expect(feed(reader, Buffer.concat(keys.flatMap((routingKey, tag) => delivery({ tag, routingKey })))).left).toBe(0);
    expect(got.map((d) => d.routingKey)).toEqual(keys);
  });

  it('joins a body split over several frames', () => {
    const { reader, got } = collect();
    const body = Buffer.from('x'.repeat(10_000));
    expect(feed(reader, Buffer.concat(delivery({ body, chunk: 4_093 }))).left).toBe(0);
    expect(got).toHaveLength(1);
    expect(got[0]!.body.equals(body)).toBe(true);
  });

  it('leaves other channels, other consumers and other methods to amqplib, whole', () => {
    const { reader, got } = collect();
    const bytes = Buffer.concat([
      defs.encodeMethod(defs.BasicConsumeOk, CH, { consumerTag: TAG }),
      ...delivery({ channel: CH + 1 }),
      ...delivery({ consumerTag: 'amq.ctag-someone-else' }),
      ...delivery({ tag: 9 }),
    ]);
    // consume-ok + 3 frames on the other channel + 3 frames of the other consumer.
    expect(feed(reader, bytes).left).toBe(7);
    expect(got.map((d) => d.deliveryTag)).toEqual([9]);
  });

  it('takes nothing from an incomplete frame, and goes on once the rest arrives', () => {
    const { reader, got } = collect();
    const bytes = Buffer.concat(delivery());
    for (const cut of [3, 10, bytes.length - 1]) {
      const first = feed(reader, bytes.subarray(0, cut));
      expect(first.left).toBe(0);
      expect(got).toHaveLength(0);
      const second = feed(reader, Buffer.concat([first.rest, bytes.subarray(cut)]));
      expect(second.left).toBe(0);
      expect(got).toHaveLength(1);
      got.length = 0;
    }
  });

  it('leaves a frame with a bad end octet to amqplib, which rejects it', () => {
    const { reader, got } = collect();
    const [method] = delivery();
    const bad = Buffer.from(method!);
    bad[bad.length - 1] = 0;
    expect(reader.take(bad)).toBe(0);
    expect(got).toHaveLength(0);
    expect(() => frames.parseFrame(bad, 0)).toThrow(/Invalid frame/);
  });

  it('a method frame where a content frame must come is a protocol error', () => {
    const { reader } = collect();
    const [method] = delivery();
    expect(reader.take(method!)).toBe(method!.length);
    expect(() => reader.take(method!)).toThrow(/expected a content header/);
  });

  it('once stopped, finishes the delivery it began and takes no new one', () => {
    const { reader, got } = collect();
    const [method, header, body] = delivery({ tag: 4 });
    reader.take(method!);
    reader.stop();
    expect(reader.idle).toBe(false);
    expect(reader.take(header!) + reader.take(body!)).toBe(header!.length + body!.length);
    expect(reader.idle).toBe(true);
    expect(got.map((d) => d.deliveryTag)).toEqual([4]);
    expect(feed(reader, Buffer.concat(delivery({ tag: 5 }))).left).toBe(3);
  });
});
