import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks, celeryControl } from './celery/client.js';
import { startWorker, type CeleryWorker, type WorkerOptions } from './celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import { isolatedBroker, type BrokerUnderTest } from './exporter-scenarios.js';
import { metricValue, type Sample } from './prom.js';
import { alertRulesWith, startPrometheus, type RunningPrometheus } from './prometheus.js';

/**
 * Names promtool's linter flags that stay on purpose: prom-client's default gauges carry a
 * `_total` suffix (the standard Node.js dashboards read those names), and celery-exporter's
 * per-queue gauges end in `_count` (its dashboards and alerts read them).
 * Anything else promtool reports is a failure.
 */
const PROMTOOL_KNOWN = [
  ...['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'].map(
    (m) => `${m} non-counter metrics should not have "_total" suffix`,
  ),
  ...['celery_active_process_count', 'celery_active_worker_count', 'celery_active_consumer_count'].map(
    (m) => `${m} non-histogram and non-summary metrics should not have "_count" suffix`,
  ),
];

/** `promtool check metrics` on an exposition: its exit code and every line it printed. */
function promtoolCheck(text: string): Promise<{ code: number | null; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.PROMTOOL_BIN ?? 'promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({
        code,
        lines: out
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l !== ''),
      }),
    );
    child.stdin.end(text);
  });
}

const node = (n: string) => `${n}-${randomUUID().slice(0, 6)}@autopilot-test`;

/** One exporter on one isolated broker namespace, with its workers and a scrape-until helper. */
class Rig {
  samples: Sample[] = [];
  readonly workers: CeleryWorker[] = [];
  constructor(
    readonly broker: BrokerUnderTest,
    readonly exporter: RunningExporter,
  ) {}

