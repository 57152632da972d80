import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { AmqpTransport, type AmqpTransportSettings } from '../../src/transport/amqp.js';
import { createVhost, uniqueId } from '../support/isolation.js';
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

const run = promisify(execFile);

/** A raw amqplib client playing Celery's part: publishes events and tasks as a worker/client would. */
interface RawClient {
  readonly model: ChannelModel;
  readonly channel: Channel;
}

async function rawClient(url: string): Promise<RawClient> {
  const model = await connect(url);
  model.on('error', () => undefined);
  const channel = await model.createChannel();
  channel.on('error', () => undefined);
  await channel.assertExchange('celeryev', 'topic', { durable: true, autoDelete: false });
  return { model, channel };
}

/** Publishes and waits until the broker has the bytes (the channel's buffer drained). */
async function publish(channel: Channel, exchange: string, routingKey: string, body: Buffer, options: object): Promise<void> {
  if (!channel.publish(exchange, routingKey, body, options)) {
    await new Promise<void>((resolve) => channel.once('drain', () => resolve()));
  }
}

/** The AMQP harness: one vhost per suite, a proxy in front of the shared broker. */
class AmqpHarness implements TransportHarness {
  readonly #created: AmqpTransport[] = [];

  private constructor(
    readonly vhost: string,
    readonly url: string,
    readonly proxy: TcpProxy,
    readonly raw: RawClient,
    private readonly removeVhost: () => Promise<void>,
  ) {}

  static async create(suite: string): Promise<AmqpHarness> {
    const { vhost, url, remove } = await createVhost(uniqueId(suite));
    const proxy = new TcpProxy('127.0.0.1', 5672);
    await proxy.listen();
    return new AmqpHarness(vhost, url, proxy, await rawClient(url), remove);
  }

  get celery(): { brokerUrl: string } {
    return { brokerUrl: this.url };
  }

  urlVia(proxy: boolean): string {
    return proxy ? `amqp://guest:guest@127.0.0.1:${this.proxy.port}/${encodeURIComponent(this.vhost)}` : this.url;
  }

  settings(options: HarnessCreateOptions & { heartbeatSeconds?: number; queueName?: string } = {}): AmqpTransportSettings {
    return {
      url: this.urlVia(options.viaProxy ?? false),
      eventQueue: { name: options.queueName ?? `celeryev.${randomUUID()}`, messageTtlMs: 60_000, expiresMs: 60_000, prefetch: 2000 },
      maxMessageBytes: options.maxMessageBytes ?? 1024 * 1024,
      heartbeatSeconds: options.heartbeatSeconds ?? 10,
      reconnect: { initialMs: 50, maxMs: 500 },
      connectTimeoutMs: 2000,
      readPacingMs: 50,
    };
  }

  create(
    options?: HarnessCreateOptions & { heartbeatSeconds?: number; queueName?: string },
  ): HarnessTransport & { transport: AmqpTransport; settings: AmqpTransportSettings } {
    const observer = new RecordingObserver();
    const sink = new RecordingSink();
    const settings = this.settings(options);
    const transport = new AmqpTransport(settings, observer, silentLogger());
    this.#created.push(transport);
    return { transport, observer, sink, settings };
  }

  async publishRawEvent(
    body: Buffer | string,
    routingKey: string,
    props: { contentType?: string; contentEncoding?: string } = {},
  ): Promise<void> {
    // Exactly the properties a Celery 5.2.6 worker's EventDispatcher sets (docs/wire-protocol.md §A3).
    await publish(this.raw.channel, 'celeryev', routingKey, Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), {
      contentType: props.contentType ?? 'application/json',
      contentEncoding: props.contentEncoding ?? 'utf-8',
      deliveryMode: 1,
      priority: 0,
      headers: { hostname: 'conformance@test' },
    });
  }

  async pushTasks(queue: string, count: number, priority = 0): Promise<void> {
    // Celery declares task queues durable with no arguments and routes via the default exchange (§D).
    await this.raw.channel.assertQueue(queue, { durable: true, autoDelete: false, exclusive: false });
    for (let i = 0; i < count; i++) {
      const id = randomUUID();
      const headers = {
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
        origin: 'gen1@conformance',
        ignore_result: false,
      };
      const body = Buffer.from(JSON.stringify([[2, 3], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]));
      await publish(this.raw.channel, '', queue, body, {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 2,
        priority,
        correlationId: id,
        replyTo: '',
        headers,
      });
    }
    // Publishes are asynchronous; a passive declare on the same channel comes back after them.
    await this.raw.channel.checkQueue(queue);
  }

  async rabbitmqctl(...args: string[]): Promise<string> {
    const { stdout } = await run('rabbitmqctl', ['-q', '-p', this.vhost, ...args]);
    return stdout;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.#created.map((t) => t.close()));
    await this.raw.model.close().catch(() => undefined);
    await this.proxy.close();
    await this.removeVhost();
  }
}

