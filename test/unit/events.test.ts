import { describe, expect, it } from 'vitest';
import { decodeEventMessage, exceptionClassName, type CeleryEvent } from '../../src/celery/events.js';
import type { RawEventMessage } from '../../src/transport/transport.js';
import { amqpEventFixtures } from '../support/fixtures.js';

function decode(message: Partial<Omit<RawEventMessage, 'body'>> & { body: Buffer | string }) {
  const events: CeleryEvent[] = [];
  const drops: string[] = [];
  decodeEventMessage(
    {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      routingKey: 'x',
      ...message,
      body: Buffer.isBuffer(message.body) ? message.body : Buffer.from(message.body),
    },
    { event: (e) => events.push(e), drop: (r) => drops.push(r) },
  );
  return { events, drops };
}

describe('decoding captured Celery 5.2.6 events', () => {
  const fixtures = amqpEventFixtures();
  it.each(Object.entries(fixtures))('%s decodes without drops', (_name, fx) => {
    const { events, drops } = decode({
      body: fx.body_raw,
      contentType: fx.properties.content_type,
      contentEncoding: fx.properties.content_encoding,
      routingKey: fx.routing_key,
    });
    expect(drops).toEqual([]);
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) expect(typeof e.hostname).toBe('string');
  });

  it('a task.multi batch yields every element in order', () => {
    const fx = fixtures['task.multi:(batch of >1)']!;
    const { events } = decode({ body: fx.body_raw });
    expect(events.length).toBe(JSON.parse(fx.body_raw).length);
    expect(events.length).toBeGreaterThan(1);
  });
});

describe('bad input is dropped by reason, never thrown', () => {
  const worker = { hostname: 'w@h', timestamp: 1, type: 'worker-heartbeat' };
  it.each([
    ['non-JSON body', { body: 'not json{' }, ['bad_json']],
    ['pickle content type', { body: '\x80\x04K\x01.', contentType: 'application/x-python-serialize' }, ['unsupported_content_type']],
    ['yaml content type', { body: 'type: worker-online', contentType: 'application/x-yaml' }, ['unsupported_content_type']],
    ['binary encoding other than utf-8', { body: JSON.stringify(worker), contentEncoding: 'gzip' }, ['unsupported_encoding']],
    ['unknown event type', { body: JSON.stringify({ ...worker, type: 'worker-exploded' }) }, ['unknown_type']],
    ['no type', { body: JSON.stringify({ hostname: 'w@h' }) }, ['missing_fields']],
    ['task event without uuid', { body: JSON.stringify({ hostname: 'w@h', type: 'task-started', timestamp: 1 }) }, ['missing_fields']],
    ['no hostname', { body: JSON.stringify({ type: 'worker-online', timestamp: 1 }) }, ['missing_fields']],
    ['a JSON scalar', { body: '42' }, ['not_an_event']],
    ['an empty array', { body: '[]' }, ['not_an_event']],
    [
      'an array of garbage',
      { body: JSON.stringify([1, 'x', null, [], {}]) },
      ['not_an_event', 'not_an_event', 'not_an_event', 'not_an_event', 'missing_fields'],
    ],
  ] as const)('%s', (_name, message, reasons) => {
    const { events, drops } = decode(message);
    expect(events).toEqual([]);
    expect(drops).toEqual(reasons);
  });

  it('keeps the good events of a batch that also holds garbage', () => {
    const { events, drops } = decode({ body: JSON.stringify([{ ...worker, type: 'task-started', uuid: 'u1' }, 'junk']) });
    expect(events.map((e) => e.type)).toEqual(['task-started']);
    expect(drops).toEqual(['not_an_event']);
  });

  it('accepts a 2 MB traceback inside a task-failed event', () => {
    const big = {
      hostname: 'w@h',
      type: 'task-failed',
      uuid: 'u',
      timestamp: 1,
      exception: "ValueError('x')",
      traceback: 'x'.repeat(2 * 1024 * 1024),
    };
    const { events, drops } = decode({ body: JSON.stringify(big) });
    expect(drops).toEqual([]);
    expect(events).toHaveLength(1);
  });

  it('accepts other Celery versions: string timestamps, no clock/utcoffset, extra fields', () => {
    const { events, drops } = decode({
      body: JSON.stringify([
        { hostname: 'celery@old', type: 'worker-heartbeat', timestamp: '1400000000.5', freq: 5 }, // 3.1-style
        { hostname: 'celery@new', type: 'task-received', uuid: 'u', timestamp: 1, name: 't', new_field: { a: 1 } }, // 5.5 adds fields
        { hostname: 'celery@odd', type: 'worker-online', timestamp: 'garbage' },
      ]),
    });
    expect(drops).toEqual([]);
    expect(events.map((e) => e.timestamp)).toEqual([1400000000.5, 1, NaN]);
  });
});

describe('exception class names for task_failed_total', () => {
  it.each([
    ["ValueError('boom')", 'ValueError'],
    ['KeyError("again")', 'KeyError'],
    ["tasks.QuotaExceeded('x', 3)", 'tasks.QuotaExceeded'],
    ['SoftTimeLimitExceeded()', 'SoftTimeLimitExceeded'],
    ['TimeLimitExceeded(10.0,)', 'TimeLimitExceeded'],
    ['WorkerLostError', 'WorkerLostError'],
    ['', 'unknown'],
    [undefined, 'unknown'],
    ['<weird repr>', '<weird repr>'],
  ])('%s → %s', (repr, name) => {
    expect(exceptionClassName(repr)).toBe(name);
  });
});
