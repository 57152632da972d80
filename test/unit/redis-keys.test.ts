import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PRIORITY_STEPS,
  DEFAULT_SEP,
  decodeBase64Strict,
  decodeEnvelope,
  decodePidboxReply,
  encodeEnvelope,
  encodePidboxRequest,
  eventChannelPattern,
  eventChannelPrefix,
  pidboxChannel,
  priorityKeyFor,
  priorityKeys,
  replyBindingKey,
  replyBindingMember,
  replyKeys,
  type KombuEnvelope,
  type RedisLayout,
} from '../../src/transport/redis/keys.js';
import { redisClientOptions, type RedisTransportSettings } from '../../src/transport/redis.js';
import { FIXTURES_DIR, readFixture } from '../support/fixtures.js';

const db0: RedisLayout = { globalKeyprefix: '', db: 0, prioritySteps: DEFAULT_PRIORITY_STEPS, sep: DEFAULT_SEP };
const pfx1: RedisLayout = { ...db0, globalKeyprefix: 'pfx:', db: 1 };

interface RedisEventExample {
  channel: string;
  published_string: string;
  envelope: Record<string, unknown>;
  decoded_body: unknown;
}

interface MonitorStep {
  cmd: string[];
  envelope?: Record<string, unknown> & { headers: Record<string, unknown>; properties: Record<string, unknown> };
  decoded_body?: Record<string, unknown>;
}

const events = readFixture<{ examples: Record<string, RedisEventExample> }>('celery-5.2.6/redis_events.json').examples;
const pidbox = readFixture<{ ping: MonitorStep[] }>('celery-5.2.6/redis_pidbox.json');
const taskMessages = readFixture<{ lpush_priority5: { key_bytes_hex: string } }>('celery-5.2.6/redis_task_message_and_unacked.json');
const monitor = readFileSync(path.join(FIXTURES_DIR, 'celery-5.2.6/redis_monitor_excerpts.txt'), 'utf8');

/** Every MONITOR line as its command and arguments, `\xNN` escapes turned back into bytes. */
const monitorCommands: string[][] = monitor
  .split('\n')
  .filter((line) => /^\d/.test(line))
  .map((line) =>
    [...line.replace(/^[^\]]*\] /, '').matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
      m[1]!.replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    ),
  );

/** The first captured command named `command` whose first argument satisfies `first`. */
function monitorArgs(command: string, first: string | ((arg: string) => boolean)): string[] {
  const match = typeof first === 'string' ? (arg: string) => arg === first : first;
  const found = monitorCommands.find((c) => c[0] === command && c[1] !== undefined && match(c[1]));
  if (!found) throw new Error(`no MONITOR line for ${command} ${String(first)}`);
  return found;
}

/**
 * The exact PUBLISH payload of a captured event. A few captures trimmed the envelope's base64
 * and kept only the parsed body; those are wrapped again the way kombu does.
 */
function payloadOf(example: RedisEventExample): string {
  if (example.published_string.startsWith('{')) return example.published_string;
  return encodeEnvelope({
    body: JSON.stringify(example.decoded_body),
    headers: example.envelope.headers as Record<string, unknown>,
    properties: example.envelope.properties as Record<string, unknown>,
    deliveryTag: 'reencoded',
  });
}

/** What kombu would hand over as the body: the base64 of the payload, decoded independently. */
function capturedBody(payload: string): Buffer {
  return Buffer.from((JSON.parse(payload) as { body: string }).body, 'base64');
}

function expectDecoded(result: ReturnType<typeof decodeEnvelope>): KombuEnvelope {
  if (typeof result === 'string') throw new Error(`expected an envelope, got ${result}`);
  return result;
}