describeTransportConformance('amqp', () => AmqpHarness.create('transport-amqp-conf'));

describe('amqp transport specifics', () => {
  let harness: AmqpHarness;
  let perTest: AmqpTransport[] = [];
  const create = (options?: Parameters<AmqpHarness['create']>[0]) => {
    const h = harness.create(options);
    perTest.push(h.transport);
    return h;
  };
  const startAndSubscribe = async (h: HarnessTransport, what = 'subscription'): Promise<void> => {
    h.transport.start(h.sink);
    await waitFor(() => h.transport.isConnected() && h.sink.subscribed >= 1, what);
  };
  /** Publishes tagged heartbeats until one arrives (routing to a new queue can take a moment). */
  const publishUntilSeen = async (sink: RecordingSink, tag: string): Promise<void> => {
    const deadline = Date.now() + 20_000;
    for (let n = 0; !sink.bodies().some((b) => b.includes(`"${tag}-`)); n++) {
      if (Date.now() > deadline) throw new Error(`no event tagged ${tag} arrived`);
      await harness.publishRawEvent(heartbeatBody(`${tag}-${n}`), 'worker.heartbeat');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  beforeAll(async () => {
    harness = await AmqpHarness.create('transport-amqp');
  });

  afterEach(async () => {
    harness.proxy.resume();
    const closing = perTest;
    perTest = [];
    await Promise.all(closing.map((t) => t.close()));
  });

  afterAll(async () => {
    await harness?.cleanup();
  });

  it('declares the event, pidbox and reply topology exactly as Celery does', async () => {
    const h = create();
    await startAndSubscribe(h);
    const queueName = h.settings.eventQueue.name;

    const exchanges = JSON.parse(
      await harness.rabbitmqctl('list_exchanges', 'name', 'type', 'durable', 'auto_delete', '--formatter', 'json'),
    ) as Array<{
      name: string;
      type: string;
      durable: boolean;
      auto_delete: boolean;
    }>;
    const byName = new Map(exchanges.map((e) => [e.name, e]));
    expect(byName.get('celeryev')).toMatchObject({ type: 'topic', durable: true, auto_delete: false });
    expect(byName.get('celery.pidbox')).toMatchObject({ type: 'fanout', durable: false, auto_delete: false });
    expect(byName.get('reply.celery.pidbox')).toMatchObject({ type: 'direct', durable: false, auto_delete: false });

    const queues = JSON.parse(
      await harness.rabbitmqctl(
        'list_queues',
        'name',
        'durable',
        'auto_delete',
        'exclusive',
        'arguments',
        'consumers',
        '--formatter',
        'json',
      ),
    ) as Array<{ name: string; durable: boolean; auto_delete: boolean; arguments: unknown; consumers: number }>;
    const events = queues.find((q) => q.name === queueName);
    expect(events).toMatchObject({ durable: false, auto_delete: true, consumers: 1 });
    expect(JSON.stringify(events?.arguments)).toContain('x-message-ttl');
    expect(JSON.stringify(events?.arguments)).toContain('60000');
    const replies = queues.filter((q) => q.name.endsWith('.reply.celery.pidbox'));
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ durable: false, auto_delete: true, consumers: 1 });
    expect(JSON.stringify(replies[0]?.arguments)).toContain('300000');
    expect(JSON.stringify(replies[0]?.arguments)).toContain('10000');

    const bindings = JSON.parse(
      await harness.rabbitmqctl('list_bindings', 'source_name', 'destination_name', 'routing_key', '--formatter', 'json'),
    ) as Array<{ source_name: string; destination_name: string; routing_key: string }>;
    expect(bindings).toContainEqual({ source_name: 'celeryev', destination_name: queueName, routing_key: '#' });
    const oid = replies[0]!.name.slice(0, -'.reply.celery.pidbox'.length);
    expect(bindings).toContainEqual({ source_name: 'reply.celery.pidbox', destination_name: replies[0]!.name, routing_key: oid });
  });

  it('detects a half-open connection through heartbeats and reconnects', async () => {
    const h = create({ viaProxy: true, heartbeatSeconds: 2 });
    await startAndSubscribe(h);
    harness.proxy.freeze();
    await waitFor(() => h.observer.count('disconnected') >= 1, 'the heartbeat timeout', 30_000);
    expect(h.transport.isConnected()).toBe(false);
    const lost = h.observer.calls.find((c) => c.kind === 'disconnected');
    expect(lost?.kind === 'disconnected' && lost.error.message).toMatch(/heartbeat/i);
    harness.proxy.resume();
    await waitFor(() => h.transport.isConnected() && h.sink.subscribed >= 2, 'the reconnect', 30_000);
    await publishUntilSeen(h.sink, uniqueId('after-freeze'));
  });

  it('reconnects after the broker force-closes the connection (rabbitmqctl close_connection)', async () => {
    const h = create();
    await startAndSubscribe(h);
    // The tab format prints pids as close_connection takes them (the JSON one does not).
    const listing = (await run('rabbitmqctl', ['-q', 'list_connections', 'pid', 'vhost', 'client_properties'])).stdout;
    const ours = listing
      .split('\n')
      .map((line) => line.split('\t'))
      .filter(([, vhost, props]) => vhost === harness.vhost && props?.includes('{"connection_name","celery-autopilot"}'))
      .map(([pid]) => pid!);
    expect(ours).toHaveLength(1);
    await run('rabbitmqctl', ['-q', 'close_connection', ours[0]!, 'test: operator closed it']);
    await waitFor(() => h.observer.count('disconnected') >= 1, 'disconnected()');
    const lost = h.observer.calls.find((c) => c.kind === 'disconnected');
    expect(lost?.kind === 'disconnected' && lost.error.message).toMatch(/operator closed it|CONNECTION_FORCED/);
    await waitFor(() => h.transport.isConnected() && h.sink.subscribed >= 2, 'the reconnect');
    await publishUntilSeen(h.sink, uniqueId('after-close'));
  });

  it('treats a channel error during topology setup (406 on the event queue) as a loss and retries with backoff', async () => {
    const queueName = `celeryev.${randomUUID()}`;
    // Someone else's queue of the same name with other arguments: our declare gets 406.
    await harness.raw.channel.assertQueue(queueName, { durable: true, autoDelete: false });
    const h = create({ queueName });
    h.transport.start(h.sink);
    await waitFor(() => h.observer.count('reconnecting') >= 3, 'three retries');
    expect(h.transport.isConnected()).toBe(false);
    expect(h.sink.subscribed).toBe(0);
    const lost = h.observer.calls.find((c) => c.kind === 'disconnected');
    expect(lost?.kind === 'disconnected' && lost.error.message).toMatch(/PRECONDITION_FAILED|406/);
    const attempts = h.observer.calls.flatMap((c) => (c.kind === 'reconnecting' ? [c.attempt] : []));
    expect(attempts.slice(0, 3)).toEqual([1, 2, 3]);

    await harness.raw.channel.deleteQueue(queueName);
    await waitFor(() => h.transport.isConnected() && h.sink.subscribed === 1, 'the connection once the conflict is gone');
    await publishUntilSeen(h.sink, uniqueId('after-406'));
  });

  it('re-declares and re-consumes the event queue after rabbitmqctl delete_queue, without dropping the connection', async () => {
    const h = create();
    await startAndSubscribe(h);
    await harness.rabbitmqctl('delete_queue', h.settings.eventQueue.name);
    await waitFor(() => h.sink.subscribed >= 2, 'the re-subscription');
    expect(h.observer.count('disconnected')).toBe(0);
    expect(h.transport.isConnected()).toBe(true);
    await publishUntilSeen(h.sink, uniqueId('after-delete'));
    // The new channel's deliveries take the lean path too.
    expect(h.transport.leanDeliveries).toBeGreaterThan(0);
    const [depth] = await h.transport.queueDepths([h.settings.eventQueue.name], 5000);
    expect(depth?.consumers).toBe(1);
  });

  it('re-declares the pidbox reply queue when it is deleted, and broadcasts keep working', async () => {
    const h = create();
    await startAndSubscribe(h);
    const worker = fakeWorker(harness.raw, 'fake-reply@test');
    await worker.ready;
    const names = (await harness.rabbitmqctl('list_queues', 'name')).split('\n').filter((n) => n.endsWith('.reply.celery.pidbox'));
    expect(names).toHaveLength(1);
    await harness.rabbitmqctl('delete_queue', names[0]!);
    // The consumer-cancel notification and the re-declare are asynchronous: retry (bounded).
    const deadline = Date.now() + 20_000;
    let replies: unknown[] = [];
    while (replies.length === 0 && Date.now() < deadline) {
      replies = await h.transport.broadcast(
        { method: 'ping', arguments: {}, destination: ['fake-reply@test'] },
        { reply: true, timeoutMs: 500 },
      );
    }
    expect(replies).toEqual([{ worker: 'fake-reply@test', value: { ok: 'pong' } }]);
    expect(h.observer.count('disconnected')).toBe(0);
    await worker.stop();
  });

  it('puts a pidbox request on the wire byte for byte as kombu does', async () => {
    const h = create();
    await startAndSubscribe(h);
    const tap = await tapPidbox(harness.raw);
    await h.transport.broadcast(
      { method: 'rate_limit', arguments: { task_name: 'tasks.add', rate_limit: '10/m' }, destination: ['a@x', 'b@x'] },
      { reply: true, timeoutMs: 300 },
    );
    await h.transport.broadcast(
      { method: 'revoke', arguments: { task_id: 'abc', terminate: false, signal: 'SIGTERM' }, destination: ['a@x'] },
      { reply: false, timeoutMs: 1000 },
    );
    await waitFor(() => tap.messages.length >= 2, 'both requests on celery.pidbox');
    const [withReply, cast] = tap.messages as [ConsumeMessage, ConsumeMessage];

    const body = JSON.parse(withReply.content.toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['method', 'arguments', 'destination', 'pattern', 'matcher', 'ticket', 'reply_to']);
    expect(body).toMatchObject({
      method: 'rate_limit',
      arguments: { task_name: 'tasks.add', rate_limit: '10/m' },
      destination: ['a@x', 'b@x'],
      pattern: null,
      matcher: null,
      reply_to: { exchange: 'reply.celery.pidbox', routing_key: expect.any(String) },
    });
    expect(body['ticket']).toMatch(/^[0-9a-f-]{36}$/);
    expect(withReply.fields.exchange).toBe('celery.pidbox');
    expect(withReply.fields.routingKey).toBe('');
    expect(withReply.properties).toMatchObject({ contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 2, priority: 0 });
    const headers = withReply.properties.headers as { clock: unknown; expires: unknown };
    expect(Number.isInteger(headers.clock)).toBe(true);
    expect(headers.expires).toBeGreaterThan(Date.now() / 1000 - 60);

    expect(Object.keys(JSON.parse(cast.content.toString('utf8')) as object)).toEqual([
      'method',
      'arguments',
      'destination',
      'pattern',
      'matcher',
    ]);
    expect((cast.properties.headers as { clock: number }).clock).toBeGreaterThan(headers.clock as number);
    await tap.stop();
  });

  it('collects replies per ticket, stops at the limit, and resolves with what arrived when the connection drops', async () => {
    const h = create({ viaProxy: true });
    await startAndSubscribe(h);
    const one = fakeWorker(harness.raw, 'one@test');
    const two = fakeWorker(harness.raw, 'two@test');
    await Promise.all([one.ready, two.ready]);

    const both = await within(
      h.transport.broadcast({ method: 'ping', arguments: {}, destination: ['one@test', 'two@test'] }, { reply: true, timeoutMs: 100_000 }),
      20_000,
      'ping to two fake workers',
    );
    expect(both.map((r) => r.worker).sort()).toEqual(['one@test', 'two@test']);

    // One answers, the other never does: the connection drop must end the wait with that reply.
    two.silence();
    const waiting = h.transport.broadcast(
      { method: 'ping', arguments: {}, destination: ['one@test', 'two@test'] },
      { reply: true, timeoutMs: 100_000 },
    );
    await waitFor(() => one.answered >= 2, 'the second pong from one@test');
    await new Promise((r) => setTimeout(r, 200));
    harness.proxy.cut();
    const partial = await within(waiting, 20_000, 'the broadcast cut short by a connection loss');
    expect(partial).toEqual([{ worker: 'one@test', value: { ok: 'pong' } }]);
    await Promise.all([one.stop(), two.stop()]);
  });

  it('close() resolves broadcasts still waiting for replies', async () => {
    const h = create();
    await startAndSubscribe(h);
    const waiting = h.transport.broadcast(
      { method: 'ping', arguments: {}, destination: ['nobody@test'] },
      { reply: true, timeoutMs: 100_000 },
    );
    await h.transport.close();
    await expect(within(waiting, 10_000, 'the pending broadcast')).resolves.toEqual([]);
  });

  it('reports the consumers of a queue that a worker-like client consumes', async () => {
    const h = create();
    await startAndSubscribe(h);
    const queue = uniqueId('consumed');
    await harness.pushTasks(queue, 0);
    const consumer = await harness.raw.model.createChannel();
    consumer.on('error', () => undefined);
    await consumer.consume(queue, () => undefined, { noAck: false });
    const [depth] = await h.transport.queueDepths([queue], 5000);
    expect(depth).toEqual({ name: queue, messages: 0, consumers: 1 });
    await consumer.close();
  });

  it('a depth read on a stalled connection times out with null depths and an error, never hanging', async () => {
    const h = create({ viaProxy: true });
    await startAndSubscribe(h);
    harness.proxy.freeze();
    const depths = await within(h.transport.queueDepths(['celery', 'other'], 300), 10_000, 'queueDepths on a frozen socket');
    expect(depths.map((d) => [d.name, d.messages, d.consumers])).toEqual([
      ['celery', null, null],
      ['other', null, null],
    ]);
    expect(depths.every((d) => typeof d.error === 'string' && /timed out/.test(d.error))).toBe(true);
  });

  it('delivers a 100k-event burst without loss, in order', async () => {
    const h = create();
    await startAndSubscribe(h);
    const publisher = await rawClient(harness.url);
    const count = 100_000;
    const tag = uniqueId('bulk');
    for (let i = 0; i < count; i++) {
      await publish(publisher.channel, 'celeryev', 'worker.heartbeat', Buffer.from(`{"n": ${i}, "tag": "${tag}"}`), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 1,
      });
    }
    await waitFor(() => h.sink.messages.length >= count, `${count} events`, 110_000, 100);
    let inOrder = true;
    for (let i = 0; i < count; i++) if (h.sink.messages[i]?.body.toString('utf8') !== `{"n": ${i}, "tag": "${tag}"}`) inOrder = false;
    expect(inOrder).toBe(true);
    expect(h.sink.drops).toEqual({});
    // Every one of them through the lean delivery path, none through amqplib's message assembly.
    expect(h.transport.leanDeliveries).toBe(count);
    await publisher.model.close();
  }, 120_000);
});

