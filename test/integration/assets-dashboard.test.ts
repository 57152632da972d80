import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { metricValue } from '../support/prom.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import {
  ALERT_RULES_FILE,
  finiteValues,
  interpolate,
  loadDashboard,
  panelQueries,
  parseLabelValues,
  startPrometheus,
  variableQuery,
  type Dashboard,
  type QueryData,
  type RunningPrometheus,
} from '../support/prometheus.js';
import { amqpEventPublisher } from '../support/raw-events.js';

/**
 * The shipped Grafana dashboard and alert rules, proven the only way possible without Grafana:
 * a real Prometheus scrapes the in-process exporter while a real Celery worker runs a mixed
 * workload, and every panel query (variables substituted as Grafana would) and every alert rule
 * is run there.
 */

const JOB = 'celery-autopilot';

/**
 * Queries that return nothing here on purpose. Each is allowed to be empty only while every
 * metric it names is absent from /metrics: once the metric exists, the query must show it.
 */
const EMPTY_BY_DESIGN: Record<string, { metrics: string[]; why: string }> = {
  'Remediation decisions/A': {
    metrics: ['celery_autopilot_remediation_decisions_total'],
    why: 'no alert has been judged by a remediation rule in this test',
  },
  'Remediation suppressions by reason/A': {
    metrics: ['celery_autopilot_remediation_suppressed_total'],
    why: 'no remediation was suppressed in this test',
  },
  'Kill switch/A': {
    metrics: ['celery_autopilot_remediation_kill_switch'],
    why: 'the gauge exists only where the remediation engine is built in',
  },
  'Webhook answers/A': {
    metrics: ['celery_autopilot_remediation_webhooks_total'],
    why: 'no Alertmanager webhook was received in this test',
  },
  'Control commands/A': {
    metrics: ['celery_autopilot_control_commands_total'],
    why: 'no control command was sent through the control API or remediation in this test',
  },
  'Tracked state and cardinality caps/C': { metrics: ['celery_autopilot_label_overflow_total'], why: 'no cardinality cap was reached' },
};