describe('channel names', () => {
  it.each([
    ['db 0, no prefix', db0, '/0.celeryev/*', '/0.celery.pidbox'],
    ['db 1 with global_keyprefix "pfx:"', pfx1, 'pfx:/1.celeryev/*', 'pfx:/1.celery.pidbox'],
  ])('%s', (_name, layout, pattern, pidboxName) => {
    expect(eventChannelPattern(layout)).toBe(pattern);
    expect(pidboxChannel(layout)).toBe(pidboxName);
  });

  it('matches the PSUBSCRIBE and PUBLISH channels captured with MONITOR', () => {
    expect(monitorArgs('PSUBSCRIBE', '/0.celeryev/*')).toEqual(['PSUBSCRIBE', eventChannelPattern(db0)]);
    expect(monitorArgs('PUBLISH', '/0.celery.pidbox')[1]).toBe(pidboxChannel(db0));
    expect(monitorArgs('PUBLISH', 'pfx:/1.celery.pidbox')[1]).toBe(pidboxChannel(pfx1));
    expect(monitorArgs('PUBLISH', 'pfx:/1.celeryev/worker.online')[1]).toBe(`${eventChannelPrefix(pfx1)}worker.online`);
    expect(monitorArgs('PUBLISH', '/0.celeryev/task.multi')[1]).toBe(`${eventChannelPrefix(db0)}task.multi`);
  });

  it('every captured event channel starts with the event prefix', () => {
    for (const example of Object.values(events)) {
      expect(example.channel.startsWith(eventChannelPrefix(db0))).toBe(true);
    }
  });

  it('escapes glob characters of the global prefix so the pattern matches only our channels', () => {
    expect(eventChannelPattern({ ...db0, globalKeyprefix: 'a*b?[c]\\' })).toBe('a\\*b\\?\\[c\\]\\\\/0.celeryev/*');
  });
});

describe('priority list keys', () => {
  it('are the bare name and name + sep + step, as kombu _size() counts them', () => {
    expect(priorityKeys(db0, 'celery')).toEqual(['celery', 'celery\x06\x163', 'celery\x06\x166', 'celery\x06\x169']);
    expect(Buffer.from(priorityKeys(db0, 'celery')[1]!, 'latin1').toString('hex')).toBe(taskMessages.lpush_priority5.key_bytes_hex);
  });

  it('match the LLEN pipeline captured for the default queue, with and without the prefix', () => {
    const llens = (prefix: string) => {
      const candidates = new Set(['', '3', '6', '9'].map((step) => `${prefix}celery${step ? `${DEFAULT_SEP}${step}` : ''}`));
      return monitorCommands.filter((c) => c[0] === 'LLEN' && candidates.has(c[1]!));
    };
    expect(
      llens('')
        .slice(0, 4)
        .map((c) => c[1]),
    ).toEqual(priorityKeys(db0, 'celery'));
    // The prefixed excerpt kept two of the four lines.
    expect(llens('pfx:').map((c) => c[1])).toEqual(priorityKeys(pfx1, 'celery').slice(0, 2));
  });

  it('carry the global prefix on every key', () => {
    expect(priorityKeys(pfx1, 'celery')).toEqual(['pfx:celery', 'pfx:celery\x06\x163', 'pfx:celery\x06\x166', 'pfx:celery\x06\x169']);
  });

  it('honour custom priority_steps and sep', () => {
    const layout: RedisLayout = { globalKeyprefix: 'x:', db: 0, prioritySteps: [0, 5], sep: ':' };
    expect(priorityKeys(layout, 'q')).toEqual(['x:q', 'x:q:5']);
    expect(priorityKeys({ ...layout, prioritySteps: [1, 5] }, 'q')).toEqual(['x:q:1', 'x:q:5']);
  });

  it.each([
    [0, 'celery'],
    [2, 'celery'],
    [3, 'celery\x06\x163'],
    [5, 'celery\x06\x163'],
    [6, 'celery\x06\x166'],
    [8, 'celery\x06\x166'],
    [9, 'celery\x06\x169'],
  ])('priority %i goes to %j', (priority, key) => {
    expect(priorityKeyFor(db0, 'celery', priority)).toBe(key);
  });

  it('a priority below the first step wraps to the last step, as kombu bisect does', () => {
    expect(priorityKeyFor({ ...db0, prioritySteps: [1, 5] }, 'q', 0)).toBe('q\x06\x165');
  });
});

