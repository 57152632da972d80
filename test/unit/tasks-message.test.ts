import { describe, expect, it } from 'vitest';
import { pyJson, pyRepr } from '../../src/tasks/python-text.js';
import { SubmitError, parseSubmitBody } from '../../src/tasks/submit-options.js';
import { buildTaskMessage, pythonIsoUtc } from '../../src/tasks/task-message.js';
import { readFixture } from '../support/fixtures.js';

interface CapturedTask {
  routing_key: string;
  exchange: string;
  properties: {
    headers: Record<string, unknown>;
    reply_to: string;
    correlation_id: string;
    priority: number;
    delivery_mode: number;
    expiration?: string;
    content_type: string;
    content_encoding: string;
  };
  body_raw: string;
}
const captured = readFixture<{ examples: Record<string, CapturedTask> }>('celery-5.2.6/amqp_task_messages.json').examples;

describe('task messages as Celery 5.2.6 publishes them', () => {
  it('matches the captured tasks.add message byte for byte (body) and field for field (headers, properties)', () => {
    const cap = captured['tasks.add']!;
    const h = cap.properties.headers;
    const m = buildTaskMessage({
      id: String(h.id),
      name: 'tasks.add',
      // Celery's delay(2, 3) makes a tuple; the HTTP API gets a JSON list, whose repr is [2, 3].
      args: [2, 3],
      kwargs: {},
      queue: 'celery',
      priority: 0,
      origin: String(h.origin),
      replyTo: cap.properties.reply_to,
      now: new Date(),
    });
    expect(m.body).toBe(cap.body_raw);
    expect({ ...m.headers, argsrepr: '(2, 3)' }).toEqual(h);
    expect(Object.keys(m.headers)).toEqual(Object.keys(h));
    expect(m.headers.argsrepr).toBe('[2, 3]');
    expect(m.exchange).toBe(cap.exchange);
    expect(m.routingKey).toBe(cap.routing_key);
    expect(m.properties).toEqual({
      correlation_id: cap.properties.correlation_id,
      reply_to: cap.properties.reply_to,
      delivery_mode: 2,
      priority: 0,
    });
    expect([m.contentType, m.contentEncoding]).toEqual([cap.properties.content_type, cap.properties.content_encoding]);
  });

  it('writes eta and expires as Celery does, with the expiration in milliseconds', () => {
    const cap = captured['tasks.add:eta:expires']!.properties;
    const now = new Date('2026-11-30T01:01:03.372Z');
    const m = buildTaskMessage({
      id: 'x',
      name: 'tasks.add',
      args: [3, 4],
      kwargs: {},
      queue: 'celery',
      priority: 0,
      origin: 'o',
      replyTo: 'r',
      now,
      eta: new Date('2026-11-30T01:01:04.372Z'),
      expires: new Date('2026-11-30T01:02:03.372Z'),
    });
    expect(m.headers.eta).toBe('2026-11-30T01:01:04.372000+00:00');
    expect(m.headers.expires).toBe('2026-11-30T01:02:03.372000+00:00');
    expect(m.properties.expiration).toBe(cap.expiration);
    expect(pythonIsoUtc(new Date('2026-11-30T01:01:04Z'))).toBe('2026-11-30T01:01:04+00:00');
    expect(
      buildTaskMessage({
        id: 'x',
        name: 't',
        args: [],
        kwargs: {},
        queue: 'q',
        priority: 0,
        origin: 'o',
        replyTo: 'r',
        now,
        expires: new Date(now.getTime() - 5000),
      }).properties.expiration,
    ).toBe('0');
  });

  it.each([
    [[1, 'a', null, true, false, 1.5], "[1, 'a', None, True, False, 1.5]", '[1, "a", null, true, false, 1.5]'],
    [{ user: "O'Brien", n: { deep: [] } }, `{'user': "O'Brien", 'n': {'deep': []}}`, '{"user": "O\'Brien", "n": {"deep": []}}'],
    [['ü\n', 1e-7, 1e21], "['ü\\n', 1e-07, 1e+21]", '["\\u00fc\\n", 1e-07, 1e+21]'],
  ])('prints %j as Python repr and json.dumps would', (value, repr, json) => {
    expect(pyRepr(value)).toBe(repr);
    expect(pyJson(value)).toBe(json);
  });
});

describe("Flower's submit body", () => {
  const now = new Date('2026-01-01T00:00:00Z');
  it('reads args, kwargs and the options', () => {
    expect(
      parseSubmitBody(
        {
          args: [1],
          kwargs: { a: 2 },
          countdown: 10,
          expires: '2026-01-01 01:00:00.000000',
          queue: 'q1',
          priority: 5,
          task_id: 'my-id',
          time_limit: 30,
          soft_time_limit: 20,
        },
        now,
      ),
    ).toEqual({
      args: [1],
      kwargs: { a: 2 },
      eta: new Date('2026-01-01T00:00:10Z'),
      expires: new Date('2026-01-01T01:00:00Z'),
      queue: 'q1',
      priority: 5,
      taskId: 'my-id',
      timeLimit: [30, 20],
    });
    expect(parseSubmitBody(undefined, now)).toEqual({ args: [], kwargs: {}, priority: 0 });
  });

  it.each([
    [[1, 2], /body must be a JSON object/],
    [{ args: 'x' }, /args must be an array/],
    [{ kwargs: [] }, /kwargs must be an object/],
    [{ args: [Infinity] }, /args\[0\] is not a finite number/],
    [JSON.parse('{"args": [12345678901234567890]}'), /beyond ±2\^53/],
    [{ kwargs: { a: { b: Number.NaN } } }, /kwargs.a.b is not a finite number/],
    [{ foo: 1 }, /unknown option foo/],
    [{ countdown: 1, eta: '2026-01-01 00:00:00' }, /countdown or eta, not both/],
    [{ eta: 'tomorrow' }, /eta must be a date/],
    [{ countdown: -1 }, /countdown must be seconds/],
    [{ priority: 256 }, /priority must be a whole number from 0 to 255/],
    [{ queue: 'celeryev.x' }, /queue: is reserved/],
    [{ task_id: '' }, /task_id: must be a task id/],
  ])('refuses %j', (body, message) => {
    expect(() => parseSubmitBody(body, now)).toThrow(SubmitError);
    expect(() => parseSubmitBody(body, now)).toThrow(message);
  });
});
