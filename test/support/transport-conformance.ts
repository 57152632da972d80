import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BrokerUnavailableError,
  QueueNotFoundError,
  type BrokerTransport,
  type EventSink,
  type RawEventMessage,
  type TransportDropReason,
  type TransportObserver,
} from '../../src/transport/transport.js';
import { startWorker, uniqueNodename, type CeleryWorker } from './celery/worker.js';
import { uniqueId } from './isolation.js';
import type { TcpProxy } from './tcp-proxy.js';

/**
 * The one conformance suite every broker transport passes against its real broker. A transport
 * file supplies a harness (how to build a transport on an isolated namespace of the shared broker,
 * and how to put bytes on the wire the way Celery does); the scenarios below are the same for all.
 */

export interface HarnessCreateOptions {
  /** Connect through `harness.proxy` instead of straight to the broker, for fault scenarios. */
  readonly viaProxy?: boolean;
  /** Overrides the harness default (which should be large, e.g. 1 MiB). */
  readonly maxMessageBytes?: number;
}

export interface HarnessTransport {
  readonly transport: BrokerTransport;
  readonly observer: RecordingObserver;
  readonly sink: RecordingSink;
}

export interface TransportHarness {
  /**
   * A new, not yet started transport on the suite's isolated namespace (vhost / key prefix), with
   * short reconnect delays (tens of ms up to ~1 s) so fault scenarios recover quickly. The harness
   * remembers it and closes it in `cleanup()`.
   */
  create(options?: HarnessCreateOptions): HarnessTransport;
  /**
   * Publishes one event message exactly as a Celery worker's EventDispatcher would (AMQP: to the
   * `celeryev` topic exchange with Celery's properties; Redis: a kombu envelope PUBLISHed on the
   * prefixed fanout channel), using a separate raw client. `body` is the serialized event body.
   */
  publishRawEvent(body: Buffer | string, routingKey: string, props?: { contentType?: string; contentEncoding?: string }): Promise<void>;
  /**
   * Leaves `count` Celery task messages (protocol v2) in `queue` with no consumer, creating the
   * queue like Celery would if needed, with the given priority (0-9, default 0).
   */
  pushTasks(queue: string, count: number, priority?: number): Promise<void>;
  /** A proxy in front of the broker; transports created with `viaProxy` connect through it. */
  readonly proxy: TcpProxy;
  /** How a real Celery worker reaches the same isolated namespace (for the pidbox scenarios). */
  readonly celery: { readonly brokerUrl: string; readonly transportOptions?: Readonly<Record<string, unknown>> };
  /** Closes every transport it created, its raw clients and the proxy; removes the namespace. */
  cleanup(): Promise<void>;
}

/** Records every observer call in order, for assertions on the connection lifecycle. */
export class RecordingObserver implements TransportObserver {
  readonly calls: Array<
    { kind: 'connected' } | { kind: 'disconnected'; error: Error } | { kind: 'reconnecting'; attempt: number; delayMs: number }
  > = [];

  connected(): void {
    this.calls.push({ kind: 'connected' });
  }

  disconnected(error: Error): void {
    this.calls.push({ kind: 'disconnected', error });
  }

  reconnecting(attempt: number, delayMs: number): void {
    this.calls.push({ kind: 'reconnecting', attempt, delayMs });
  }

  count(kind: 'connected' | 'disconnected' | 'reconnecting'): number {
    return this.calls.filter((c) => c.kind === kind).length;
  }
}

/** Keeps every delivered message, drop and subscription, in order. */
export class RecordingSink implements EventSink {
  readonly messages: RawEventMessage[] = [];
  readonly drops: Partial<Record<TransportDropReason, number>> = {};
  subscribed = 0;

  onEvents(message: RawEventMessage): void {
    this.messages.push(message);
  }