describe('pidbox reply binding', () => {
  const sadd = pidbox.ping.find((s) => s.cmd[0] === 'SADD')!;
  const brpop = pidbox.ping.find((s) => s.cmd[0] === 'BRPOP')!.cmd;
  const oid = '971ba3ad-c69c-31f3-9698-df01a15b1711';

  it('SADDs the captured member into the captured set', () => {
    expect(sadd.cmd).toEqual(['SADD', replyBindingKey(db0), replyBindingMember(db0, oid)]);
  });

  it('BRPOPs the four captured reply lists', () => {
    expect(brpop.slice(1, -1)).toEqual(replyKeys(db0, oid));
  });

  it('prefixes the set and the lists but not the member', () => {
    const pfxOid = 'ce2f72bd-7882-3b7b-a6e7-6174dfe46f29';
    expect(monitorArgs('SADD', 'pfx:_kombu.binding.reply.celery.pidbox')).toEqual([
      'SADD',
      replyBindingKey(pfx1),
      replyBindingMember(pfx1, pfxOid),
    ]);
    expect(monitorArgs('BRPOP', `pfx:${pfxOid}.reply.celery.pidbox`).slice(1, 3)).toEqual(replyKeys(pfx1, pfxOid).slice(0, 2));
    expect(monitorArgs('DEL', `pfx:${pfxOid}.reply.celery.pidbox`)[1]).toBe(replyKeys(pfx1, pfxOid)[0]);
  });
});

describe('decodeEnvelope', () => {
  it.each(Object.entries(events))('decodes the captured %s event', (_name, example) => {
    const payload = payloadOf(example);
    const decoded = expectDecoded(decodeEnvelope(Buffer.from(payload, 'utf8')));
    expect(decoded.contentType).toBe('application/json');
    expect(decoded.contentEncoding).toBe('utf-8');
    expect(decoded.headers).toEqual(example.envelope.headers);
    expect(decoded.body.equals(capturedBody(payload))).toBe(true);
    // The fixture's parsed body trims long tracebacks, so compare what identifies each event.
    const body = JSON.parse(decoded.body.toString('utf8')) as unknown;
    const ids = (b: unknown) => [b].flat().map((e) => [(e as { type: string }).type, (e as { clock: number }).clock]);
    expect(ids(body)).toEqual(ids(example.decoded_body));
  });

  it('keeps task.multi array bodies as arrays', () => {
    const multi = Object.entries(events).filter(([name]) => name.includes('task.multi'));
    expect(multi.length).toBeGreaterThan(0);
    for (const [, example] of multi) {
      expect(Array.isArray(JSON.parse(expectDecoded(decodeEnvelope(payloadOf(example))).body.toString('utf8')))).toBe(true);
    }
  });

  it('passes a body without body_encoding through as UTF-8', () => {
    const decoded = expectDecoded(
      decodeEnvelope('{"body": "{\\"a\\": \\"\\u00e9\\"}", "content-type": "application/json", "properties": {}}'),
    );
    expect(decoded.body.toString('utf8')).toBe('{"a": "é"}');
  });

  it('leaves content type and encoding undefined when absent', () => {
    const decoded = expectDecoded(decodeEnvelope('{"body": "e30=", "properties": {"body_encoding": "base64"}}'));
    expect(decoded.contentType).toBeUndefined();
    expect(decoded.contentEncoding).toBeUndefined();
    expect(decoded.body.toString()).toBe('{}');
  });

  it.each([
    ['not JSON', 'not json{', 'bad_envelope'],
    ['a JSON array', '[1, 2]', 'bad_envelope'],
    ['JSON null', 'null', 'bad_envelope'],
    ['no body', '{"properties": {}}', 'bad_envelope'],
    ['a numeric body', '{"body": 5}', 'bad_envelope'],
    ['base64 with a stray character', '{"body": "e30!", "properties": {"body_encoding": "base64"}}', 'bad_body_encoding'],
    ['base64 of the wrong length', '{"body": "e30", "properties": {"body_encoding": "base64"}}', 'bad_body_encoding'],
    ['URL-safe base64', '{"body": "ab-_", "properties": {"body_encoding": "base64"}}', 'bad_body_encoding'],
    ['padding in the middle', '{"body": "e3=0e30=", "properties": {"body_encoding": "base64"}}', 'bad_body_encoding'],
  ])('rejects %s', (_name, payload, reason) => {
    expect(decodeEnvelope(Buffer.from(payload, 'utf8'))).toBe(reason);
  });
});

