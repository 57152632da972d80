import type { Channel, ChannelModel } from 'amqplib';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { DeliveryFrameReader, interceptDeliveries, missingAmqplibInternals } from '../../src/transport/amqp/delivery-frames.js';
import { EventSubscription } from '../../src/transport/amqp/event-subscription.js';
import { RecordingSink } from '../support/transport-conformance.js';

/**
 * An amqplib whose private objects differ from the ones the lean delivery path was written
 * against (an upgrade): nothing is patched, events keep coming through amqplib's own callback,
 * and the fallback is loud — the missing internals are named in a warning.
 * test/integration/amqplib-internals.test.ts checks the real amqplib has them.
 */

/** A connection as a future amqplib might shape it: no `rest`, no `recvFrame`, no `stream`. */
const changedModel = () => ({ connection: { buffer: Buffer.alloc(0), nextFrame: () => false } }) as unknown as ChannelModel;
const channel = { ch: 1, ack: () => undefined } as unknown as Channel;

describe('lean delivery path on an amqplib with other internals', () => {
  it('names every missing internal', () => {
    expect(missingAmqplibInternals(changedModel(), { ch: undefined } as unknown as Channel)).toEqual([
      'connection.rest',
      'connection.recvFrame',
      'channel.ch',
      'connection.stream',
    ]);
  });

  it('installs nothing: the connection is left exactly as amqplib made it', () => {
    const model = changedModel();
    const before = { ...(model.connection as object) };
    expect(interceptDeliveries(model, new DeliveryFrameReader(1, 'tag', () => undefined))).toBeUndefined();
    expect(model.connection).toEqual(before);
  });

  it('the subscription reports the fallback, warns with what is missing, and still delivers through the callback', () => {
    const lines: Array<{ level: number; msg: string; missing?: string[] }> = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as (typeof lines)[number]) });
    const sink = new RecordingSink();
    const subscription = new EventSubscription(channel, sink, 1_000_000, 100, logger);
    expect(subscription.takeDeliveriesFrom(changedModel(), 'tag')).toBe(false);
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.missing).toEqual(['connection.rest', 'connection.recvFrame', 'connection.stream']);
    expect(warnings[0]!.msg).toMatch(/about twice the CPU per event.*celery_autopilot_amqp_event_delivery/);
    subscription.deliverMessage({
      fields: { deliveryTag: 1, routingKey: 'worker.heartbeat' },
      properties: { contentType: 'application/json', contentEncoding: 'utf-8' },
      content: Buffer.from('{}'),
    } as never);
    expect(sink.messages).toHaveLength(1);
    expect(subscription.leanDeliveries).toBe(0);
    subscription.retire();
  });
});