  onDrop(reason: TransportDropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  onSubscribed(): void {
    this.subscribed += 1;
  }

  /** Bodies as UTF-8 strings, for easy matching. */
  bodies(): string[] {
    return this.messages.map((m) => m.body.toString('utf8'));
  }
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Rejects if `promise` has not settled within `ms`: used to prove a call returned early. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A worker-heartbeat body in Celery's json.dumps layout, tagged so a test finds its own. */
export function heartbeatBody(tag: string): string {
  return JSON.stringify({
    hostname: `${tag}@conformance`,
    utcoffset: 0,
    pid: 4242,
    clock: 7,
    freq: 2.0,
    active: 0,
    processed: 0,
    loadavg: [0.1, 0.2, 0.3],
    sw_ident: 'py-celery',
    sw_ver: '5.2.6',
    sw_sys: 'Linux',
    timestamp: 1_700_000_000.5,
    type: 'worker-heartbeat',
  })
    .replace(/,"/g, ', "')
    .replace(/":/g, '": ');
}

async function startedAndSubscribed(h: HarnessTransport, what = 'first subscription'): Promise<void> {
  h.transport.start(h.sink);
  await waitFor(() => h.sink.subscribed >= 1 && h.transport.isConnected(), what);
}

/**
 * Publishes tagged events until one of them reaches `sink`: after a (re)subscription the broker
 * may need a moment before a publish from another connection is routed to the new queue/pattern.
 */
async function publishUntilSeen(harness: TransportHarness, sink: RecordingSink, tag: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let n = 0;
  while (!sink.bodies().some((b) => b.includes(`"${tag}-`))) {
    if (Date.now() > deadline) throw new Error(`no event tagged ${tag} arrived within ${timeoutMs} ms`);
    await harness.publishRawEvent(heartbeatBody(`${tag}-${n++}`), 'worker.heartbeat');
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function describeTransportConformance(name: string, makeHarness: () => Promise<TransportHarness>): void {
  describe(`${name} transport conformance`, () => {
    let harness: TransportHarness;
    /** Transports of the running test: closed after it, so later tests' traffic stays small. */
    let perTest: HarnessTransport[] = [];
    const create = (options?: HarnessCreateOptions): HarnessTransport => {
      const h = harness.create(options);
      perTest.push(h);
      return h;
    };

    beforeAll(async () => {
      harness = await makeHarness();
    });

    afterEach(async () => {
      const closing = perTest;
      perTest = [];
      harness?.proxy.resume();
      await Promise.all(closing.map((h) => h.transport.close()));
    });

    afterAll(async () => {
      await harness?.cleanup();
    });

    describe('events', () => {
      it('delivers an object body verbatim with its content type and routing key', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const body = heartbeatBody(uniqueId('object'));
        await harness.publishRawEvent(body, 'worker.heartbeat');
        await waitFor(() => h.sink.messages.length >= 1, 'the heartbeat event');
        const [message] = h.sink.messages;
        expect(message?.body.toString('utf8')).toBe(body);
        expect(message?.contentType).toBe('application/json');
        expect(message?.contentEncoding).toBe('utf-8');
        expect(message?.routingKey).toBe('worker.heartbeat');
        expect(h.sink.drops).toEqual({});
      });

      it('delivers a task.multi array body verbatim', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const uuid = uniqueId('task');
        const body =
          `[{"hostname": "w@h", "utcoffset": 0, "pid": 1, "clock": 3, "uuid": "${uuid}", "name": "tasks.add", "args": "(2, 3)", ` +
          `"kwargs": "{}", "root_id": "${uuid}", "parent_id": null, "retries": 0, "eta": null, "expires": null, ` +
          `"timestamp": 1700000000.1, "type": "task-received"}, {"hostname": "w@h", "utcoffset": 0, "pid": 1, "clock": 4, ` +
          `"uuid": "${uuid}", "timestamp": 1700000000.2, "type": "task-started"}]`;
        await harness.publishRawEvent(Buffer.from(body, 'utf8'), 'task.multi');
        await waitFor(() => h.sink.messages.length >= 1, 'the task.multi event');
        expect(h.sink.messages[0]?.body.equals(Buffer.from(body, 'utf8'))).toBe(true);
        expect(h.sink.messages[0]?.routingKey).toBe('task.multi');
        expect(h.sink.messages[0]?.contentType).toBe('application/json');
      });

      it('passes other content types through untouched for the decoder to judge', async () => {
        const h = create();
        await startedAndSubscribed(h);
        await harness.publishRawEvent('not json at all', 'worker.heartbeat', {
          contentType: 'application/x-python-serialize',
          contentEncoding: 'binary',
        });
        await waitFor(() => h.sink.messages.length >= 1, 'the pickled event');
        expect(h.sink.messages[0]?.contentType).toBe('application/x-python-serialize');
        expect(h.sink.messages[0]?.contentEncoding).toBe('binary');
        expect(h.sink.messages[0]?.body.toString('utf8')).toBe('not json at all');
      });

      it('drops and counts a message over maxMessageBytes, and keeps delivering the next ones', async () => {
        const h = create({ maxMessageBytes: 2048 });
        await startedAndSubscribed(h);
        const big = heartbeatBody(`big-${'x'.repeat(4096)}`);
        const small = heartbeatBody(uniqueId('small'));
        await harness.publishRawEvent(big, 'worker.heartbeat');
        await harness.publishRawEvent(small, 'worker.heartbeat');
        await waitFor(() => h.sink.messages.length >= 1 && h.sink.drops.oversize === 1, 'one delivery and one oversize drop');
        expect(h.sink.bodies()).toEqual([small]);
        expect(h.sink.drops).toEqual({ oversize: 1 });
      });

      it('keeps broker order for a burst of events', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const tag = uniqueId('burst');
        const count = 2000;
        for (let i = 0; i < count; i++) await harness.publishRawEvent(heartbeatBody(`${tag}-${i}`), 'worker.heartbeat');
        await waitFor(() => h.sink.messages.length >= count, `${count} events`);
        const order = h.sink.bodies().map((b) => Number(/-(\d+)@conformance/.exec(b)?.[1]));
        expect(order).toEqual(Array.from({ length: count }, (_, i) => i));
      });
    });

    describe('connection lifecycle', () => {
      it('reports connected and subscribes once on start', async () => {
        const h = create();
        expect(h.transport.isConnected()).toBe(false);
        await startedAndSubscribed(h);
        expect(h.observer.count('connected')).toBe(1);
        expect(h.observer.count('disconnected')).toBe(0);
        expect(h.sink.subscribed).toBe(1);
      });

      it('reconnects after the connection is cut mid-stream, re-subscribes and receives later events', async () => {
        const h = create({ viaProxy: true });
        await startedAndSubscribed(h);
        const before = uniqueId('before');
        for (let i = 0; i < 50; i++) await harness.publishRawEvent(heartbeatBody(`${before}-${i}`), 'worker.heartbeat');
        harness.proxy.cut();
        await waitFor(() => h.observer.count('disconnected') >= 1, 'disconnected()');
        await waitFor(() => h.observer.count('reconnecting') >= 1, 'reconnecting()');
        await waitFor(() => h.observer.count('connected') >= 2 && h.sink.subscribed >= 2, 'connected() and onSubscribed() again');
        expect(h.transport.isConnected()).toBe(true);

        const kinds = h.observer.calls.map((c) => c.kind);
        expect(kinds[0]).toBe('connected');
        expect(kinds.indexOf('disconnected')).toBeLessThan(kinds.lastIndexOf('connected'));
        expect(kinds.indexOf('reconnecting')).toBeLessThan(kinds.lastIndexOf('connected'));
        const firstReconnect = h.observer.calls.find((c) => c.kind === 'reconnecting');
        expect(firstReconnect).toMatchObject({ attempt: 1 });

        await publishUntilSeen(harness, h.sink, uniqueId('after'));
      });

      it('starts while the broker is down without throwing, keeps retrying, and connects once it is up', async () => {
        harness.proxy.pause();
        try {
          const h = create({ viaProxy: true });
          expect(() => h.transport.start(h.sink)).not.toThrow();
          await waitFor(() => h.observer.count('reconnecting') >= 2, 'two reconnect attempts');
          expect(h.transport.isConnected()).toBe(false);
          expect(h.sink.subscribed).toBe(0);
          const attempts = h.observer.calls.flatMap((c) => (c.kind === 'reconnecting' ? [c.attempt] : []));
          expect(attempts.slice(0, 2)).toEqual([1, 2]);
          expect(h.observer.count('disconnected')).toBeGreaterThanOrEqual(1);

          harness.proxy.resume();
          await waitFor(() => h.transport.isConnected() && h.sink.subscribed === 1, 'connection after the broker came up');
          expect(h.observer.count('connected')).toBe(1);
          await publishUntilSeen(harness, h.sink, uniqueId('late'));
        } finally {
          harness.proxy.resume();
        }
      });

      it('rejects a broadcast at once with BrokerUnavailableError while disconnected', async () => {
        harness.proxy.pause();
        try {
          const h = create({ viaProxy: true });
          h.transport.start(h.sink);
          await waitFor(() => h.observer.count('reconnecting') >= 1, 'a reconnect attempt');
          // A 60 s idle timeout: only an immediate rejection settles this within 5 s.
          const attempt = h.transport.broadcast(
            { method: 'ping', arguments: {}, destination: ['nobody@nowhere'] },
            { reply: true, timeoutMs: 60_000 },
          );
          await expect(within(attempt, 5000, 'the broadcast while disconnected')).rejects.toBeInstanceOf(BrokerUnavailableError);
          await expect(
            h.transport.broadcast(
              { method: 'heartbeat', arguments: {}, destination: ['nobody@nowhere'] },
              { reply: false, timeoutMs: 1000 },
            ),
          ).rejects.toBeInstanceOf(BrokerUnavailableError);
        } finally {
          harness.proxy.resume();
        }
      });

      it('rejects a broadcast before start with BrokerUnavailableError', async () => {
        const h = create();
        await expect(
          h.transport.broadcast({ method: 'ping', arguments: {}, destination: ['nobody@nowhere'] }, { reply: true, timeoutMs: 1000 }),
        ).rejects.toBeInstanceOf(BrokerUnavailableError);
      });

      it('close() is idempotent, stops reconnecting and leaves the transport disconnected', async () => {
        const h = create({ viaProxy: true });
        await startedAndSubscribed(h);
        await h.transport.close();
        await h.transport.close();
        expect(h.transport.isConnected()).toBe(false);
        const calls = h.observer.calls.length;
        harness.proxy.cut();
        await new Promise((r) => setTimeout(r, 500));
        expect(h.observer.count('reconnecting')).toBe(0);
        expect(h.observer.calls.length).toBeLessThanOrEqual(calls + 1);
        await expect(
          h.transport.broadcast({ method: 'ping', arguments: {}, destination: ['nobody@nowhere'] }, { reply: true, timeoutMs: 1000 }),
        ).rejects.toBeInstanceOf(BrokerUnavailableError);
      });

      it('close() on a transport that never started, and on one still retrying, resolves', async () => {
        const idle = create();
        await idle.transport.close();
        await idle.transport.close();

        harness.proxy.pause();
        try {
          const retrying = create({ viaProxy: true });
          retrying.transport.start(retrying.sink);
          await waitFor(() => retrying.observer.count('reconnecting') >= 1, 'a reconnect attempt');
          await retrying.transport.close();
          const attempts = retrying.observer.count('reconnecting');
          harness.proxy.resume();
          await new Promise((r) => setTimeout(r, 1500));
          expect(retrying.observer.count('reconnecting')).toBe(attempts);
          expect(retrying.observer.count('connected')).toBe(0);
          expect(retrying.transport.isConnected()).toBe(false);
        } finally {
          harness.proxy.resume();
        }
      });
    });

    describe('queue depths', () => {
      it('reads ready messages of an existing queue, counts priority tasks in the same queue, and 0 for a missing one', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const plain = uniqueId('depth-plain');
        const prio = uniqueId('depth-prio');
        const missing = uniqueId('depth-missing');
        await harness.pushTasks(plain, 5);
        await harness.pushTasks(prio, 2, 0);
        await harness.pushTasks(prio, 3, 5);
        await harness.pushTasks(prio, 4, 9);

        const depths = await h.transport.queueDepths([plain, missing, prio], 5000);
        expect(depths.map((d) => [d.name, d.messages])).toEqual([
          [plain, 5],
          [missing, 0],
          [prio, 9],
        ]);
        for (const d of depths) expect(d.error).toBeUndefined();
        if (h.transport.kind === 'amqp') {
          expect(depths.map((d) => d.consumers)).toEqual([0, 0, 0]);
        } else {
          expect(depths.map((d) => d.consumers)).toEqual([null, null, null]);
        }
      });

      it('keeps the event stream flowing around depth reads of missing queues', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const tag = uniqueId('flow');
        await harness.publishRawEvent(heartbeatBody(`${tag}-0`), 'worker.heartbeat');
        const depths = await h.transport.queueDepths([uniqueId('gone-a'), uniqueId('gone-b'), uniqueId('gone-c')], 5000);
        expect(depths.map((d) => d.messages)).toEqual([0, 0, 0]);
        await harness.publishRawEvent(heartbeatBody(`${tag}-1`), 'worker.heartbeat');
        await waitFor(() => h.sink.messages.length >= 2, 'both events');
        expect(h.sink.bodies().map((b) => b.includes(tag))).toEqual([true, true]);
        expect(h.transport.isConnected()).toBe(true);
        expect(h.observer.count('disconnected')).toBe(0);
        expect(h.sink.subscribed).toBe(1);
      });

      it('returns an empty list for no queues', async () => {
        const h = create();
        await startedAndSubscribed(h);
        await expect(h.transport.queueDepths([], 1000)).resolves.toEqual([]);
      });

      it('purges every ready message of a queue, all priority lists included, and answers how many went', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const queue = uniqueId('purge');
        const other = uniqueId('purge-other');
        await harness.pushTasks(queue, 3, 0);
        await harness.pushTasks(queue, 4, 5);
        await harness.pushTasks(queue, 2, 9);
        await harness.pushTasks(other, 2);
        await expect(h.transport.purgeQueue(queue, 5000)).resolves.toBe(9);
        const depths = await h.transport.queueDepths([queue, other], 5000);
        expect(depths.map((d) => d.messages)).toEqual([0, 2]);
        await expect(h.transport.purgeQueue(queue, 5000)).resolves.toBe(0);
      });

      it('purge of a queue the broker lacks: RabbitMQ QueueNotFoundError, Redis 0 (no list is no message)', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const purged = h.transport.purgeQueue(uniqueId('purge-missing'), 5000);
        if (h.transport.kind === 'amqp') await expect(purged).rejects.toBeInstanceOf(QueueNotFoundError);
        else await expect(purged).resolves.toBe(0);
        // The event stream is unaffected by the closed channel.
        expect(h.transport.isConnected()).toBe(true);
      });

      it('purge while publishing: the count is exactly what was removed (the rest stays queued)', async () => {
        const h = create();
        await startedAndSubscribed(h);
        const queue = uniqueId('purge-race');
        await harness.pushTasks(queue, 200);
        const [removed] = await Promise.all([h.transport.purgeQueue(queue, 5000), harness.pushTasks(queue, 200, 5)]);
        const [left] = await h.transport.queueDepths([queue], 5000);
        expect(removed + left!.messages!).toBe(400);
        expect(removed).toBeGreaterThanOrEqual(200);
      });

      it('purge while disconnected rejects with BrokerUnavailableError and removes nothing', async () => {
        const queue = uniqueId('purge-down');
        await harness.pushTasks(queue, 3);
        harness.proxy.pause();
        try {
          const h = create({ viaProxy: true });
          h.transport.start(h.sink);
          await waitFor(() => h.observer.count('reconnecting') >= 1, 'a reconnect attempt');
          await expect(h.transport.purgeQueue(queue, 1000)).rejects.toBeInstanceOf(BrokerUnavailableError);
        } finally {
          harness.proxy.resume();
        }
        const h = create();
        await startedAndSubscribed(h);
        expect((await h.transport.queueDepths([queue], 5000))[0]!.messages).toBe(3);
      });

      it('reports unreadable depths as null with an error while disconnected, never throwing', async () => {
        harness.proxy.pause();
        try {
          const h = create({ viaProxy: true });
          h.transport.start(h.sink);
          await waitFor(() => h.observer.count('reconnecting') >= 1, 'a reconnect attempt');
          const [depth] = await h.transport.queueDepths(['celery'], 1000);
          expect(depth).toMatchObject({ name: 'celery', messages: null, consumers: null });
          expect(typeof depth?.error).toBe('string');
        } finally {
          harness.proxy.resume();
        }
      });
    });

    describe('pidbox with a real Celery worker', () => {
      let worker: CeleryWorker;
      let h: HarnessTransport;
      const ping = (destination: string[], timeoutMs: number) =>
        h.transport.broadcast({ method: 'ping', arguments: {}, destination }, { reply: true, timeoutMs });

      beforeAll(async () => {
        worker = await startWorker({
          brokerUrl: harness.celery.brokerUrl,
          nodename: uniqueNodename('conformance'),
          pool: 'solo',
          ...(harness.celery.transportOptions ? { transportOptions: { ...harness.celery.transportOptions } } : {}),
        });
        h = harness.create();
        await startedAndSubscribed(h);
        // The worker logs "consuming" once its pidbox listens; a broker may still need a moment
        // to route to it, so wait (bounded) for a first pong.
        const deadline = Date.now() + 30_000;
        while ((await ping([worker.nodename], 1000)).length === 0) {
          if (Date.now() > deadline) throw new Error(`worker never answered ping:\n${worker.logs()}`);
        }
      });

      afterAll(async () => {
        await worker?.stop();
      });

      it("ping to a destination list gets exactly that worker's pong and returns as soon as the limit is reached", async () => {
        // A 100 s idle timeout: only the limit (destination.length) can end this within 20 s.
        const replies = await within(ping([worker.nodename], 100_000), 20_000, 'ping with limit 1');
        expect(replies).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
      });

      it('a destination naming an absent worker gets no reply for it and ends after the idle timeout', async () => {
        const ghost = uniqueNodename('ghost');
        const replies = await within(ping([worker.nodename, ghost], 1500), 30_000, 'ping with an absent worker');
        expect(replies).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
      });

      it('an explicit limit ends collection early', async () => {
        const replies = await within(
          h.transport.broadcast(
            { method: 'ping', arguments: {}, destination: [worker.nodename, uniqueNodename('ghost')] },
            { reply: true, timeoutMs: 100_000, limit: 1 },
          ),
          20_000,
          'ping with limit 1',
        );
        expect(replies).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
      });

      it('concurrent broadcasts each get their own replies (ticket matching); stats returns the pool dict', async () => {
        const destination = [worker.nodename];
        const [pong, stats, clock, unknown] = await Promise.all([
          ping(destination, 10_000),
          h.transport.broadcast({ method: 'stats', arguments: {}, destination }, { reply: true, timeoutMs: 10_000 }),
          h.transport.broadcast({ method: 'clock', arguments: {}, destination }, { reply: true, timeoutMs: 10_000 }),
          h.transport.broadcast({ method: 'no_such_command', arguments: {}, destination }, { reply: true, timeoutMs: 10_000 }),
        ]);
        expect(pong).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
        expect(stats).toHaveLength(1);
        expect(stats[0]?.worker).toBe(worker.nodename);
        const value = stats[0]?.value as { pid?: unknown; pool?: Record<string, unknown> };
        expect(value.pid).toBe(worker.pid);
        expect(value.pool).toMatchObject({ 'max-concurrency': 1 });
        expect(clock).toEqual([{ worker: worker.nodename, value: { clock: expect.any(Number) } }]);
        expect(unknown).toEqual([{ worker: worker.nodename, value: { error: "KeyError('no_such_command')" } }]);
      });

      it('a cast (reply: false) resolves with no replies and still reaches the worker', async () => {
        const before = h.sink.messages.length;
        const replies = await h.transport.broadcast(
          { method: 'heartbeat', arguments: {}, destination: [worker.nodename] },
          { reply: false, timeoutMs: 1000 },
        );
        expect(replies).toEqual([]);
        // The worker answers the `heartbeat` command with an on-request worker-heartbeat event (freq 5).
        await waitFor(
          () =>
            h.sink.messages.slice(before).some((m) => {
              const body = m.body.toString('utf8');
              return body.includes(`"${worker.nodename}"`) && body.includes('"worker-heartbeat"') && /"freq": 5[,}]/.test(body);
            }),
          'the on-request worker-heartbeat',
        );
      });

      it('keeps working once the request clock passes 127 and 32767 (header integer types)', async () => {
        // Regression: amqplib sent clock 128..32767 as a 16-bit int that py-amqp reads as a string,
        // and every worker receiving a command died. Push our clock past both limits with casts
        // addressed to nobody, then the worker must still answer, and still be alive.
        for (let i = 0; i < 330; i++) {
          await h.transport.broadcast(
            { method: 'ping', arguments: {}, destination: [uniqueNodename('nobody')] },
            { reply: false, timeoutMs: 0 },
          );
        }
        expect(await within(ping([worker.nodename], 5000), 20_000, 'ping after clock 330')).toEqual([
          { worker: worker.nodename, value: { ok: 'pong' } },
        ]);
        for (let i = 0; i < 32_500; i += 1) {
          await h.transport.broadcast(
            { method: 'ping', arguments: {}, destination: [uniqueNodename('nobody')] },
            { reply: false, timeoutMs: 0 },
          );
          if (i % 5000 === 0 && !h.transport.isConnected()) throw new Error('transport disconnected while pushing the clock');
        }
        // The worker reads all 32,500 casts from its pidbox queue before this ping: on a loaded
        // machine that can take longer than one ping's reply window, so it is asked until it
        // answers. A worker that died on a header never does.
        const deadline = Date.now() + 60_000;
        let replies = await within(ping([worker.nodename], 5000), 20_000, 'ping after clock 32830');
        while (replies.length === 0 && Date.now() < deadline) {
          replies = await within(ping([worker.nodename], 5000), 20_000, 'ping after clock 32830');
        }
        expect(replies).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
        expect(worker.logs()).not.toContain('Unrecoverable error');
      });
    });
  });
}
