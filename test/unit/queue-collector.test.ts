import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { WorkerEvent } from '../../src/celery/events.js';
import { QueueCollector } from '../../src/exporter/queue-collector.js';
import { QueueFlow } from '../../src/state/queue-flow.js';
import { WorkerRegistry } from '../../src/state/workers.js';
import type { BrokerTransport, QueueDepth } from '../../src/transport/transport.js';

/** Pure logic under test: the broker is a table of depths, and every read is recorded. */
function fakeBroker(depths: Record<string, { messages: number; consumers: number }>) {
  const reads: string[][] = [];
  const transport = {
    kind: 'amqp',
    isConnected: () => true,
    queueDepths: async (queues: readonly string[]): Promise<QueueDepth[]> => {
      reads.push([...queues]);
      return queues.map((name) => ({ name, messages: depths[name]?.messages ?? 0, consumers: depths[name]?.consumers ?? 0 }));
    },
  } as unknown as BrokerTransport;
  return { transport, reads, depths };
}

function setup(retentionSeconds = 3600, maxQueues = 100) {
  const clock = new ManualClock();
  const workers = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
  const broker = fakeBroker({ q: { messages: 3, consumers: 1 } });
  const queues = new QueueCollector(broker.transport, workers, clock, {
    configuredQueues: ['configured'],
    timeoutMs: 1000,
    cacheMs: 60_000,
    retentionMs: retentionSeconds * 1000,
    maxQueues,
  });
  const heartbeat = (hostname: string) =>
    workers.handle({ type: 'worker-heartbeat', hostname, timestamp: clock.nowMs() / 1000, freq: 2 } as WorkerEvent);
  return { clock, workers, broker, queues, heartbeat };
}
const byQueue = async (c: QueueCollector) => Object.fromEntries((await c.collect()).map((s) => [s.queue, s]));

describe('queues stay reported after their last consumer is gone', () => {
  it("a dead worker's queue is still there, with 0 workers and processes and a fresh consumer count", async () => {
    const { clock, workers, broker, queues, heartbeat } = setup();
    heartbeat('w@h');
    workers.recordInspection('w@h', { queues: ['q'], processes: 4 });
    expect(await byQueue(queues)).toMatchObject({ q: { length: 3, consumers: 1, workers: 1, processes: 4 }, configured: { workers: 0 } });
    clock.advance(5000); // heartbeat window over: the worker is dead
    broker.depths.q = { messages: 5, consumers: 0 };
    // Within the 60 s depth cache, yet read again: who consumes the queue changed.
    expect((await byQueue(queues)).q).toEqual({
      queue: 'q',
      length: 5,
      consumers: 0,
      workers: 0,
      processes: 0,
      timeToDrain: null,
      processesNeeded: null,
      oldestMessageAge: null,
    });
    expect(broker.reads).toHaveLength(2);
  });

  it('keeps the depth cache while nothing about the consumers changed', async () => {
    const { broker, queues } = setup();
    await queues.collect();
    await queues.collect();
    expect(broker.reads).toHaveLength(1);
  });

  it('learns queues from task-sent routing, before any consumer', async () => {
    const { queues } = setup();
    queues.learn('q');
    expect((await byQueue(queues)).q).toMatchObject({ length: 3, workers: 0 });
  });

  it('forgets a learnt queue after the retention period, never a configured one; 0 = for ever', async () => {
    for (const [retention, kept] of [
      [3600, false],
      [0, true],
    ] as const) {
      const { clock, queues } = setup(retention);
      queues.learn('q');
      clock.advance(3600_000);
      expect(queues.queueNames()).toContain('q');
      clock.advance(1);
      expect(queues.queueNames().includes('q'), `retention ${retention}`).toBe(kept);
      expect(queues.queueNames()).toContain('configured');
    }
  });

  it('refuses names that may not reach the broker, and stops learning at the cap', () => {
    const { queues } = setup(3600, 2);
    for (const bad of ['with space', 'ctl\u0001', '', 'amq.gen-x']) queues.learn(bad);
    queues.learn('a');
    queues.learn('b');
    queues.learn('c');
    expect(queues.queueNames()).toEqual(['a', 'b', 'configured']);
  });
});

describe('the age of the oldest waiting message', () => {
  const collector = (oldestTaskIds: string[] | undefined, messages: number, seen: Record<string, number>) => {
    const clock = new ManualClock();
    const transport = {
      kind: 'redis',
      isConnected: () => true,
      queueDepths: async (queues: readonly string[]): Promise<QueueDepth[]> =>
        queues.map((name) => ({ name, messages, consumers: null, ...(oldestTaskIds ? { oldestTaskIds } : {}) })),
    } as unknown as BrokerTransport;
    const flow = new QueueFlow(() => clock.nowMs(), 60, 10);
    const queues = new QueueCollector(
      transport,
      new WorkerRegistry(clock, { purgeAfterSeconds: 600 }),
      clock,
      { configuredQueues: ['q'], timeoutMs: 1000, cacheMs: 0, retentionMs: 0, maxQueues: 10 },
      { flow, sentSeenAt: (id) => seen[id] },
    );
    return { clock, queues };
  };

  it('is now − when task-sent of the oldest of the priority lists arrived', async () => {
    const { clock, queues } = collector(['a', 'b'], 2, {});
    const start = clock.nowMs();
    const seen = { a: start - 5000, b: start - 12_000 };
    const c = collector(['a', 'b'], 2, seen);
    expect((await c.queues.collect())[0]).toMatchObject({ oldestMessageAge: 12 });
    // A waiting message whose task-sent was not seen: the age is not known, so not reported.
    expect((await queues.collect())[0]).toMatchObject({ oldestMessageAge: null });
  });

  it('an empty queue has age 0; a broker that cannot tell (RabbitMQ) reports none', async () => {
    expect((await collector([], 0, {}).queues.collect())[0]).toMatchObject({ oldestMessageAge: 0, timeToDrain: 0 });
    expect((await collector(undefined, 4, {}).queues.collect())[0]).toMatchObject({ oldestMessageAge: null, timeToDrain: Infinity });
  });
});
