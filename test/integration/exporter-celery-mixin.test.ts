import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { metricValue } from '../support/prom.js';
import { REPO_ROOT, finiteValues, interpolate, startPrometheus, type QueryData, type RunningPrometheus } from '../support/prometheus.js';

/**
 * celery-mixin (celery-exporter's own dashboards) on this exporter: its 71 panel queries, run on a
 * real Prometheus scraping us while a real Celery worker runs an ordinary workload — successes,
 * failures, a retry, nothing revoked or rejected. celery-exporter shows data in all 71 there
 * because it starts every counter of a task series at 0; so must we.
 */

interface MixinQuery {
  dashboard: string;
  panel: string;
  refId: string;
  expr: string;
}
const QUERIES = (
  JSON.parse(readFileSync(path.join(REPO_ROOT, 'test/fixtures/celery-mixin/dashboard-queries.json'), 'utf8')) as { queries: MixinQuery[] }
).queries;
const JOB = 'celery-mixin';

describe('celery-mixin dashboards on a real Prometheus scraping real Celery workers', () => {
  let broker: BrokerUnderTest;
  let exporter: RunningExporter;
  let worker: CeleryWorker;
  let prometheus: RunningPrometheus;
  let workloadStart: number;

  const scalar = async (expr: string): Promise<number | undefined> => {
    const data = await prometheus.query(expr);
    return data.resultType === 'vector' && data.result.length > 0 ? Number(data.result[0]!.value[1]) : undefined;
  };

  beforeAll(async () => {
    broker = await isolatedBroker('amqp', 'mixin');
    exporter = await startExporter([...broker.exporterArgs, '--metrics-inspect-interval-seconds', '2']);
    await waitFor('exporter ready', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    [worker, prometheus] = await Promise.all([
      startWorker({
        brokerUrl: broker.celery.brokerUrl,
        nodename: `mixin-${randomUUID().slice(0, 8)}@autopilot-test`,
        queues: ['work'],
        concurrency: 2,
      }),
      startPrometheus({ targets: [{ job: JOB, url: `${exporter.url}/metrics` }] }),
    ]);
    workloadStart = Date.now() / 1000;
    const client = { ...broker.celery, sendSentEvent: true };
    const wave = (n: number) => [
      ...Array.from({ length: n }, (_, i) => ({ name: 'tasks.add', args: [i, 1], queue: 'work' })),
      { name: 'tasks.fail', queue: 'work' },
      { name: 'tasks.retry_once', queue: 'work' },
      { name: 'tasks.sleep', args: [0.3], queue: 'work' },
    ];
    // A first wave creates the series; a second moves them, so increase() has two sides.
    const sel = `job="${JOB}"`;
    // A wait that times out says which side lagged: the exporter's own count or Prometheus's.
    const seen = { prometheus: undefined as number | undefined, exporter: undefined as number | undefined };
    const succeeded = async (want: number) => {
      seen.prometheus = await scalar(`sum(celery_task_succeeded_total{${sel}})`);
      seen.exporter = metricValue(await exporter.scrape(), 'celery_task_succeeded_total');
      return seen.prometheus === want ? true : undefined;
    };
    const observed = () => `Prometheus ${seen.prometheus}, exporter ${seen.exporter}`;
    await sendTasks(client, wave(2));
    await waitFor('Prometheus to see the first wave', () => succeeded(4), 60_000, 500, observed);
    await sendTasks(client, wave(6));
    await waitFor('Prometheus to see the second wave', () => succeeded(12), 60_000, 500, observed);
    await new Promise((r) => setTimeout(r, 3000)); // a few scrapes after the last change
  });

  afterAll(async () => {
    await worker?.stop();
    await prometheus?.stop();
    await exporter?.stop();
    await broker?.cleanup();
  });

  it('every one of the 71 queries returns data', async () => {
    expect(QUERIES).toHaveLength(71);
    const end = Date.now() / 1000;
    const start = workloadStart - 5;
    // No cluster/namespace labels here: "" matches their absence, as on a plain Prometheus.
    const values = {
      cluster: '',
      namespace: '',
      job: JOB,
      queue_name: '.*',
      task: '.*',
      __rate_interval: '10s',
      __range: `${Math.ceil(end - start + 5)}s`,
    };
    const empty: string[] = [];
    for (const q of QUERIES) {
      const expr = interpolate(q.expr, values);
      let data: QueryData;
      try {
        data = await prometheus.queryRange(expr, start, end, 2);
      } catch (e) {
        empty.push(`${q.dashboard} ${q.panel}/${q.refId}: ${(e as Error).message}`);
        continue;
      }
      if (finiteValues(data).length === 0) empty.push(`${q.dashboard} ${q.panel}/${q.refId}: no data\n    ${expr.replace(/\s+/g, ' ')}`);
    }
    console.log(`celery-mixin queries with data: ${QUERIES.length - empty.length}/${QUERIES.length}`);
    expect(empty, empty.join('\n')).toEqual([]);
  });
});
