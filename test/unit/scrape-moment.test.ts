import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { WorkerEvent } from '../../src/celery/events.js';
import { ManualClock } from '../../src/clock.js';
import { loadConfig } from '../../src/config/load.js';
import { CeleryMetrics, type ClusterSample } from '../../src/metrics/celery-metrics.js';
import { silentLogger } from '../../src/log.js';
import { Service } from '../../src/service.js';
import type { BrokerTransport, QueueDepth } from '../../src/transport/transport.js';
import { metricValue, parseMetrics, workerAndQueueFigures as figures, type Sample } from '../support/prom.js';

/**
 * One scrape, one moment: worker liveness, the per-queue worker / process / consumer
 * counts and the queue depth come from one reading, whatever order prom-client renders the
 * families in and however long the broker takes to answer the depth read. The broker is a fake
 * whose depth reads the test answers by hand; everything else is the real service.
 */
function slowBroker() {
  const reads: Array<{ queues: string[]; answer: (depths: Record<string, { messages: number; consumers: number }>) => void }> = [];
  const transport = {
    kind: 'amqp',
    isConnected: () => true,
    close: async () => undefined,
    queueDepths: (queues: readonly string[]): Promise<QueueDepth[]> =>
      new Promise((resolve) => {
        reads.push({
          queues: [...queues],
          answer: (depths) =>
            resolve(queues.map((name) => ({ name, messages: depths[name]?.messages ?? 0, consumers: depths[name]?.consumers ?? 0 }))),
        });
      }),
  } as unknown as BrokerTransport;
  return { transport, reads };
}

function setup() {
  const clock = new ManualClock();
  const broker = slowBroker();
  const { config } = loadConfig({
    argv: ['--metrics-worker-timeout-seconds', '5', '--metrics-queue-length-cache-seconds', '60'],
    env: {},
    readFile: () => '',
  });
  const service = new Service(config!, { logger: silentLogger(), clock, transport: () => broker.transport });
  /** A live worker (a heartbeat now) that consumes `queue` with `processes` pool processes. */
  const consumer = (hostname: string, queue: string, processes: number) => {
    service.processor.handle({ type: 'worker-heartbeat', hostname, timestamp: clock.nowMs() / 1000, freq: 2, active: 0 } as WorkerEvent);
    service.workers.recordInspection(hostname, { queues: [queue], processes });
  };
  /** Starts a scrape; resolves with its samples once the exposition is complete. */
  const scrape = async (): Promise<Sample[]> => {
    let text = '';
    for await (const chunk of service.metricsChunks()) text += chunk;
    return parseMetrics(text);
  };
  /** Lets pending promise callbacks run (the scrape reaches its depth read). */
  const settle = () => new Promise((r) => setImmediate(r));
  return { clock, broker, consumer, scrape, settle };
}

describe('every Celery gauge of a scrape describes one moment', () => {
  it('the first scrape after a worker died says 0 everywhere for its queue, while the broker answers slowly', async () => {
    const { clock, broker, consumer, scrape, settle } = setup();
    consumer('w@h', 'q', 4);

    const first = scrape();
    await settle();
    expect(broker.reads).toHaveLength(1);
    broker.reads[0]!.answer({ q: { messages: 2, consumers: 1 } });
    // The very first scrape already has every per-queue gauge (not only the depth).
    expect(figures(await first, 'w@h', 'q')).toEqual({ up: 1, workers: 1, processes: 4, consumers: 1, length: 2 });

    clock.advance(6000); // past the 5 s window: the worker is dead
    const second = scrape();
    await settle();
    // Who consumes q changed, so the cached read is not used: the broker is asked again.
    expect(broker.reads).toHaveLength(2);
    clock.advance(2000); // the broker takes its time
    broker.reads[1]!.answer({ q: { messages: 7, consumers: 0 } });
    expect(figures(await second, 'w@h', 'q')).toEqual({ up: 0, workers: 0, processes: 0, consumers: 0, length: 7 });
  });

  it('a worker that dies while the depth read is pending is still alive everywhere in that scrape, and dead everywhere in the next', async () => {
    const { clock, broker, consumer, scrape, settle } = setup();
    consumer('w@h', 'q', 4);
    const first = scrape();
    await settle();
    clock.advance(6000); // dies while the broker is slow to answer
    broker.reads[0]!.answer({ q: { messages: 2, consumers: 1 } });
    expect(figures(await first, 'w@h', 'q')).toEqual({ up: 1, workers: 1, processes: 4, consumers: 1, length: 2 });

    const second = scrape();
    await settle();
    broker.reads[1]!.answer({ q: { messages: 3, consumers: 0 } });
    expect(figures(await second, 'w@h', 'q')).toEqual({ up: 0, workers: 0, processes: 0, consumers: 0, length: 3 });
  });

  it('concurrent scrapes share one depth read and show the same figures', async () => {
    const { broker, consumer, scrape, settle } = setup();
    consumer('w@h', 'q', 2);
    const a = scrape();
    await settle();
    const b = scrape();
    await settle();
    expect(broker.reads).toHaveLength(1);
    broker.reads[0]!.answer({ q: { messages: 5, consumers: 1 } });
    const [ma, mb] = await Promise.all([a, b]);
    expect(figures(ma, 'w@h', 'q')).toEqual({ up: 1, workers: 1, processes: 2, consumers: 1, length: 5 });
    expect(figures(mb, 'w@h', 'q')).toEqual(figures(ma, 'w@h', 'q'));
  });
});

/** The smallest CeleryMetrics options: these tests look at the gauges a sample sets, not at series limits. */
const METRICS_OPTIONS = {
  prefix: 'celery_',
  runtimeBuckets: [1],
  queueWaitBuckets: [1],
  staticLabels: {},
  maxTaskSeries: 10,
  overflowValue: 'other',
};

describe('CeleryMetrics.prepare', () => {
  it('a sample that fails (rejects or throws) fails that scrape only: the next one samples again', async () => {
    const registry = new Registry();
    let sample: () => Promise<ClusterSample> = () => Promise.reject(new Error('rejected'));
    const metrics = new CeleryMetrics(registry, METRICS_OPTIONS, () => sample());
    await expect(metrics.prepare()).rejects.toThrow('rejected');
    sample = () => {
      throw new Error('thrown');
    };
    await expect(metrics.prepare()).rejects.toThrow('thrown');
    sample = async () => ({ workers: [{ hostname: 'w@h', up: true, active: 2 }], queues: [] });
    await metrics.prepare();
    const m = parseMetrics(await registry.metrics());
    expect(metricValue(m, 'celery_worker_up', { hostname: 'w@h' })).toBe(1);
    expect(metricValue(m, 'celery_worker_tasks_active', { hostname: 'w@h' })).toBe(2);
  });

  it('counts workers that are up with 0 pool processes in celery_workers_pool_empty (down ones and uninspected ones not)', async () => {
    const registry = new Registry();
    const metrics = new CeleryMetrics(registry, METRICS_OPTIONS, async () => ({
      workers: [
        { hostname: 'empty@h', up: true, active: 0, processes: 0 },
        { hostname: 'fine@h', up: true, active: 0, processes: 2 },
        { hostname: 'gone@h', up: false, active: 0, processes: 0 },
        { hostname: 'new@h', up: true, active: 0 },
      ],
      queues: [],
    }));
    await metrics.prepare();
    expect(metricValue(parseMetrics(await registry.metrics()), 'celery_workers_pool_empty', {})).toBe(1);
  });
});