  static async start(kind: 'amqp' | 'redis', suite: string, args: string[]): Promise<Rig> {
    const broker = await isolatedBroker(kind, suite);
    const exporter = await startExporter([...broker.exporterArgs, '--metrics-inspect-interval-seconds', '2', ...args]);
    await waitFor('exporter ready', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    return new Rig(broker, exporter);
  }

  async worker(opts: Omit<WorkerOptions, 'brokerUrl' | 'transportOptions'>): Promise<CeleryWorker> {
    const w = await startWorker({
      brokerUrl: this.broker.celery.brokerUrl,
      transportOptions: this.broker.celery.transportOptions,
      ...opts,
    });
    this.workers.push(w);
    return w;
  }

  value(name: string, labels: Record<string, string> = {}): number | undefined {
    return metricValue(this.samples, name, labels);
  }

  /** Scrapes until `condition` holds; on timeout the error shows the Celery series scraped last. */
  until(what: string, condition: () => boolean, timeoutMs = 40_000): Promise<true> {
    return waitFor(
      what,
      async () => {
        this.samples = await this.exporter.scrape();
        return condition() ? true : undefined;
      },
      timeoutMs,
      250,
      () =>
        this.samples
          .filter((s) => /^celery_(task_|worker_up|queue_length|active_|autopilot_workers_without)/.test(s.name))
          .map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`)
          .join('\n') + `\nworker log tails:\n${this.workers.map((w) => w.logs().slice(-1200)).join('\n---\n')}`,
    );
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.stop()));
    await this.exporter.stop();
    await this.broker.cleanup();
  }
}

/**
 * Fidelity to celery-exporter on one broker, with real Celery 5.2.6 workers: a queue outlives its
 * SIGKILLed worker (and real Prometheus fires the shipped CeleryQueueNoWorkers), counters start
 * at zero so increase() sees the first revocation, and a worker started without -E is counted
 * exactly once enable_events reaches it.
 */
export function describeExporterFidelity(kind: 'amqp' | 'redis'): void {
  describe(`exporter fidelity on ${kind} with real Celery workers`, () => {
    let rig: Rig;
    let prometheus: RunningPrometheus;
    // The shipped rules select the exporter's own job (alertmanager/celery-alerts.rules.yml).
    const JOB = 'celery-autopilot';

    beforeAll(async () => {
      rig = await Rig.start(kind, 'fidelity', [
        // A depth cache longer than the heartbeat window: the per-queue figures must still follow
        // celery_worker_up in the same scrape.
        '--metrics-queue-length-cache-seconds',
        '10',
        // The dead worker's own series go quickly; its queue must stay.
        '--metrics-purge-offline-worker-seconds',
        '3',
        '--events-enable-events-interval-seconds',
        '2',
      ]);
      prometheus = await startPrometheus({
        targets: [{ job: JOB, url: `${rig.exporter.url}/metrics` }],
        rules: [await alertRulesWith({ CeleryQueueNoWorkers: { for: '3s' } })],
      });
    });

    afterAll(async () => {
      await prometheus?.stop();
      await rig?.stop();
    });

    it('a queue whose only worker was SIGKILLed stays reported with 0 workers while tasks keep arriving, and CeleryQueueNoWorkers fires', async () => {
      const victim = await rig.worker({ nodename: node('victim'), queues: ['nq'], pool: 'solo' });
      await rig.until('victim consuming nq', () => rig.value('celery_active_worker_count', { queue_name: 'nq' }) === 1);
      expect(rig.value('celery_active_process_count', { queue_name: 'nq' })).toBe(1);
      victim.kill('SIGKILL');
      await victim.exited;
      const client = { ...rig.broker.celery, sendSentEvent: true };
      await sendTasks(
        client,
        [1, 2, 3].map((i) => ({ name: 'tasks.add', args: [i, i], queue: 'nq' })),
      );
      // One scrape shows a dead worker and a queue nobody drains, consistently.
      const consistent = () =>
        rig.value('celery_worker_up', { hostname: victim.nodename }) !== 1 &&
        rig.value('celery_active_worker_count', { queue_name: 'nq' }) === 0 &&
        rig.value('celery_active_process_count', { queue_name: 'nq' }) === 0 &&
        (kind === 'redis' || rig.value('celery_active_consumer_count', { queue_name: 'nq' }) === 0);
      await rig.until('nq: 3 waiting, no worker', () => consistent() && rig.value('celery_queue_length', { queue_name: 'nq' }) === 3);
      await sendTasks(
        client,
        [4, 5].map((i) => ({ name: 'tasks.add', args: [i, i], queue: 'nq' })),
      );
      await rig.until('nq: 5 waiting, still no worker', () => consistent() && rig.value('celery_queue_length', { queue_name: 'nq' }) === 5);
      // The worker's own series are purged (3 s); the queue it consumed is not.
      await rig.until(
        'victim purged, nq still reported',
        () =>
          !rig.samples.some((s) => s.labels.hostname === victim.nodename) && rig.value('celery_queue_length', { queue_name: 'nq' }) === 5,
      );
      expect(rig.value('celery_active_worker_count', { queue_name: 'nq' })).toBe(0);

      let alerts = '';
      await waitFor(
        'Prometheus to fire CeleryQueueNoWorkers for nq',
        async () => {
          const data = await prometheus.query('ALERTS{alertname="CeleryQueueNoWorkers", alertstate="firing"}');
          const result = data.resultType === 'vector' ? data.result : [];
          alerts = JSON.stringify(result.map((r) => r.metric));
          return result.some((r) => r.metric.queue_name === 'nq') ? true : undefined;
        },
        60_000,
        500,
        () => alerts,
      );
    });

    it('a queue named only by task-sent routing is reported before any worker consumes it', async () => {
      await sendTasks({ ...rig.broker.celery, sendSentEvent: true }, [
        { name: 'tasks.noop', queue: 'routed_only' },
        { name: 'tasks.noop', queue: 'routed_only' },
      ]);
      await rig.until(
        'routed_only: 2 waiting, 0 workers',
        () =>
          rig.value('celery_queue_length', { queue_name: 'routed_only' }) === 2 &&
          rig.value('celery_active_worker_count', { queue_name: 'routed_only' }) === 0,
      );
    });

    it('counters start at 0, so Prometheus sees the first revocation of a series as an increase', async () => {
      const w = await rig.worker({ nodename: node('zero'), queues: ['zq'], pool: 'solo' });
      await rig.until('zero worker consuming zq', () => rig.value('celery_active_worker_count', { queue_name: 'zq' }) === 1);
      await sendTasks(rig.broker.celery, [{ name: 'tasks.add', args: [1, 1], queue: 'zq' }]);
      const labels = { name: 'tasks.add', hostname: w.nodename, queue_name: 'zq' };
      await rig.until('tasks.add succeeded once', () => rig.value('celery_task_succeeded_total', labels) === 1);
      for (const family of ['revoked', 'rejected', 'retried']) expect(rig.value(`celery_task_${family}_total`, labels), family).toBe(0);
      expect(rig.value('celery_task_failed_total', { ...labels, exception: '' })).toBe(0);
      const sel = `job="${JOB}",name="tasks.add",hostname="${w.nodename}"`;
      await waitFor(
        'Prometheus to hold the zero revoked series',
        async () => {
          const d = await prometheus.query(`celery_task_revoked_total{${sel}}`);
          return d.resultType === 'vector' && d.result.length === 1 ? true : undefined;
        },
        30_000,
        500,
      );
      // Revoked while waiting for its countdown: the series moves 0 → 1.
      const id = randomUUID();
      await sendTasks(rig.broker.celery, [{ name: 'tasks.add', args: [2, 2], queue: 'zq', countdown: 5, taskId: id }]);
      await rig.until('the countdown task received', () => rig.value('celery_task_received_total', labels) === 2);
      await celeryControl(rig.broker.celery, 'revoke', { task_id: id }, [w.nodename]);
      await rig.until('revoked once', () => rig.value('celery_task_revoked_total', labels) === 1);
      await waitFor(
        'increase() to see the first revocation',
        async () => {
          const d = await prometheus.query(`sum(increase(celery_task_revoked_total{${sel}}[5m]))`);
          return d.resultType === 'vector' && d.result.length === 1 && Number(d.result[0]!.value[1]) > 0 ? true : undefined;
        },
        30_000,
        500,
      );
    });

    it('a worker started without -E gets its tasks counted exactly once enable_events reaches it', async () => {
      const w = await rig.worker({ nodename: node('noe'), queues: ['noe_q'], concurrency: 1, events: false });
      const labels = { hostname: w.nodename, queue_name: 'noe_q' };
      await rig.until('noE worker up and inspected', () => rig.value('celery_active_worker_count', { queue_name: 'noe_q' }) === 1);
      // enable_events is on its way (within a tick of the first heartbeat, then every 2 s); a
      // probe task sent before it arrives goes uncounted, so probe until one is counted.
      await waitFor(
        'a probe task counted (task events enabled)',
        async () => {
          await sendTasks(rig.broker.celery, [{ name: 'tasks.noop', queue: 'noe_q' }]);
          rig.samples = await rig.exporter.scrape();
          return (rig.value('celery_task_succeeded_total', { ...labels, name: 'tasks.noop' }) ?? 0) >= 1 ? true : undefined;
        },
        60_000,
        1000,
      );
      await sendTasks({ ...rig.broker.celery, sendSentEvent: true }, [
        { name: 'tasks.add', args: [1, 2], queue: 'noe_q' },
        { name: 'tasks.add', args: [3, 4], queue: 'noe_q' },
        { name: 'tasks.add', args: [5, 6], queue: 'noe_q' },
        { name: 'tasks.fail', queue: 'noe_q' },
      ]);
      await rig.until(
        'the workload counted',
        () =>
          rig.value('celery_task_succeeded_total', { ...labels, name: 'tasks.add' }) === 3 &&
          rig.value('celery_task_failed_total', { ...labels, name: 'tasks.fail', exception: 'ValueError' }) === 1,
      );
      for (const family of ['received', 'started'])
        expect(rig.value(`celery_task_${family}_total`, { ...labels, name: 'tasks.add' }), family).toBe(3);
      expect(rig.value('celery_task_received_total', { ...labels, name: 'tasks.fail' })).toBe(1);
      expect(rig.value('celery_autopilot_workers_without_task_events')).toBe(0);
    });

    it('the real /metrics after all of the above passes promtool check metrics', async () => {
      const text = await (await rig.exporter.get('/metrics')).text();
      expect(text).toContain('celery_task_queue_wait_time_bucket');
      const { code, lines } = await promtoolCheck(text);
      expect(lines.filter((l) => !PROMTOOL_KNOWN.includes(l))).toEqual([]);
      // promtool exits 3 for lint findings: only the known ones above may have caused it.
      expect(lines.length === 0 ? code === 0 : code === 3).toBe(true);
    });
  });

  describe(`enable_events switched off on ${kind}`, () => {
    let rig: Rig;
    beforeAll(async () => {
      rig = await Rig.start(kind, 'fidelity-off', ['--events-enable-events', 'false']);
    });
    afterAll(async () => {
      await rig?.stop();
    });

    it('a worker without -E that processes tasks is counted as sending no task events', async () => {
      const w = await rig.worker({ nodename: node('silent'), queues: ['silent_q'], pool: 'solo', events: false });
      await rig.until('silent worker inspected', () => rig.value('celery_active_worker_count', { queue_name: 'silent_q' }) === 1);
      // Its heartbeats report the processed tasks; none of its task events ever come. A task is
      // sent each round, so one publish lost on a loaded broker cannot fail the test.
      await waitFor(
        'the silent worker counted',
        async () => {
          await sendTasks(rig.broker.celery, [{ name: 'tasks.noop', queue: 'silent_q' }]);
          rig.samples = await rig.exporter.scrape();
          return rig.value('celery_autopilot_workers_without_task_events') === 1 ? true : undefined;
        },
        60_000,
        1000,
        () => w.logs().slice(-1500),
      );
      expect(rig.samples.some((s) => s.name.startsWith('celery_task_') && s.labels.hostname === w.nodename)).toBe(false);
    });
  });
}