/** A queue bound to the pidbox fanout exchange, to read requests as a worker would receive them. */
async function tapPidbox(raw: RawClient): Promise<{ messages: ConsumeMessage[]; stop(): Promise<void> }> {
  const messages: ConsumeMessage[] = [];
  const channel = await raw.model.createChannel();
  channel.on('error', () => undefined);
  const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  await channel.bindQueue(queue, 'celery.pidbox', '');
  await channel.consume(queue, (m) => m && messages.push(m), { noAck: true });
  return { messages, stop: () => channel.close() };
}

/**
 * Answers pings the way a Celery worker's pidbox does (§B2): destination check, then a reply to
 * `reply_to` with the request's ticket. `silence()` makes it stop answering.
 */
function fakeWorker(raw: RawClient, nodename: string): { ready: Promise<void>; answered: number; silence(): void; stop(): Promise<void> } {
  let channel: Channel | undefined;
  let silent = false;
  const state = {
    answered: 0,
    ready: (async () => {
      channel = await raw.model.createChannel();
      channel.on('error', () => undefined);
      const queue = `${nodename}.celery.pidbox`;
      await channel.assertQueue(queue, { durable: false, autoDelete: true, arguments: { 'x-expires': 10_000, 'x-message-ttl': 300_000 } });
      await channel.bindQueue(queue, 'celery.pidbox', '');
      await channel.consume(
        queue,
        (m) => {
          if (!m || silent || !channel) return;
          const request = JSON.parse(m.content.toString('utf8')) as {
            destination: string[] | null;
            ticket?: string;
            reply_to?: { exchange: string; routing_key: string };
          };
          if (request.destination && !request.destination.includes(nodename)) return;
          if (!request.ticket || !request.reply_to) return;
          channel.publish(
            request.reply_to.exchange,
            request.reply_to.routing_key,
            Buffer.from(JSON.stringify({ [nodename]: { ok: 'pong' } })),
            {
              contentType: 'application/json',
              contentEncoding: 'utf-8',
              deliveryMode: 1,
              priority: 0,
              headers: { ticket: request.ticket, clock: 1 },
            },
          );
          state.answered += 1;
        },
        { noAck: true },
      );
    })(),
    silence: () => {
      silent = true;
    },
    stop: async () => {
      await channel?.close().catch(() => undefined);
    },
  };
  return state;
}
