import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks, celeryControl, type CeleryTarget } from './celery/client.js';
import { startWorker, type CeleryWorker } from './celery/worker.js';
import { createVhost, redisIsolation, uniqueId } from './isolation.js';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import { metricValue, type Sample } from './prom.js';

export interface BrokerUnderTest {
  kind: 'amqp' | 'redis';
  /** Exporter flags that point it at the isolated broker namespace. */
  exporterArgs: string[];
  /** How Celery workers and clients reach the same namespace. */
  celery: CeleryTarget;
  cleanup(): Promise<void>;
}

export async function isolatedBroker(kind: 'amqp' | 'redis', suite: string): Promise<BrokerUnderTest> {
  if (kind === 'amqp') {
    const vhost = await createVhost(uniqueId(suite));
    return { kind, exporterArgs: ['--broker-url', vhost.url], celery: { brokerUrl: vhost.url }, cleanup: vhost.remove };
  }
  const iso = redisIsolation(suite);
  return {
    kind,
    exporterArgs: ['--broker-url', iso.url, '--broker-transport-options-global-keyprefix', iso.keyprefix],
    celery: { brokerUrl: iso.url, transportOptions: { global_keyprefix: iso.keyprefix } },
    cleanup: async () => undefined,
  };
}

/**
 * The exporter's proof on one broker: real Celery 5.2.6 prefork workers with -E, a client with
 * task_send_sent_event, and exact counter values for what the test sent.
 */