describe('shipped dashboard and alert rules on a real Prometheus scraping real Celery workers', () => {
  let broker: BrokerUnderTest;
  let exporter: RunningExporter;
  let worker: CeleryWorker;
  let prometheus: RunningPrometheus;
  let dashboard: Dashboard;
  let workloadStart: number;
  const nodename = `assets-${randomUUID().slice(0, 8)}@autopilot-test`;
  const tasks = ['tasks.add', 'tasks.fail', 'tasks.fail_custom', 'tasks.retry_once', 'tasks.reject_late', 'tasks.sleep', 'tasks.noop'];

  /** One number from an instant query, or undefined when it has no sample. */
  const scalar = async (expr: string): Promise<number | undefined> => {
    const data = await prometheus.query(expr);
    return data.resultType === 'vector' && data.result.length > 0 ? Number(data.result[0]!.value[1]) : undefined;
  };

  beforeAll(async () => {
    dashboard = await loadDashboard();
    broker = await isolatedBroker('amqp', 'assets');
    exporter = await startExporter([
      ...broker.exporterArgs,
      // A queue nobody consumes: the backlog panels and CeleryQueueNoWorkers have something to show.
      '--metrics-queues',
      'backlog',
      '--metrics-inspect-interval-seconds',
      '2',
      '--metrics-queue-length-cache-seconds',
      '0',
    ]);
    await waitFor('exporter ready', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    const rules = await readFile(ALERT_RULES_FILE, 'utf8');
    [worker, prometheus] = await Promise.all([
      startWorker({ brokerUrl: broker.celery.brokerUrl, nodename, queues: ['work'], concurrency: 2 }),
      startPrometheus({ targets: [{ job: JOB, url: `${exporter.url}/metrics` }], rules: [rules] }),
    ]);
    // The first wave must create the series the dashboard filters on (queue_name="work"): until
    // an inspection has shown what the worker consumes, a worker event that beats its task-sent
    // to the exporter is counted under the default queue, and the "work" series would then be
    // born in the second wave with every count already in its first sample (no increase to see).
    await waitFor(
      'the exporter to know the worker consumes "work"',
      async () => (metricValue(await exporter.scrape(), 'celery_active_worker_count', { queue_name: 'work' }) === 1 ? true : undefined),
      30_000,
    );
    workloadStart = Date.now() / 1000;
    const client = { ...broker.celery, sendSentEvent: true };
    const sel = `job="${JOB}"`;
    // Prometheus sees no increase in a series whose first sample already holds every count, and
    // neither would Grafana: a first wave creates the series, the mixed workload then moves them.
    await sendTasks(
      client,
      ['tasks.add', 'tasks.fail', 'tasks.fail_custom', 'tasks.noop'].map((name) => ({
        name,
        args: name === 'tasks.add' ? [0, 1] : [],
        queue: 'work',
      })),
    );
    // What the exporter itself shows, for the failure message of the wait below.
    let lastWave = '';
    let exporterText = '';
    const exporterSeries = () => exporterText.split('\n').filter((l) => /^celery_task_(succeeded|failed)_total/.test(l));
    const refreshExporter = setInterval(
      () =>
        void exporter
          .get('/metrics')
          .then(async (r) => (exporterText = await r.text()))
          .catch(() => undefined),
      1000,
    );
    refreshExporter.unref();
    await waitFor(
      'Prometheus to have scraped the first wave',
      async () => {
        const [failed, succeeded] = await Promise.all([
          scalar(`sum(celery_task_failed_total{${sel}})`),
          scalar(`sum(celery_task_succeeded_total{${sel}})`),
        ]);
        lastWave = `Prometheus: failed=${failed} succeeded=${succeeded}`;
        return failed === 2 && succeeded === 2 ? true : undefined;
      },
      60_000,
      250,
      () => `${lastWave}\nexporter: ${exporterSeries().join(', ')}\nworker log tail:\n${worker?.logs().slice(-1500) ?? ''}`,
    );
    clearInterval(refreshExporter);
    await sendTasks(client, [
      ...Array.from({ length: 10 }, (_, i) => ({ name: 'tasks.add', args: [i, i], queue: 'work' })),
      ...Array.from({ length: 4 }, () => ({ name: 'tasks.fail', queue: 'work' })),
      ...Array.from({ length: 2 }, () => ({ name: 'tasks.fail_custom', queue: 'work' })),
      ...Array.from({ length: 2 }, () => ({ name: 'tasks.retry_once', queue: 'work' })),
      { name: 'tasks.reject_late', queue: 'work' },
      ...Array.from({ length: 2 }, () => ({ name: 'tasks.sleep', args: [1.5], queue: 'work' })),
      // Expires while waiting for its countdown: revoked.
      { name: 'tasks.noop', queue: 'work', countdown: 3, expires: 1 },
      ...Array.from({ length: 5 }, () => ({ name: 'tasks.noop', queue: 'backlog' })),
    ]);
    // One malformed event message, so the drops panel has a reason to show.
    const publisher = await amqpEventPublisher(broker.celery.brokerUrl);
    await publisher.publish('{not json', 'task.multi');
    await publisher.close();

    const checks: Array<[string, string, (v: number | undefined) => boolean]> = [
      ['succeeded', `sum(celery_task_succeeded_total{${sel}})`, (v) => v === 16],
      ['failed', `sum(celery_task_failed_total{${sel}})`, (v) => v === 8],
      ['retried', `sum(celery_task_retried_total{${sel}})`, (v) => v === 2],
      ['rejected', `sum(celery_task_rejected_total{${sel}})`, (v) => v === 1],
      ['revoked', `sum(celery_task_revoked_total{${sel}})`, (v) => v === 1],
      ['backlog', `celery_queue_length{${sel}, queue_name="backlog"}`, (v) => v === 5],
      ['work consumed', `celery_active_worker_count{${sel}, queue_name="work"}`, (v) => v === 1],
      ['drop', `sum(celery_autopilot_events_dropped_total{${sel}})`, (v) => (v ?? 0) >= 1],
      ['no-workers alert', 'count(ALERTS{alertname="CeleryQueueNoWorkers", queue_name="backlog"})', (v) => v === 1],
    ];
    let seen = '';
    await waitFor(
      'Prometheus to have scraped every outcome of the workload',
      async () => {
        const values = await Promise.all(checks.map(([, expr]) => scalar(expr)));
        seen = checks.map(([name], i) => `${name}=${values[i]}`).join(' ');
        return checks.every(([, , ok], i) => ok(values[i])) ? true : undefined;
      },
      60_000,
      500,
      async () => {
        // What the exporter itself shows for the counts Prometheus is compared with.
        const own = (await exporter.scrape().catch(() => []))
          .filter((s) => /^celery_(queue_length|autopilot_events_dropped_total)$/.test(s.name))
          .map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`);
        return `${seen}\nexporter: ${own.join(', ')}\nworker log tail:\n${worker?.logs().slice(-2000) ?? ''}`;
      },
    );
    // A few more scrapes after the last change, so every rate window has samples on both sides.
    await new Promise((r) => setTimeout(r, 3000));
  });

  afterAll(async () => {
    await worker?.stop();
    await prometheus?.stop();
    await exporter?.stop();
    await broker?.cleanup();
  });

  /** The values a person would pick in each variable for this workload. */
  const variableValues = (rangeSeconds: number): Record<string, string | string[]> => ({
    datasource: 'prometheus',
    job: [JOB],
    queue: ['work', 'backlog'],
    task: tasks,
    worker: [nodename],
    // What Grafana computes for a 2 s step over 1 s scrapes is 4 s; a little more rides over a
    // slow scrape on a busy machine.
    __rate_interval: '10s',
    __interval: '2s',
    __range: `${Math.ceil(rangeSeconds)}s`,
  });

  it('every template variable lists the values the workload produced', async () => {
    const expected: Record<string, string[]> = {
      job: [JOB],
      queue: ['work', 'backlog'],
      task: ['tasks.add', 'tasks.fail', 'tasks.retry_once'],
      worker: [nodename],
    };
    const vars = dashboard.templating.list.filter((v) => v.type === 'query');
    expect(vars.map((v) => v.name).sort()).toEqual(Object.keys(expected).sort());
    const values = variableValues(60);
    for (const v of vars) {
      const { selector, label } = parseLabelValues(variableQuery(v));
      expect(selector, `$${v.name} needs a series selector`).toBeDefined();
      const series = await prometheus.series(interpolate(selector!, values), workloadStart - 60);
      const found = new Set(series.map((s) => s[label]));
      for (const want of expected[v.name]!) expect([...found], `$${v.name} offers ${want}`).toContain(want);
    }
  });

  it('every panel query parses and returns data, except the queries empty by design', async () => {
    const end = Date.now() / 1000;
    const start = workloadStart - 5;
    const values = variableValues(end - start + 5);
    const exposed = new Set((await exporter.scrape()).map((s) => s.name.replace(/_(bucket|count|sum)$/, '')));
    const problems: string[] = [];
    const emptyByDesign: string[] = [];
    const queries = panelQueries(dashboard);
    expect(queries.length).toBeGreaterThan(30);
    for (const { key, target } of queries) {
      const expr = interpolate(target.expr, values);
      let data: QueryData;
      try {
        data = target.instant ? await prometheus.query(expr, end) : await prometheus.queryRange(expr, start, end, 2);
      } catch (e) {
        problems.push(`${key}: ${(e as Error).message}\n    ${expr}`);
        continue;
      }
      if (finiteValues(data).length > 0) continue;
      const design = EMPTY_BY_DESIGN[key];
      const present = design?.metrics.filter((m) => exposed.has(m)) ?? [];
      if (design && present.length === 0) emptyByDesign.push(key);
      else problems.push(`${key}: no data${present.length ? ` although /metrics has ${present.join(', ')}` : ''}\n    ${expr}`);
    }
    expect(problems, problems.join('\n')).toEqual([]);
    // The list documents itself: a stale entry (a query that no longer exists) is an error too.
    const keys = new Set(queries.map((q) => q.key));
    for (const key of Object.keys(EMPTY_BY_DESIGN)) expect(keys, `EMPTY_BY_DESIGN names ${key}`).toContain(key);
    console.log(`dashboard: ${queries.length} queries, empty by design here: ${emptyByDesign.join(', ') || 'none'}`);
  });

  it('every alert rule is loaded, evaluates without error and parses as a query', async () => {
    const shipped = (await readFile(ALERT_RULES_FILE, 'utf8')).match(/^\s*- alert: (\w+)/gm)!.map((l) => l.replace(/^\s*- alert: /, ''));
    const groups = await waitFor(
      'every rule evaluated at least once',
      async () => {
        const g = await prometheus.rules();
        const rules = g.flatMap((x) => x.rules);
        return rules.length === shipped.length && rules.every((r) => !r.lastEvaluation.startsWith('0001-')) ? g : undefined;
      },
      15_000,
    );
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.name).sort()).toEqual([...shipped].sort());
    for (const rule of rules) {
      expect({ name: rule.name, health: rule.health, lastError: rule.lastError ?? '' }).toEqual({
        name: rule.name,
        health: 'ok',
        lastError: '',
      });
      await expect(prometheus.query(rule.query), rule.name).resolves.toBeDefined();
    }
    // The queue alert carries what remediation needs, straight from real metrics.
    const noWorkers = rules.find((r) => r.name === 'CeleryQueueNoWorkers')!;
    expect(noWorkers.alerts?.map((a) => a.labels)).toEqual([
      { alertname: 'CeleryQueueNoWorkers', queue_name: 'backlog', severity: 'critical', autopilot_action: 'add_consumer' },
    ]);
  });
});
