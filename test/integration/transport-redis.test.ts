import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { RedisTransport, type RedisTransportSettings } from '../../src/transport/redis.js';
import {
  DEFAULT_PRIORITY_STEPS,
  DEFAULT_SEP,
  eventChannelPrefix,
  priorityKeyFor,
  replyBindingKey,
  type RedisLayout,
} from '../../src/transport/redis/keys.js';
import type { ControlReply } from '../../src/transport/transport.js';
import { startWorker, stopAllWorkers, uniqueNodename, type CeleryWorker } from '../support/celery/worker.js';
import { readFixture } from '../support/fixtures.js';
import { redisIsolation, uniqueId } from '../support/isolation.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import {
  describeTransportConformance,
  heartbeatBody,
  RecordingObserver,
  RecordingSink,
  waitFor,
  within,
  type HarnessCreateOptions,
  type HarnessTransport,
  type TransportHarness,
} from '../support/transport-conformance.js';

const REDIS_HOST = '127.0.0.1';
const REDIS_PORT = 6379;

/** Python's json.dumps layout (", " and ": "), which is what kombu puts on the wire. */
function pyJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pyJson).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${pyJson(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

/** A kombu envelope exactly as a worker's EventDispatcher PUBLISHes it on Redis (docs/wire-protocol.md §A3). */
function kombuEventEnvelope(
  body: Buffer | string,
  routingKey: string,
  props: { contentType?: string; contentEncoding?: string } = {},
): string {
  return pyJson({
    body: (typeof body === 'string' ? Buffer.from(body, 'utf8') : body).toString('base64'),
    'content-encoding': props.contentEncoding ?? 'utf-8',
    'content-type': props.contentType ?? 'application/json',
    headers: { hostname: 'rig@redis' },
    properties: {
      delivery_mode: 1,
      delivery_info: { exchange: 'celeryev', routing_key: routingKey },
      priority: 0,
      body_encoding: 'base64',
      delivery_tag: randomUUID(),
    },
  });
}

/** A protocol v2 task message as Celery's client LPUSHes it (docs/wire-protocol.md §D). */
function kombuTaskEnvelope(queue: string, priority: number): string {
  const id = randomUUID();
  return pyJson({
    body: Buffer.from(pyJson([[2, 3], {}, { callbacks: null, errbacks: null, chain: null, chord: null }])).toString('base64'),
    'content-encoding': 'utf-8',
    'content-type': 'application/json',
    headers: {
      lang: 'py',
      task: 'tasks.add',
      id,
      shadow: null,
      eta: null,
      expires: null,
      group: null,
      group_index: null,
      retries: 0,
      timelimit: [null, null],
      root_id: id,
      parent_id: null,
      argsrepr: '(2, 3)',
      kwargsrepr: '{}',
      origin: 'gen1@rig',
      ignore_result: false,
    },
    properties: {
      correlation_id: id,
      reply_to: randomUUID(),
      delivery_mode: 2,
      delivery_info: { exchange: '', routing_key: queue },
      priority,
      body_encoding: 'base64',
      delivery_tag: randomUUID(),
    },
  });
}

interface RedisCreateOptions extends HarnessCreateOptions {
  readonly healthCheckSeconds?: number;
  readonly maxConcurrentBroadcasts?: number;
}

/** The Redis harness: one kombu global_keyprefix per suite, a proxy in front of the shared Redis. */
class RedisHarness implements TransportHarness {
  readonly #created: RedisTransport[] = [];
  readonly layout: RedisLayout;

  private constructor(
    readonly isolation: { db: number; keyprefix: string; url: string },
    readonly proxy: TcpProxy,
    /** Plays Celery's part (worker events, client task pushes) and inspects the broker. */
    readonly raw: Redis,
  ) {
    this.layout = { globalKeyprefix: isolation.keyprefix, db: isolation.db, prioritySteps: DEFAULT_PRIORITY_STEPS, sep: DEFAULT_SEP };
  }

  static async create(suite: string, db = 0): Promise<RedisHarness> {
    const isolation = redisIsolation(suite, db);
    const proxy = new TcpProxy(REDIS_HOST, REDIS_PORT);
    await proxy.listen();
    const raw = new Redis({ host: REDIS_HOST, port: REDIS_PORT, db, lazyConnect: true });
    raw.on('error', () => undefined);
    await raw.connect();
    return new RedisHarness(isolation, proxy, raw);
  }

  get celery(): { brokerUrl: string; transportOptions: Record<string, unknown> } {
    return { brokerUrl: this.isolation.url, transportOptions: { global_keyprefix: this.isolation.keyprefix } };
  }

  settings(options: RedisCreateOptions = {}): RedisTransportSettings & { clientName: string } {
    return {
      host: REDIS_HOST,
      port: options.viaProxy ? this.proxy.port : REDIS_PORT,
      db: this.isolation.db,
      tls: false,
      globalKeyprefix: this.isolation.keyprefix,
      prioritySteps: DEFAULT_PRIORITY_STEPS,
      sep: DEFAULT_SEP,
      maxMessageBytes: options.maxMessageBytes ?? 1024 * 1024,
      healthCheckSeconds: options.healthCheckSeconds ?? 1,
      reconnect: { initialMs: 50, maxMs: 500 },
      connectTimeoutMs: 2000,
      readPacingMs: 50,
      ...(options.maxConcurrentBroadcasts !== undefined ? { maxConcurrentBroadcasts: options.maxConcurrentBroadcasts } : {}),
      // Unique per transport, so a test can find (and kill) exactly its own connections.
      clientName: uniqueId('cap-redis-test'),
    };
  }

  create(options: RedisCreateOptions = {}): HarnessTransport & { readonly transport: RedisTransport; readonly clientName: string } {
    const observer = new RecordingObserver();
    const sink = new RecordingSink();
    const settings = this.settings(options);
    const transport = new RedisTransport(settings, observer, silentLogger());
    this.#created.push(transport);
    return { transport, observer, sink, clientName: settings.clientName };
  }

  async publishRawEvent(
    body: Buffer | string,
    routingKey: string,
    props?: { contentType?: string; contentEncoding?: string },
  ): Promise<void> {
    await this.raw.publish(`${eventChannelPrefix(this.layout)}${routingKey}`, kombuEventEnvelope(body, routingKey, props));
  }

  /** PUBLISHes any payload on the event channel: for malformed envelopes. */
  async publishPayload(payload: string | Buffer, routingKey = 'worker.heartbeat'): Promise<number> {
    return this.raw.publish(`${eventChannelPrefix(this.layout)}${routingKey}`, payload);
  }

  async pushTasks(queue: string, count: number, priority = 0): Promise<void> {
    const prefix = this.isolation.keyprefix;
    const pipeline = this.raw.pipeline();
    // kombu's queue_bind for Celery's default direct exchange named after the queue.
    pipeline.sadd(`${prefix}_kombu.binding.${queue}`, `${queue}${DEFAULT_SEP}${DEFAULT_SEP}${queue}`);
    for (let i = 0; i < count; i++) pipeline.lpush(priorityKeyFor(this.layout, queue, priority), kombuTaskEnvelope(queue, priority));
    await pipeline.exec();
  }

  /** Finds one of our connections in CLIENT LIST by its CLIENT SETNAME name. */
  async clientId(name: string): Promise<string | undefined> {
    return (await this.clientIds(name))[0];
  }

  async clientIds(name: string): Promise<string[]> {
    const list = (await this.raw.client('LIST')) as string;
    return list
      .split('\n')
      .filter((l) => l.includes(` name=${name} `))
      .map((l) => /(?:^|\s)id=(\d+)/.exec(l)?.[1] ?? '?');
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.#created.map((t) => t.close()));
    await this.proxy.close();
    // Everything this suite (and its workers) wrote carries the suite's prefix.
    let cursor = '0';
    for (let round = 0; round < 1000; round++) {
      const [next, keys] = await this.raw.scan(cursor, 'MATCH', `${this.isolation.keyprefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await this.raw.del(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
    await this.raw.quit();
  }
}

async function startedAndSubscribed(h: HarnessTransport): Promise<void> {
  h.transport.start(h.sink);
  await waitFor(() => h.sink.subscribed >= 1 && h.transport.isConnected(), 'first subscription');
}

/** Publishes tagged heartbeats until one arrives: a fresh PSUBSCRIBE may take a moment to apply. */
async function publishUntilSeen(harness: RedisHarness, sink: RecordingSink, tag: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (let n = 0; !sink.bodies().some((b) => b.includes(`"${tag}-`)); n++) {
    if (Date.now() > deadline) throw new Error(`no event tagged ${tag} arrived`);
    await harness.publishRawEvent(heartbeatBody(`${tag}-${n}`), 'worker.heartbeat');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Like waitFor, for conditions that need a broker round trip. */
async function waitForAsync(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describeTransportConformance('redis', () => RedisHarness.create('conformance-redis'));

describe('redis transport', () => {
  let harness: RedisHarness;

  beforeAll(async () => {
    harness = await RedisHarness.create('transport-redis');
  });

  afterAll(async () => {
    await harness?.cleanup();
  });

  describe('events', () => {
    it('delivers the captured Celery payloads, published verbatim, with their routing keys', async () => {
      const h = harness.create();
      await startedAndSubscribed(h);
      const examples = readFixture<{ examples: Record<string, { channel: string; published_string: string }> }>(
        'celery-5.2.6/redis_events.json',
      ).examples;
      const complete = Object.values(examples).filter((e) => e.published_string.startsWith('{'));
      for (const example of complete) {
        const routingKey = example.channel.slice('/0.celeryev/'.length);
        await harness.publishPayload(example.published_string, routingKey);
      }
      await waitFor(() => h.sink.messages.length >= complete.length, 'every captured event');
      expect(h.sink.messages.map((m) => m.routingKey)).toEqual(complete.map((e) => e.channel.slice('/0.celeryev/'.length)));
      for (const [i, example] of complete.entries()) {
        const envelope = JSON.parse(example.published_string) as { body: string };
        expect(h.sink.messages[i]?.body.equals(Buffer.from(envelope.body, 'base64'))).toBe(true);
        expect(h.sink.messages[i]?.contentType).toBe('application/json');
      }
      expect(h.sink.drops).toEqual({});
    });

    it('counts a bad envelope, bad base64 and an oversize payload, and keeps delivering', async () => {
      const h = harness.create({ maxMessageBytes: 4096 });
      await startedAndSubscribed(h);
      const tag = uniqueId('after-bad');
      await harness.publishPayload('this is not a kombu envelope');
      await harness.publishPayload('{"body": "e30", "properties": {"body_encoding": "base64"}}');
      await harness.publishPayload('{"body": "!!!!", "properties": {"body_encoding": "base64"}}');
      await harness.publishRawEvent(heartbeatBody(`huge-${'x'.repeat(8192)}`), 'worker.heartbeat');
      await harness.publishRawEvent(heartbeatBody(`${tag}-0`), 'worker.heartbeat');
      await waitFor(() => h.sink.messages.length >= 1, 'the good event after the bad ones');
      expect(h.sink.drops).toEqual({ bad_envelope: 1, bad_body_encoding: 2, oversize: 1 });
      expect(h.sink.bodies()).toEqual([heartbeatBody(`${tag}-0`)]);
      expect(h.transport.isConnected()).toBe(true);
    });

    it('does not see events of another global_keyprefix or another db', async () => {
      const h = harness.create();
      await startedAndSubscribed(h);
      const other = `${harness.isolation.keyprefix}other:`;
      await harness.raw.publish(`${other}/0.celeryev/worker.heartbeat`, kombuEventEnvelope(heartbeatBody('foreign-0'), 'worker.heartbeat'));
      await harness.raw.publish(
        `${harness.isolation.keyprefix}/1.celeryev/worker.heartbeat`,
        kombuEventEnvelope(heartbeatBody('db1-0'), 'worker.heartbeat'),
      );
      const tag = uniqueId('own');
      await harness.publishRawEvent(heartbeatBody(`${tag}-0`), 'worker.heartbeat');
      await waitFor(() => h.sink.messages.length >= 1, 'our own event');
      expect(h.sink.bodies()).toEqual([heartbeatBody(`${tag}-0`)]);
    });
  });

  describe('liveness', () => {
    it('reconnects and re-subscribes after CLIENT KILL of its subscriber connection', async () => {
      const h = harness.create();
      await startedAndSubscribed(h);
      const id = await harness.clientId(`${h.clientName}-events`);
      expect(id).toBeDefined();
      // Only our own connection, by id: other suites share this Redis.
      await harness.raw.client('KILL', 'ID', id!);
      await waitFor(() => h.observer.count('disconnected') >= 1, 'disconnected()');
      await waitFor(() => h.observer.count('connected') >= 2 && h.sink.subscribed >= 2, 'connected() and onSubscribed() again');
      expect(await harness.clientId(`${h.clientName}-events`)).not.toBe(id);
      await publishUntilSeen(harness, h.sink, uniqueId('after-kill'));
    });

    it('detects a frozen (half-open) connection by its unanswered PING and reconnects', async () => {
      const h = harness.create({ viaProxy: true, healthCheckSeconds: 1 });
      await startedAndSubscribed(h);
      harness.proxy.freeze();
      try {
        // No socket closes: only the health check can notice.
        await waitFor(() => h.observer.count('disconnected') >= 1, 'the health check to give up on the frozen socket', 15_000);
        const first = h.observer.calls.find((c) => c.kind === 'disconnected');
        expect(first && 'error' in first ? first.error.message : '').toMatch(/PING/);
        expect(h.transport.isConnected()).toBe(false);
      } finally {
        harness.proxy.resume();
      }
      // The frozen sockets are still open on the proxy: a reconnect needs fresh ones.
      harness.proxy.cut();
      await waitFor(() => h.transport.isConnected() && h.sink.subscribed >= 2, 'a new subscription after the freeze');
      await publishUntilSeen(harness, h.sink, uniqueId('after-freeze'));
    });

    it('keeps a busy subscriber alive: events in flight count as proof of life', async () => {
      const h = harness.create({ healthCheckSeconds: 1 });
      await startedAndSubscribed(h);
      const tag = uniqueId('steady');
      const until = Date.now() + 3500;
      let n = 0;
      while (Date.now() < until) {
        const pipeline = harness.raw.pipeline();
        for (let i = 0; i < 200; i++)
          pipeline.publish(
            `${eventChannelPrefix(harness.layout)}worker.heartbeat`,
            kombuEventEnvelope(heartbeatBody(`${tag}-${n++}`), 'worker.heartbeat'),
          );
        await pipeline.exec();
        await new Promise((r) => setTimeout(r, 20));
      }
      await waitFor(() => h.sink.messages.length >= n, `${n} events`);
      expect(h.observer.count('disconnected')).toBe(0);
      expect(h.sink.subscribed).toBe(1);
    });
  });

  describe('queue depths', () => {
    it('sums the priority lists kombu uses (priorities 0, 3, 5, 9 → 4) under the global prefix only', async () => {
      const h = harness.create();
      await startedAndSubscribed(h);
      const queue = uniqueId('prio');
      for (const priority of [0, 3, 5, 9]) await harness.pushTasks(queue, 1, priority);
      const prefix = harness.isolation.keyprefix;
      expect(
        await Promise.all(
          [queue, `${queue}\x06\x163`, `${queue}\x06\x166`, `${queue}\x06\x169`].map((k) => harness.raw.llen(`${prefix}${k}`)),
        ),
      ).toEqual([1, 2, 0, 1]);
      // The same queue name without our prefix belongs to someone else.
      const foreign = `${queue}`;
      await harness.raw.lpush(foreign, 'x');
      // The oldest message of each non-empty list (kombu LPUSHes, BRPOPs: index -1), by task id.
      const tails = await Promise.all(
        [queue, `${queue}\x06\x163`, `${queue}\x06\x166`, `${queue}\x06\x169`].map((k) => harness.raw.lindex(`${prefix}${k}`, -1)),
      );
      const oldestTaskIds = tails.flatMap((t) => (t ? [(JSON.parse(t) as { headers: { id: string } }).headers.id] : []));
      expect(oldestTaskIds).toHaveLength(3);
      try {
        const [depth] = await h.transport.queueDepths([queue], 2000);
        expect(depth).toEqual({ name: queue, messages: 4, consumers: null, oldestTaskIds });
      } finally {
        await harness.raw.del(foreign);
      }
    });

    it('reports a key that is not a list as unreadable, next to readable queues', async () => {
      const h = harness.create();
      await startedAndSubscribed(h);
      const good = uniqueId('good');
      const bad = uniqueId('bad');
      await harness.pushTasks(good, 2);
      await harness.raw.set(`${harness.isolation.keyprefix}${bad}`, 'not a list');
      const depths = await h.transport.queueDepths([good, bad], 2000);
      expect(depths[0]).toEqual({ name: good, messages: 2, consumers: null, oldestTaskIds: [expect.any(String)] });
      expect(depths[1]).toMatchObject({ name: bad, messages: null, consumers: null });
      expect(depths[1]?.error).toMatch(/WRONGTYPE/);
    });

    it('times out on a frozen connection with null depths and an error', async () => {
      // A long health check, so the freeze is noticed by the depth read first.
      const h = harness.create({ viaProxy: true, healthCheckSeconds: 60 });
      await startedAndSubscribed(h);
      harness.proxy.freeze();
      try {
        const [depth] = await h.transport.queueDepths(['celery'], 300);
        expect(depth).toMatchObject({ name: 'celery', messages: null, consumers: null });
        expect(depth?.error).toMatch(/timed out/);
      } finally {
        harness.proxy.resume();
        harness.proxy.cut();
      }
    });
  });
});

/**
 * The rig's "consuming" line comes after the worker's PSUBSCRIBE, but a PUBLISH racing it would
 * be lost for good (Redis keeps nothing for absent subscribers): wait, bounded, for one pong.
 */
async function firstPong(transport: RedisTransport, worker: CeleryWorker): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (
    (await transport.broadcast({ method: 'ping', arguments: {}, destination: [worker.nodename] }, { reply: true, timeoutMs: 1000 }))
      .length === 0
  ) {
    if (Date.now() > deadline) throw new Error(`worker never answered ping:\n${worker.logs()}`);
  }
}

describe('redis pidbox with a real Celery worker', () => {
  let harness: RedisHarness;
  let worker: CeleryWorker;
  let h: ReturnType<RedisHarness['create']>;

  beforeAll(async () => {
    harness = await RedisHarness.create('pidbox-redis');
    worker = await startWorker({
      brokerUrl: harness.celery.brokerUrl,
      transportOptions: harness.celery.transportOptions,
      nodename: uniqueNodename('redis-pidbox'),
      pool: 'solo',
    });
    h = harness.create();
    await startedAndSubscribed(h);
    await firstPong(h.transport, worker);
  });

  afterAll(async () => {
    await stopAllWorkers();
    await harness?.cleanup();
  });

  const ping = (destination: string[], timeoutMs = 30_000) =>
    h.transport.broadcast({ method: 'ping', arguments: {}, destination }, { reply: true, timeoutMs });

  it('ping to the worker returns pong as soon as the one reply is in', async () => {
    // The idle timeout is long: returning well before it proves the limit ended the wait.
    const replies = await within(ping([worker.nodename]), 20_000, 'ping with a 30 s idle timeout');
    expect(replies).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
  });

  it('removes the reply binding and reply lists afterwards', async () => {
    await ping([worker.nodename]);
    const members = await harness.raw.smembers(replyBindingKey(harness.layout));
    expect(members).toEqual([]);
    const leftovers = await harness.raw.keys(`${harness.isolation.keyprefix}*.reply.celery.pidbox*`);
    expect(leftovers).toEqual([]);
  });

  it('a broadcast to an absent node ends at the idle timeout with no reply', async () => {
    const replies = await ping(['nobody@nowhere'], 500);
    expect(replies).toEqual([]);
  });

  it('stats comes back from the worker, with its pid and the Redis broker', async () => {
    const [reply, ...rest] = await h.transport.broadcast(
      { method: 'stats', arguments: {}, destination: [worker.nodename] },
      { reply: true, timeoutMs: 10_000 },
    );
    expect(rest).toEqual([]);
    expect(reply?.worker).toBe(worker.nodename);
    const stats = reply?.value as { pid: number; broker: { transport: string; virtual_host: string }; pool: { 'max-concurrency': number } };
    expect(stats.pid).toBe(worker.pid);
    expect(stats.broker.transport).toBe('redis');
    expect(stats.broker.virtual_host).toBe('0');
    expect(stats.pool['max-concurrency']).toBe(1);
  });

  it('concurrent broadcasts each get their own reply', async () => {
    const methods = ['ping', 'stats', 'clock', 'active_queues', 'ping', 'registered'];
    const results = await Promise.all([
      ...methods.map((method) =>
        h.transport.broadcast({ method, arguments: {}, destination: [worker.nodename] }, { reply: true, timeoutMs: 10_000 }),
      ),
      ping(['nobody@nowhere'], 1000),
    ]);
    const byMethod = (i: number): ControlReply | undefined => {
      expect(results[i]).toHaveLength(1);
      return results[i]![0];
    };
    expect(byMethod(0)?.value).toEqual({ ok: 'pong' });
    expect(byMethod(1)?.value).toMatchObject({ pid: worker.pid });
    expect(byMethod(2)?.value).toMatchObject({ clock: expect.any(Number) });
    expect((byMethod(3)?.value as Array<{ name: string }>).map((q) => q.name)).toEqual(['celery']);
    expect(byMethod(4)?.value).toEqual({ ok: 'pong' });
    expect(byMethod(5)?.value).toEqual(expect.arrayContaining([expect.stringMatching(/^tasks\.add/)]));
    expect(results[6]).toEqual([]);
  });

  it('more concurrent broadcasts than blocking connections wait their turn and all complete', async () => {
    const t = harness.create({ maxConcurrentBroadcasts: 2 });
    await startedAndSubscribed(t);
    const ghost = (n: number) =>
      t.transport.broadcast({ method: 'ping', arguments: {}, destination: [`ghost-${n}@nowhere`] }, { reply: true, timeoutMs: 800 });
    const all = Promise.all([
      ghost(1),
      ghost(2),
      ghost(3),
      t.transport.broadcast({ method: 'ping', arguments: {}, destination: [worker.nodename] }, { reply: true, timeoutMs: 10_000 }),
    ]);
    let most = 0;
    let settled = false;
    // A rejection surfaces at `await all` below; here either outcome only ends the sampling.
    all.then(
      () => (settled = true),
      () => (settled = true),
    );
    while (!settled) {
      most = Math.max(most, (await harness.clientIds(`${t.clientName}-replies`)).length);
      await new Promise((r) => setTimeout(r, 50));
    }
    const results = await all;
    expect(results).toEqual([[], [], [], [{ worker: worker.nodename, value: { ok: 'pong' } }]]);
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(2);
  });

  it('a connection lost mid-broadcast ends it with what it has; the binding is removed after reconnecting', async () => {
    const t = harness.create({ viaProxy: true });
    await startedAndSubscribed(t);
    await firstPong(t.transport, worker);
    const bindings = replyBindingKey(harness.layout);
    const pending = t.transport.broadcast(
      { method: 'ping', arguments: {}, destination: [worker.nodename, 'nobody@nowhere'] },
      { reply: true, timeoutMs: 60_000 },
    );
    await waitForAsync(async () => (await harness.raw.scard(bindings)) > 0, 'the reply binding');
    // The worker's pong is in (or about to be); the absent node keeps the broadcast waiting.
    await new Promise((r) => setTimeout(r, 300));
    harness.proxy.cut();
    await expect(within(pending, 10_000, 'the cut broadcast')).resolves.toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
    await waitFor(() => t.observer.count('connected') >= 2, 'the reconnect');
    await waitForAsync(async () => (await harness.raw.scard(bindings)) === 0, 'the orphaned binding to be removed');
  });

  it('close() ends a pending broadcast with what it has and cleans up its binding', async () => {
    const t = harness.create();
    await startedAndSubscribed(t);
    const pending = t.transport.broadcast(
      { method: 'ping', arguments: {}, destination: ['nobody@nowhere'] },
      { reply: true, timeoutMs: 60_000 },
    );
    await waitForAsync(async () => (await harness.raw.scard(replyBindingKey(harness.layout))) > 0, 'the reply binding');
    await t.transport.close();
    await expect(within(pending, 5000, 'the pending broadcast')).resolves.toEqual([]);
    expect(await harness.raw.smembers(replyBindingKey(harness.layout))).toEqual([]);
  });
});

describe('redis pidbox on db 1', () => {
  let harness: RedisHarness;

  beforeAll(async () => {
    harness = await RedisHarness.create('pidbox-redis-db1', 1);
  });

  afterAll(async () => {
    await stopAllWorkers();
    await harness?.cleanup();
  });

  it('reaches a worker on db 1 through the /1. channel prefix', async () => {
    const worker = await startWorker({
      brokerUrl: harness.celery.brokerUrl,
      transportOptions: harness.celery.transportOptions,
      nodename: uniqueNodename('redis-db1'),
      pool: 'solo',
    });
    const h = harness.create();
    await startedAndSubscribed(h);
    await firstPong(h.transport, worker);
    const replies = await h.transport.broadcast(
      { method: 'ping', arguments: {}, destination: [worker.nodename] },
      { reply: true, timeoutMs: 10_000 },
    );
    expect(replies).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
    await worker.stop();
  });
});