describe('decodeBase64Strict', () => {
  it.each([
    ['', ''],
    ['QQ==', 'A'],
    ['QUI=', 'AB'],
    ['QUJD', 'ABC'],
    ['+/+/', Buffer.from([0xfb, 0xff, 0xbf]).toString('latin1')],
  ])('decodes %j', (text, expected) => {
    expect(decodeBase64Strict(text)?.toString('latin1')).toBe(expected);
  });

  it.each(['Q', 'QQ=', 'QQ===', 'Q Q=', 'QQ\n=', '====', 'QUJD\n', 'QU*D', 'QUJ-', 'QUJ_'])('refuses %j', (text) => {
    expect(decodeBase64Strict(text)).toBeUndefined();
  });

  it('agrees with a plain round trip for every byte value', () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    for (let n = 0; n < 8; n++) expect(decodeBase64Strict(bytes.subarray(n).toString('base64'))?.equals(bytes.subarray(n))).toBe(true);
  });
});

describe('encodeEnvelope', () => {
  it('round-trips through decodeEnvelope with kombu property names', () => {
    const payload = encodeEnvelope({
      body: '{"x": 1}',
      headers: { hostname: 'w@h' },
      properties: { delivery_mode: 1, delivery_info: { exchange: 'celeryev', routing_key: 'worker.heartbeat' }, priority: 0 },
      deliveryTag: 'tag-1',
    });
    const parsed = JSON.parse(payload) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(['body', 'content-encoding', 'content-type', 'headers', 'properties']);
    const decoded = expectDecoded(decodeEnvelope(payload));
    expect(decoded.body.toString()).toBe('{"x": 1}');
    expect(decoded.properties).toEqual({
      delivery_mode: 1,
      delivery_info: { exchange: 'celeryev', routing_key: 'worker.heartbeat' },
      priority: 0,
      body_encoding: 'base64',
      delivery_tag: 'tag-1',
    });
  });
});