export function describeExporterOnRealWorkers(kind: 'amqp' | 'redis'): void {
  describe(`exporter on ${kind} with real Celery workers`, () => {
    let broker: BrokerUnderTest;
    let exporter: RunningExporter;
    let main: CeleryWorker;
    const workers: CeleryWorker[] = [];
    const node = (n: string) => `${n}-${randomUUID().slice(0, 6)}@autopilot-test`;
    let samples: Sample[] = [];
    const scrape = async () => (samples = await exporter.scrape());
    const value = (name: string, labels: Record<string, string> = {}) => metricValue(samples, name, labels);
    /** The task series seen so far, for failure messages. */
    const taskSeries = () =>
      samples
        .filter((s) => /^celery_(task_[a-z]+_total|worker_up|autopilot_events_[a-z]+_total|autopilot_broker_[a-z_]+)$/.test(s.name))
        .map(
          (s) =>
            `${s.name}{${Object.entries(s.labels)
              .filter(([k]) => k !== 'queue_name')
              .map(([k, v]) => `${k}=${v}`)
              .join(',')}} ${s.value}`,
        )
        .join('\n');

    /** Scrapes until `condition` holds; on timeout the error lists what the exporter showed. */
    const until = (what: string, condition: () => boolean, timeoutMs = 30_000, everyMs = 250) =>
      waitFor(
        what,
        async () => {
          await scrape();
          return condition() ? true : undefined;
        },
        timeoutMs,
        everyMs,
        () => `\n${taskSeries()}\nmain worker log tail:\n${main?.logs().slice(-2500) ?? ''}`,
      );

    beforeAll(async () => {
      broker = await isolatedBroker(kind, 'exporter');
      exporter = await startExporter([
        ...broker.exporterArgs,
        '--metrics-queues',
        'idle',
        '--metrics-inspect-interval-seconds',
        '2',
        '--metrics-purge-offline-worker-seconds',
        '4',
        '--metrics-queue-length-cache-seconds',
        '0',
      ]);
      await waitFor('exporter ready', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
      main = await startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: node('main'),
        queues: ['work'],
        concurrency: 2,
      });
      workers.push(main);
      await until(
        'main worker up and inspected',
        () =>
          value('celery_worker_up', { hostname: main.nodename }) === 1 && value('celery_active_worker_count', { queue_name: 'work' }) === 1,
      );
    });

    afterAll(async () => {
      await Promise.allSettled(workers.map((w) => w.stop()));
      await exporter?.stop();
      await broker?.cleanup();
    });

    it('counts every task state exactly, with exception labels and runtime histograms', async () => {
      const client = { ...broker.celery, sendSentEvent: true };
      const etaRevoked = randomUUID();
      const terminated = randomUUID();
      await sendTasks(client, [
        { name: 'tasks.add', args: [1, 2], queue: 'work' },
        { name: 'tasks.add', args: [3, 4], queue: 'work' },
        { name: 'tasks.add', args: [5, 6], queue: 'work' },
        { name: 'tasks.fail', queue: 'work' },
        { name: 'tasks.fail', queue: 'work' },
        { name: 'tasks.fail_custom', queue: 'work' },
        { name: 'tasks.retry_once', queue: 'work' },
        { name: 'tasks.reject_late', queue: 'work' },
        { name: 'tasks.sleep', args: [1.2], queue: 'work' },
        // Expires while waiting for its ETA: task-received, then task-revoked(expired). (One that
        // has expired before delivery never reaches a worker on RabbitMQ: Celery turns `expires`
        // into the message TTL.)
        { name: 'tasks.noop', queue: 'work', countdown: 3, expires: 1 },
        // Revoked while waiting for its ETA.
        { name: 'tasks.add', args: [0, 0], queue: 'work', countdown: 4, taskId: etaRevoked },
        // Revoked with terminate while running.
        { name: 'tasks.sleep', args: [60], queue: 'work', taskId: terminated },
      ]);
      await until(
        'the ETA task and the long task to be received/started',
        () =>
          value('celery_task_received_total', { name: 'tasks.add' }) === 4 &&
          value('celery_task_started_total', { name: 'tasks.sleep' }) === 2,
      );
      await celeryControl(broker.celery, 'revoke', { task_id: etaRevoked }, [main.nodename]);
      await celeryControl(broker.celery, 'revoke', { task_id: terminated, terminate: true, signal: 'SIGTERM' }, [main.nodename]);

      await until(
        'all outcomes',
        () =>
          value('celery_task_revoked_total') === 3 && value('celery_task_succeeded_total') === 5 && value('celery_task_failed_total') === 3,
        40_000,
      );
      await new Promise((r) => setTimeout(r, 1500)); // nothing further may arrive
      await scrape();

      const w = { hostname: main.nodename, queue_name: 'work' };
      const expectCounts = (metric: string, byName: Record<string, number>) => {
        for (const [name, n] of Object.entries(byName)) expect(value(metric, { ...w, name }), `${metric}{name="${name}"}`).toBe(n);
        expect(value(metric), `sum of ${metric}`).toBe(Object.values(byName).reduce((a, b) => a + b, 0));
      };
      for (const [name, n] of Object.entries({
        'tasks.add': 4,
        'tasks.fail': 2,
        'tasks.fail_custom': 1,
        'tasks.retry_once': 1,
        'tasks.reject_late': 1,
        'tasks.sleep': 2,
        'tasks.noop': 1,
      })) {
        expect(value('celery_task_sent_total', { name, hostname: 'generic', queue_name: 'work' }), `sent ${name}`).toBe(n);
      }
      expectCounts('celery_task_received_total', {
        'tasks.add': 4,
        'tasks.fail': 2,
        'tasks.fail_custom': 1,
        'tasks.retry_once': 2,
        'tasks.reject_late': 1,
        'tasks.sleep': 2,
        'tasks.noop': 1,
      });
      expectCounts('celery_task_started_total', {
        'tasks.add': 3,
        'tasks.fail': 2,
        'tasks.fail_custom': 1,
        'tasks.retry_once': 2,
        'tasks.reject_late': 1,
        'tasks.sleep': 2,
      });
      expectCounts('celery_task_succeeded_total', { 'tasks.add': 3, 'tasks.retry_once': 1, 'tasks.sleep': 1 });
      expectCounts('celery_task_retried_total', { 'tasks.retry_once': 1 });
      expectCounts('celery_task_rejected_total', { 'tasks.reject_late': 1 });
      expectCounts('celery_task_revoked_total', { 'tasks.noop': 1, 'tasks.add': 1, 'tasks.sleep': 1 });
      expect(value('celery_task_failed_total', { ...w, name: 'tasks.fail', exception: 'ValueError' })).toBe(2);
      expect(value('celery_task_failed_total', { ...w, name: 'tasks.fail_custom', exception: 'QuotaExceeded' })).toBe(1);
      expect(value('celery_task_failed_total')).toBe(3);
      expectCounts('celery_task_runtime_count', { 'tasks.add': 3, 'tasks.retry_once': 1, 'tasks.sleep': 1 });
      // sleep(1.2) lands above the 1 s bucket, the three adds below 0.25 s.
      expect(value('celery_task_runtime_bucket', { ...w, name: 'tasks.sleep', le: '1' })).toBe(0);
      expect(value('celery_task_runtime_bucket', { ...w, name: 'tasks.sleep', le: '2.5' })).toBe(1);
      expect(value('celery_task_runtime_bucket', { ...w, name: 'tasks.add', le: '0.25' })).toBe(3);
      // Queue wait needs task-sent: every started task had one.
      expect(value('celery_task_queue_wait_time_count')).toBe(11);
      expect(value('celery_worker_up', { hostname: main.nodename })).toBe(1);
      expect(value('celery_autopilot_events_dropped_total', { reason: 'bad_json' }) ?? 0).toBe(0);
    });

    it('reports queue depth including priorities, and consumers/workers/processes per queue', async () => {
      await sendTasks(
        broker.celery,
        [0, 3, 5, 9].map((priority) => ({ name: 'tasks.noop', queue: 'idle', priority })),
      );
      await until('idle queue length 4', () => value('celery_queue_length', { queue_name: 'idle' }) === 4);
      expect(value('celery_active_worker_count', { queue_name: 'work' })).toBe(1);
      expect(value('celery_active_process_count', { queue_name: 'work' })).toBe(2);
      expect(value('celery_active_worker_count', { queue_name: 'idle' })).toBe(0);
      if (kind === 'amqp') {
        expect(value('celery_active_consumer_count', { queue_name: 'work' })).toBe(1);
        expect(value('celery_active_consumer_count', { queue_name: 'idle' })).toBe(0);
      } else {
        expect(value('celery_active_consumer_count', { queue_name: 'work' })).toBeUndefined(); // Redis has no consumer count
      }
    });

    it('without task-sent, queue_name comes from the queue a single-queue worker consumes', async () => {
      const solo = await startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: node('solo'),
        queues: ['solo_q'],
        pool: 'solo',
      });
      workers.push(solo);
      await until('solo worker inspected', () => value('celery_active_worker_count', { queue_name: 'solo_q' }) === 1);
      await sendTasks(broker.celery, [{ name: 'tasks.add', args: [1, 1], queue: 'solo_q' }]);
      await until('solo task succeeded', () => value('celery_task_succeeded_total', { hostname: solo.nodename }) === 1);
      expect(value('celery_task_received_total', { hostname: solo.nodename, queue_name: 'solo_q', name: 'tasks.add' })).toBe(1);
    });

    it("a worker consuming several queues: queue_name from task-sent, even when the worker's events arrive first", async () => {
      const multi = await startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: node('multi'),
        queues: ['mq_a', 'mq_b'],
        pool: 'solo',
      });
      workers.push(multi);
      await until('multi worker inspected', () => value('celery_active_worker_count', { queue_name: 'mq_b' }) === 1);
      await sendTasks({ ...broker.celery, sendSentEvent: true }, [
        { name: 'tasks.add', args: [1, 2], queue: 'mq_b' },
        { name: 'tasks.add', args: [3, 4], queue: 'mq_a' },
        { name: 'tasks.add', args: [5, 6], queue: 'mq_b' },
      ]);
      await until('multi tasks succeeded', () => value('celery_task_succeeded_total', { hostname: multi.nodename }) === 3);
      for (const family of ['received', 'started', 'succeeded']) {
        expect(value(`celery_task_${family}_total`, { hostname: multi.nodename, queue_name: 'mq_b' }), family).toBe(2);
        expect(value(`celery_task_${family}_total`, { hostname: multi.nodename, queue_name: 'mq_a' }), family).toBe(1);
      }
    });

    it('a SIGKILLed worker goes to celery_worker_up 0 within its heartbeat window, then its series are purged', async () => {
      const victim = await startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: node('victim'),
        queues: ['victim_q'],
        pool: 'solo',
      });
      workers.push(victim);
      await until('victim up', () => value('celery_worker_up', { hostname: victim.nodename }) === 1);
      const killedAt = Date.now();
      victim.kill('SIGKILL');
      await victim.exited;
      await until('victim down', () => value('celery_worker_up', { hostname: victim.nodename }) === 0, 15_000, 100);
      // Heartbeats every 2 s, window 2 × 2 s after the last one received: well inside this bound
      // even with a slow scrape; the old behaviour (up until a 100 s timeout) would fail it.
      expect(Date.now() - killedAt).toBeLessThan(9000);
      await until('victim series purged', () => !samples.some((s) => s.labels.hostname === victim.nodename), 20_000);
      expect(value('celery_worker_up', { hostname: main.nodename })).toBe(1);
    });
  });
}
