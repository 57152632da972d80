import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { CeleryEvent } from '../../src/celery/events.js';
import { EventProcessor, type EventProcessorOptions } from '../../src/exporter/event-processor.js';
import { CeleryMetrics } from '../../src/metrics/celery-metrics.js';
import { DEFAULT_BUCKETS } from '../../src/config/metrics-schema.js';
import { InFlightTasks } from '../../src/state/in-flight-tasks.js';
import { WorkerRegistry } from '../../src/state/workers.js';
import { amqpEventFixtures } from '../support/fixtures.js';
import { metricValue, parseMetrics } from '../support/prom.js';

const T = 1_800_000_000;
const W = 'celery@w1';

function setup(options: Partial<EventProcessorOptions> = {}, capacity = 1000) {
  const clock = new ManualClock(T * 1000);
  const registry = new Registry();
  const metrics = new CeleryMetrics(registry, {
    prefix: 'celery_',
    runtimeBuckets: DEFAULT_BUCKETS,
    queueWaitBuckets: DEFAULT_BUCKETS,
    staticLabels: {},
    maxTaskSeries: 10_000,
    overflowValue: 'other',
  });
  const workers = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
  const tasks = new InFlightTasks(capacity);
  const processor = new EventProcessor(clock, workers, tasks, metrics, {
    defaultQueue: 'celery',
    taskSentHostname: 'generic',
    maxTaskNames: 100,
    maxHostnames: 100,
    maxQueues: 100,
    overflowValue: 'other',
    ...options,
  });
  const send = (...events: Array<Record<string, unknown> & { type: string }>) => {
    for (const e of events) processor.handle({ hostname: W, timestamp: T, ...e } as unknown as CeleryEvent);
  };
  const read = async () => parseMetrics((await registry.metrics()) + [...metrics.taskSeries.render(64)].join(''));
  return { clock, registry, metrics, workers, tasks, processor, send, read };
}

