import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, uniqueNodename, type CeleryWorker } from '../support/celery/worker.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { kustomize } from '../support/kubernetes-manifests.js';
import { metricValue, type Sample } from '../support/prom.js';
import { finiteValues, startPrometheus, type RunningPrometheus } from '../support/prometheus.js';

/**
 * The autoscaling signals with real Celery workers and clients that send task-sent: time to
 * drain is +Inf while nothing completes and finite once a worker consumes; processes needed is
 * arrivals × mean runtime; the oldest message's age on Redis (none on RabbitMQ, which cannot
 * show a message without taking it). The KEDA overlay's trigger queries return numbers from a
 * real Prometheus scraping the service.
 */
describe.each<'amqp' | 'redis'>(['amqp', 'redis'])('queue signals on %s', (kind) => {
  const QUEUE = 'signals';
  let broker: BrokerUnderTest;
  let exporter: RunningExporter;
  let worker: CeleryWorker | undefined;
  let prometheus: RunningPrometheus | undefined;
  let sentAt = 0;

  beforeAll(async () => {
    broker = await isolatedBroker(kind, 'signals');
    exporter = await startExporter([
      ...broker.exporterArgs,
      '--metrics-rate-window-seconds',
      '20',
      '--metrics-queue-length-cache-seconds',
      '0',
      '--metrics-inspect-interval-seconds',
      '2',
    ]);
    await waitFor('exporter ready', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    prometheus = await startPrometheus({ targets: [{ job: 'celery-autopilot', url: `${exporter.url}/metrics` }] });
  });

  afterAll(async () => {
    await prometheus?.stop();
    await worker?.stop();
    await exporter?.stop();
    await broker?.cleanup();
  });

  const signal = (samples: Sample[], name: string) => metricValue(samples, name, { queue_name: QUEUE });

  it('a backlog nobody consumes: time to drain +Inf; its oldest message ages (Redis only)', async () => {
    sentAt = Date.now();
    await sendTasks(
      { ...broker.celery, sendSentEvent: true },
      Array.from({ length: 30 }, () => ({ name: 'tasks.sleep', args: [0.2], queue: QUEUE })),
    );
    const samples = await waitFor(
      'the queue reported with its backlog and an age of at least 2 s (Redis)',
      async () => {
        const s = await exporter.scrape();
        if (signal(s, 'celery_queue_length') !== 30) return undefined;
        if (kind === 'redis' && (signal(s, 'celery_queue_oldest_message_age_seconds') ?? 0) < 2) return undefined;
        return s;
      },
      30_000,
    );
    expect(signal(samples, 'celery_queue_time_to_drain_seconds')).toBe(Infinity);
    const age = signal(samples, 'celery_queue_oldest_message_age_seconds');
    if (kind === 'redis') expect(age).toBeLessThanOrEqual((Date.now() - sentAt) / 1000 + 1);
    else expect(age).toBeUndefined();
    // No task has run: no runtime, no Little's-law figure yet.
    expect(signal(samples, 'celery_queue_processes_needed')).toBeUndefined();
  });

  it('a worker drains it: finite time to drain, processes needed = arrivals × mean runtime, and the queue empty at age 0', async () => {
    worker = await startWorker({ ...broker.celery, nodename: uniqueNodename('signals'), queues: [QUEUE], concurrency: 2 });
    const during = await waitFor(
      'completions counted while messages still wait',
      async () => {
        const s = await exporter.scrape();
        const drain = signal(s, 'celery_queue_time_to_drain_seconds');
        return drain !== undefined && Number.isFinite(drain) && (signal(s, 'celery_queue_length') ?? 0) > 0 ? s : undefined;
      },
      30_000,
      100,
    );
    const length = signal(during, 'celery_queue_length')!;
    const drain = signal(during, 'celery_queue_time_to_drain_seconds')!;
    // length ÷ completion rate: at most 30 completions in a 20 s window, at least one.
    expect(drain).toBeGreaterThanOrEqual(length / 30 - 1e-9);
    expect(drain).toBeLessThanOrEqual(length * 20);
    const done = await waitFor(
      'the queue drained',
      async () => {
        const s = await exporter.scrape();
        return signal(s, 'celery_queue_length') === 0 && signal(s, 'celery_queue_processes_needed') !== undefined ? s : undefined;
      },
      30_000,
    );
    expect(signal(done, 'celery_queue_time_to_drain_seconds')).toBe(0);
    if (kind === 'redis') expect(signal(done, 'celery_queue_oldest_message_age_seconds')).toBe(0);
    // 30 arrivals in the 20 s window, each 0.2 s: 30 / span × ~0.2 with span ≤ 20 s.
    const needed = signal(done, 'celery_queue_processes_needed')!;
    expect(needed).toBeGreaterThanOrEqual((30 / 20) * 0.2 * 0.9);
    expect(needed).toBeLessThanOrEqual(30 * 0.5);
  });

  it("the KEDA overlay's trigger queries return numbers from Prometheus", async () => {
    const objects = await kustomize('deploy/kubernetes/overlays/keda');
    const so = objects.find((o) => o.kind === 'ScaledObject') as unknown as {
      spec: { triggers: Array<{ name: string; metadata: { query: string } }> };
    };
    await waitFor(
      'Prometheus to have every signal of the queue',
      async () => {
        for (const t of so.spec.triggers) {
          const expr = t.metadata.query.replaceAll('queue_name="celery"', `queue_name="${QUEUE}"`);
          if (finiteValues(await prometheus!.query(expr)).length !== 1) return undefined;
        }
        return true;
      },
      30_000,
      500,
    );
  });
});