describe('pidbox request and reply', () => {
  const publish = pidbox.ping.find((s) => s.cmd[0] === 'PUBLISH')!;
  const reply = pidbox.ping.find((s) => s.cmd[0] === 'LPUSH')!;
  const captured = publish.decoded_body as { ticket: string; reply_to: { routing_key: string }; destination: string[] };

  it('encodes the captured ping request: body keys in order, headers and properties', () => {
    const payload = encodePidboxRequest({
      method: 'ping',
      arguments: {},
      destination: captured.destination,
      pattern: null,
      matcher: null,
      reply: { ticket: captured.ticket, oid: captured.reply_to.routing_key },
      clock: 1,
      expires: publish.envelope!.headers.expires as number,
      deliveryTag: publish.envelope!.properties.delivery_tag as string,
    });
    const decoded = expectDecoded(decodeEnvelope(payload));
    const body = JSON.parse(decoded.body.toString('utf8')) as Record<string, unknown>;
    expect(body).toEqual(publish.decoded_body);
    expect(Object.keys(body)).toEqual(Object.keys(publish.decoded_body!));
    expect(decoded.headers).toEqual(publish.envelope!.headers);
    expect(decoded.properties).toEqual(publish.envelope!.properties);
    expect(decoded.contentType).toBe(publish.envelope!['content-type']);
    expect(decoded.contentEncoding).toBe(publish.envelope!['content-encoding']);
  });

  it('encodes a cast without ticket and reply_to, like the captured wake-up heartbeat', () => {
    // The captured line is truncated after the body, so it is read from the raw text.
    const wakeupBody = /"PUBLISH" "\/0\.celery\.pidbox" "\{\\"body\\": \\"([A-Za-z0-9+/=]+)/.exec(monitor)![1]!;
    const payload = encodePidboxRequest({
      method: 'heartbeat',
      arguments: {},
      destination: null,
      pattern: null,
      matcher: null,
      clock: 1,
      expires: 0,
      deliveryTag: 't',
    });
    const body = JSON.parse(expectDecoded(decodeEnvelope(payload)).body.toString('utf8')) as Record<string, unknown>;
    expect(body).toEqual(JSON.parse(Buffer.from(wakeupBody, 'base64').toString('utf8')));
    expect(Object.keys(body)).toEqual(['method', 'arguments', 'destination', 'pattern', 'matcher']);
  });

  it('decodes the captured reply: ticket, clock and one worker value', () => {
    const decoded = decodePidboxReply(JSON.stringify(reply.envelope));
    expect(decoded).toEqual({ ticket: captured.ticket, clock: 55, replies: [{ worker: 'capr@vm', value: { ok: 'pong' } }] });
  });

  it.each([
    ['not an envelope', 'garbage'],
    ['a body that is not JSON', encodeEnvelope({ body: 'nope', headers: { ticket: 't' }, properties: {}, deliveryTag: 'd' })],
    ['a body that is a list', encodeEnvelope({ body: '[1]', headers: { ticket: 't' }, properties: {}, deliveryTag: 'd' })],
  ])('ignores %s', (_name, payload) => {
    expect(decodePidboxReply(payload)).toBeUndefined();
  });
});

describe('redis client options', () => {
  const common = {
    db: 2,
    tls: false,
    username: 'celery',
    password: 'hunter2',
    globalKeyprefix: '',
    prioritySteps: [0, 3, 6, 9],
    sep: '\x06\x16',
    maxMessageBytes: 1 << 20,
    healthCheckSeconds: 10,
    reconnect: { initialMs: 500, maxMs: 15_000 },
    connectTimeoutMs: 5000,
    readPacingMs: 50,
  };

  it('connect straight to a node with every automatic recovery off', () => {
    const settings: RedisTransportSettings = { ...common, host: 'redis.example', port: 6380, tls: true };
    const options = redisClientOptions(settings, 'events');
    expect(options).toMatchObject({
      host: 'redis.example',
      port: 6380,
      db: 2,
      username: 'celery',
      password: 'hunter2',
      tls: {},
      lazyConnect: true,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false,
      maxRetriesPerRequest: 0,
      connectionName: 'celery-autopilot-events',
    });
    expect(options.retryStrategy?.(1)).toBeNull();
    expect(options).not.toHaveProperty('sentinels');
  });

  // No Sentinel runs on the test machine: this checks the options handed to ioredis only.
  it('go through Sentinel with the master name, and no fixed host', () => {
    const settings: RedisTransportSettings = {
      ...common,
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      masterName: 'mymaster',
    };
    const options = redisClientOptions(settings, 'commands');
    expect(options).toMatchObject({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      name: 'mymaster',
      role: 'master',
      db: 2,
      username: 'celery',
      password: 'hunter2',
      enableReadyCheck: true,
      enableOfflineQueue: false,
      connectionName: 'celery-autopilot-commands',
    });
    expect(options.sentinelRetryStrategy?.(1)).toBeNull();
    expect(options).not.toHaveProperty('host');
    expect(options).not.toHaveProperty('port');
  });
});