describe('task events become celery-exporter metrics', () => {
  it('counts the captured fixtures once each, with names and exceptions from earlier events', async () => {
    const { processor, read, clock } = setup();
    for (const fx of Object.values(amqpEventFixtures())) {
      processor.onEvents({
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        body: Buffer.from(fx.body_raw),
        routingKey: fx.routing_key,
      });
    }
    // The capture's client sent task-sent for some tasks: the others' events wait for theirs a moment.
    clock.advance(2000);
    processor.flushHeld();
    const m = await read();
    // The batch fixture repeats events captured on their own too: those are duplicates, nothing else.
    expect([...processor.counts.drops.keys()].filter((r) => r !== 'duplicate')).toEqual([]);
    expect(metricValue(m, 'celery_task_failed_total', { exception: 'ValueError' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(m, 'celery_task_retried_total')).toBe(1);
    expect(metricValue(m, 'celery_task_rejected_total')).toBe(1);
    expect(metricValue(m, 'celery_task_revoked_total')).toBe(3);
  });

  it('a full lifecycle: sent → received → started → succeeded, with queue wait and runtime', async () => {
    const { send, read } = setup();
    send(
      { type: 'task-sent', uuid: 'u1', name: 'tasks.add', queue: 'images', hostname: 'gen123@client', timestamp: T, retries: 0 },
      { type: 'task-received', uuid: 'u1', name: 'tasks.add', timestamp: T + 1, retries: 0 },
      { type: 'task-started', uuid: 'u1', timestamp: T + 2.5 },
      { type: 'task-succeeded', uuid: 'u1', timestamp: T + 3, runtime: 0.3 },
    );
    const m = await read();
    const labels = { name: 'tasks.add', hostname: W, queue_name: 'images' };
    expect(metricValue(m, 'celery_task_sent_total', { name: 'tasks.add', hostname: 'generic', queue_name: 'images' })).toBe(1);
    for (const c of ['received', 'started', 'succeeded']) expect(metricValue(m, `celery_task_${c}_total`, labels)).toBe(1);
    expect(metricValue(m, 'celery_task_runtime_count', labels)).toBe(1);
    expect(metricValue(m, 'celery_task_runtime_sum', labels)).toBeCloseTo(0.3);
    expect(metricValue(m, 'celery_task_queue_wait_time_sum', labels)).toBeCloseTo(2.5);
  });

  it('task-sent series exist only under the client label, in every task_sent_hostname mode', async () => {
    for (const [mode, client] of [
      ['generic', 'generic'],
      ['host', 'client'],
      ['full', 'gen123@client'],
    ] as const) {
      const { send, read } = setup({ taskSentHostname: mode });
      send(
        { type: 'task-sent', uuid: 'u1', name: 't', queue: 'q', hostname: 'gen123@client', retries: 0 },
        { type: 'task-received', uuid: 'u1', name: 't', retries: 0 },
        { type: 'task-succeeded', uuid: 'u1', runtime: 0.1 },
      );
      const m = await read();
      const sent = m.filter((x) => x.name === 'celery_task_sent_total').map((x) => `${x.labels.hostname} ${x.value}`);
      expect(sent, mode).toEqual([`${client} 1`]);
      expect(metricValue(m, 'celery_task_revoked_total', { hostname: W }), mode).toBe(0);
    }
  });

  it('queue wait starts at the ETA, and clock skew never makes it negative', async () => {
    const { send, read } = setup();
    send(
      { type: 'task-sent', uuid: 'eta', name: 't', queue: 'q', timestamp: T, eta: new Date((T + 10) * 1000).toISOString(), retries: 0 },
      { type: 'task-started', uuid: 'eta', timestamp: T + 12 },
      { type: 'task-sent', uuid: 'skew', name: 't', queue: 'q', timestamp: T + 100, retries: 0 },
      { type: 'task-started', uuid: 'skew', timestamp: T + 50 },
    );
    const m = await read();
    expect(metricValue(m, 'celery_task_queue_wait_time_count')).toBe(2);
    expect(metricValue(m, 'celery_task_queue_wait_time_sum')).toBeCloseTo(2);
  });

  it('queue wait is observed once even when task-sent arrives after task-started', async () => {
    const { send, read } = setup();
    send(
      { type: 'task-received', uuid: 'late', name: 't', timestamp: T + 1, retries: 0 },
      { type: 'task-started', uuid: 'late', timestamp: T + 3 },
      { type: 'task-sent', uuid: 'late', name: 't', queue: 'q', hostname: 'gen1@c', timestamp: T, retries: 0 },
      { type: 'task-sent', uuid: 'late', name: 't', queue: 'q', hostname: 'gen1@c', timestamp: T, retries: 0 },
    );
    const m = await read();
    expect(metricValue(m, 'celery_task_queue_wait_time_count', { hostname: W })).toBe(1);
    expect(metricValue(m, 'celery_task_queue_wait_time_sum')).toBeCloseTo(3);
  });

  it('replayed events count once; succeeded before started counts both once, no negatives', async () => {
    const { send, read, processor } = setup();
    const received = { type: 'task-received', uuid: 'u', name: 't', retries: 0 };
    send(
      received,
      received,
      { type: 'task-succeeded', uuid: 'u', runtime: 1 },
      { type: 'task-started', uuid: 'u' },
      { type: 'task-succeeded', uuid: 'u', runtime: 1 },
      { type: 'task-started', uuid: 'u' },
    );
    const m = await read();
    for (const c of ['received', 'started', 'succeeded']) expect(metricValue(m, `celery_task_${c}_total`)).toBe(1);
    expect(metricValue(m, 'celery_task_runtime_count')).toBe(1);
    expect(processor.counts.drops.get('duplicate')).toBe(3);
  });

  it('a retry is a new attempt: received and started count again, stale replays do not', async () => {
    const { send, read } = setup();
    send(
      { type: 'task-received', uuid: 'r', name: 'tasks.retry_once', retries: 0 },
      { type: 'task-started', uuid: 'r' },
      { type: 'task-retried', uuid: 'r', exception: "KeyError('again')" },
      { type: 'task-received', uuid: 'r', name: 'tasks.retry_once', retries: 1 },
      { type: 'task-received', uuid: 'r', name: 'tasks.retry_once', retries: 0 },
      { type: 'task-started', uuid: 'r' },
      { type: 'task-succeeded', uuid: 'r', runtime: 0.01 },
    );
    const m = await read();
    const labels = { name: 'tasks.retry_once' };
    expect(metricValue(m, 'celery_task_received_total', labels)).toBe(2);
    expect(metricValue(m, 'celery_task_started_total', labels)).toBe(2);
    expect(metricValue(m, 'celery_task_retried_total', labels)).toBe(1);
    expect(metricValue(m, 'celery_task_succeeded_total', labels)).toBe(1);
  });

  it('a task-sent that arrives after the worker already retried the task is still counted, once', async () => {
    const { send, read, processor } = setup();
    send(
      { type: 'task-received', uuid: 'r', name: 't', retries: 0 },
      { type: 'task-started', uuid: 'r' },
      { type: 'task-retried', uuid: 'r', exception: "KeyError('again')" },
      { type: 'task-received', uuid: 'r', name: 't', retries: 1 },
      { type: 'task-sent', uuid: 'r', name: 't', queue: 'q', hostname: 'gen1@c', retries: 0 }, // late, from the client
      { type: 'task-sent', uuid: 'r', name: 't', queue: 'q', hostname: 'gen1@c', retries: 0 }, // replayed
      { type: 'task-sent', uuid: 'r', name: 't', queue: 'q', hostname: 'gen2@w', retries: 1 }, // the worker's republish
    );
    expect(metricValue(await read(), 'celery_task_sent_total', { name: 't' })).toBe(2);
    expect(processor.counts.drops.get('duplicate')).toBe(1);
  });

  it('failures are labelled with the exception class name', async () => {
    const { send, read } = setup();
    send(
      { type: 'task-received', uuid: 'f1', name: 'tasks.fail', retries: 0 },
      { type: 'task-failed', uuid: 'f1', exception: "ValueError('boom')" },
      { type: 'task-received', uuid: 'f2', name: 'tasks.fail_custom', retries: 0 },
      { type: 'task-failed', uuid: 'f2', exception: "QuotaExceeded('over')" },
    );
    const m = await read();
    expect(metricValue(m, 'celery_task_failed_total', { name: 'tasks.fail', exception: 'ValueError', queue_name: 'celery' })).toBe(1);
    expect(metricValue(m, 'celery_task_failed_total', { name: 'tasks.fail_custom', exception: 'QuotaExceeded' })).toBe(1);
  });

  it("queue_name: task-sent routing first, else the worker's only queue, else the default", async () => {
    const { send, read, workers, processor, clock } = setup({ defaultQueue: 'fallback' });
    send({ type: 'worker-online', hostname: 'celery@single', freq: 2 }, { type: 'worker-online', hostname: 'celery@multi', freq: 2 });
    workers.recordInspection('celery@single', { queues: ['images'] });
    workers.recordInspection('celery@multi', { queues: ['a', 'b'] });
    send(
      { type: 'task-sent', uuid: 's', name: 't', queue: 'routed', hostname: 'gen1@c', retries: 0 },
      { type: 'task-received', uuid: 's', name: 't', hostname: 'celery@multi', retries: 0 },
      { type: 'task-received', uuid: 'x', name: 't', hostname: 'celery@single', retries: 0 },
      { type: 'task-received', uuid: 'y', name: 't', hostname: 'celery@multi', retries: 0 },
    );
    clock.advance(2000); // 'y' waits for a task-sent that never comes
    processor.flushHeld();
    const m = await read();
    expect(metricValue(m, 'celery_task_received_total', { hostname: 'celery@multi', queue_name: 'routed' })).toBe(1);
    expect(metricValue(m, 'celery_task_received_total', { hostname: 'celery@single', queue_name: 'images' })).toBe(1);
    expect(metricValue(m, 'celery_task_received_total', { hostname: 'celery@multi', queue_name: 'fallback' })).toBe(1);
  });

  it("holds a multi-queue worker's events until their task-sent arrives, when clients send task-sent", async () => {
    const { send, read, workers, processor, clock } = setup();
    send({ type: 'worker-online', hostname: 'celery@multi', freq: 2 });
    workers.recordInspection('celery@multi', { queues: ['a', 'b'] });
    send({ type: 'task-sent', uuid: 'earlier', name: 't', queue: 'a', hostname: 'gen1@c', retries: 0 }); // clients do send task-sent
    send(
      { type: 'task-received', uuid: 'late-sent', name: 't', hostname: 'celery@multi', retries: 0 },
      { type: 'task-started', uuid: 'late-sent', hostname: 'celery@multi' },
    );
    expect(metricValue(await read(), 'celery_task_received_total')).toBeUndefined();
    expect(processor.heldTasks).toBe(1);
    send({ type: 'task-sent', uuid: 'late-sent', name: 't', queue: 'b', hostname: 'gen1@c', retries: 0 });
    const m = await read();
    expect(metricValue(m, 'celery_task_received_total', { queue_name: 'b', hostname: 'celery@multi' })).toBe(1);
    expect(metricValue(m, 'celery_task_started_total', { queue_name: 'b', hostname: 'celery@multi' })).toBe(1);
    expect(metricValue(m, 'celery_task_queue_wait_time_count', { queue_name: 'b' })).toBe(1);
    expect(processor.heldTasks).toBe(0);

    // No task-sent ever comes for this one: counted after the hold, under the fallback queue.
    send({ type: 'task-received', uuid: 'never-sent', name: 't', hostname: 'celery@multi', retries: 0 });
    processor.flushHeld();
    expect(metricValue(await read(), 'celery_task_received_total', { queue_name: 'celery' })).toBeUndefined();
    clock.advance(2000);
    processor.flushHeld();
    expect(metricValue(await read(), 'celery_task_received_total', { queue_name: 'celery' })).toBe(1);
  });

  it('never holds events of single-queue workers, nor when no client sends task-sent', async () => {
    const { send, read, workers, processor } = setup();
    send({ type: 'worker-online', hostname: 'celery@multi', freq: 2 });
    workers.recordInspection('celery@multi', { queues: ['a', 'b'] });
    send({ type: 'task-received', uuid: 'x', name: 't', hostname: 'celery@multi', retries: 0 });
    expect(processor.heldTasks).toBe(0);
    expect(metricValue(await read(), 'celery_task_received_total')).toBe(1);
  });

  it('a revoke of an expired task (no received, no name) is still counted', async () => {
    const { send, read } = setup();
    send({ type: 'task-revoked', uuid: 'gone', expired: true, terminated: false });
    expect(metricValue(await read(), 'celery_task_revoked_total', { name: 'unknown' })).toBe(1);
  });

  it('cardinality caps fold a flood of task names and hostnames into the overflow value', async () => {
    const { send, read, processor } = setup({ maxTaskNames: 10, maxHostnames: 5 });
    for (let i = 0; i < 300; i++) {
      send({ type: 'task-received', uuid: `u${i}`, name: `tasks.t${i}`, hostname: `celery@h${i % 50}`, retries: 0 });
    }
    const m = await read();
    const series = m.filter((s) => s.name === 'celery_task_received_total');
    expect(series.length).toBeLessThanOrEqual(11 * 6);
    expect(metricValue(m, 'celery_task_received_total')).toBe(300);
    expect(metricValue(m, 'celery_task_received_total', { name: 'other', hostname: 'other' })).toBeGreaterThan(200);
    expect(processor.names.overflowed).toBeGreaterThan(0);
  });

  it('the task tracker stays within its bound under a flood of uuids', () => {
    const { send, tasks } = setup({}, 500);
    for (let i = 0; i < 5000; i++) send({ type: 'task-received', uuid: `u${i}`, name: 't', retries: 0 });
    expect(tasks.size).toBe(500);
    expect(tasks.evictions).toBe(4500);
  });

  it("removing a departed worker drops all its series and nobody else's", async () => {
    const { send, read, metrics } = setup();
    send(
      { type: 'task-received', uuid: 'a', name: 't', hostname: 'celery@gone', retries: 0 },
      { type: 'task-failed', uuid: 'a', hostname: 'celery@gone', exception: 'E()' },
      { type: 'task-received', uuid: 'b', name: 't', hostname: 'celery@stays', retries: 0 },
    );
    metrics.removeHostname('celery@gone');
    const m = await read();
    expect(m.some((s) => s.labels.hostname === 'celery@gone')).toBe(false);
    expect(metricValue(m, 'celery_task_received_total', { hostname: 'celery@stays' })).toBe(1);
  });
});
