import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { SelfMetrics } from '../../src/metrics/self-metrics.js';
import {
  ALERT_RULES_FILE,
  REPO_ROOT,
  allPanels,
  interpolate,
  loadDashboard,
  panelQueries,
  parseLabelValues,
  variableQuery,
  type Dashboard,
} from '../support/prometheus.js';

/**
 * The Grafana dashboard's structure, without Grafana: what Grafana would silently render wrong
 * (overlapping panels, a panel bound to one installation's data source uid) and what would make
 * a panel empty everywhere (a metric name that does not exist, a variable that is not defined).
 * Its queries are run against a real Prometheus in test/integration/assets-dashboard.test.ts.
 */

/** The remediation and control metrics (docs/metrics.md); the dashboard must show each. */
const REMEDIATION_METRICS = [
  'celery_autopilot_remediation_decisions_total',
  'celery_autopilot_remediation_suppressed_total',
  'celery_autopilot_remediation_kill_switch',
  'celery_autopilot_remediation_webhooks_total',
  'celery_autopilot_control_commands_total',
];

/** The Celery families celery-exporter's dashboards and alerts read (its names), with their prefix. */
const CONTRACT_METRICS = [
  'celery_task_sent_total',
  'celery_task_received_total',
  'celery_task_started_total',
  'celery_task_succeeded_total',
  'celery_task_failed_total',
  'celery_task_rejected_total',
  'celery_task_revoked_total',
  'celery_task_retried_total',
  'celery_task_runtime',
  'celery_task_queue_wait_time',
  'celery_worker_up',
  'celery_worker_tasks_active',
  'celery_queue_length',
  'celery_active_consumer_count',
  'celery_active_worker_count',
  'celery_active_process_count',
];
const HISTOGRAMS = new Set(['celery_task_runtime', 'celery_task_queue_wait_time']);

/** Every metric name the service can expose with its default prefixes. */
async function knownMetricNames(): Promise<Set<string>> {
  const registry = new Registry();
  new SelfMetrics(registry, 'celery_autopilot_');
  const names = new Set<string>([...REMEDIATION_METRICS, ...registry.getMetricsAsArray().map((m) => m.name)]);
  for (const name of CONTRACT_METRICS) {
    names.add(name);
    if (HISTOGRAMS.has(name)) for (const s of ['_bucket', '_count', '_sum']) names.add(name + s);
  }
  return names;
}

const metricNamesIn = (expr: string): string[] => [...expr.matchAll(/\b(celery_[a-zA-Z0-9_]+)\b/g)].map((m) => m[1]!);

describe('Grafana dashboard structure', () => {
  let dashboard: Dashboard;
  let raw: string;
  beforeAll(async () => {
    dashboard = await loadDashboard();
    raw = await readFile(path.join(REPO_ROOT, 'grafana/dashboards/celery-autopilot.json'), 'utf8');
  });

  it('has a pinned uid and the datasource, job, queue, task and worker variables', () => {
    expect(dashboard.uid).toBe('celery-autopilot');
    const vars = Object.fromEntries(dashboard.templating.list.map((v) => [v.name, v]));
    expect(Object.keys(vars).sort()).toEqual(['datasource', 'job', 'queue', 'task', 'worker']);
    expect(vars.datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['job', 'queue', 'task', 'worker']) {
      expect(vars[name], name).toMatchObject({
        type: 'query',
        datasource: { type: 'prometheus', uid: '${datasource}' },
        multi: true,
        includeAll: true,
        allValue: '.*',
      });
      expect(() => parseLabelValues(variableQuery(vars[name]!)), name).not.toThrow();
    }
  });

  it('gives every panel a unique id', () => {
    const ids = allPanels(dashboard).map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    const panels = allPanels(dashboard);
    for (const p of panels) {
      const { h, w, x, y } = p.gridPos;
      expect([h, w, x, y].every(Number.isInteger), `${p.title} gridPos integers`).toBe(true);
      expect(w >= 1 && h >= 1 && x >= 0 && y >= 0 && x + w <= 24, `${p.title} gridPos ${JSON.stringify(p.gridPos)}`).toBe(true);
      if (p.type === 'row') expect({ w, x, h }, `row ${p.title}`).toEqual({ w: 24, x: 0, h: 1 });
    }
    const overlaps: string[] = [];
    for (let i = 0; i < panels.length; i++) {
      for (let j = i + 1; j < panels.length; j++) {
        const a = panels[i]!.gridPos;
        const b = panels[j]!.gridPos;
        if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h)
          overlaps.push(`${panels[i]!.title} / ${panels[j]!.title}`);
      }
    }
    expect(overlaps).toEqual([]);
  });

  it('binds every panel and query to the datasource variable and hard-codes no datasource uid', () => {
    const ds = { type: 'prometheus', uid: '${datasource}' };
    for (const p of allPanels(dashboard).filter((p) => p.type !== 'row')) {
      expect(p.datasource, p.title).toEqual(ds);
      expect(p.targets?.length, `${p.title} has queries`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.datasource, `${p.title}/${t.refId}`).toEqual(ds);
    }
    // Anywhere in the file: the only uids a datasource may name are the variable and Grafana's own
    // built-in annotation source.
    const uids = [...raw.matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]).filter((u) => u !== 'celery-autopilot');
    expect(new Set(uids)).toEqual(new Set(['${datasource}', '-- Grafana --']));
    expect(raw).not.toMatch(/"datasource":\s*"/); // the legacy string form names a datasource
  });

  it('gives every query a unique refId per panel and a non-empty expression', () => {
    for (const p of allPanels(dashboard)) {
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets ?? []) expect(t.expr.trim(), `${p.title}/${t.refId}`).not.toBe('');
    }
  });

  it('uses only metrics the service exposes (celery-exporter names, self-telemetry, remediation)', async () => {
    const known = await knownMetricNames();
    const unknown = panelQueries(dashboard).flatMap(({ key, target }) =>
      metricNamesIn(target.expr)
        .filter((m) => !known.has(m))
        .map((m) => `${key}: ${m}`),
    );
    const variables = dashboard.templating.list
      .filter((v) => v.type === 'query')
      .flatMap((v) => metricNamesIn(variableQuery(v)).filter((m) => !known.has(m)));
    expect([...unknown, ...variables]).toEqual([]);
  });

  it('covers every Celery metric of the compatibility contract', () => {
    const used = new Set(panelQueries(dashboard).flatMap(({ target }) => metricNamesIn(target.expr)));
    expect(CONTRACT_METRICS.map((m) => (HISTOGRAMS.has(m) ? `${m}_bucket` : m)).filter((m) => !used.has(m))).toEqual([]);
  });

  it('filters every query by $job and references only defined variables', () => {
    const defined = new Set([...dashboard.templating.list.map((v) => v.name), '__rate_interval', '__range', '__interval']);
    for (const { key, target } of panelQueries(dashboard)) {
      for (const m of target.expr.matchAll(/\$\{?(\w+)/g)) expect(defined, `${key} uses $${m[1]}`).toContain(m[1]);
      // ALERTS comes from Prometheus' rule evaluation, not from a celery-autopilot job.
      if (metricNamesIn(target.expr).length > 0) expect(target.expr, key).toContain('job=~"$job"');
    }
  });

  it('renders variables as Grafana does for Prometheus (regex-escaped, multi values in a group)', () => {
    expect(
      interpolate('x{name=~"$task", job=~"$job"}[$__rate_interval]', {
        task: ['tasks.add', 'tasks.fail'],
        job: ['celery-autopilot'],
        __rate_interval: '1m',
      }),
    ).toBe('x{name=~"(tasks\\\\.add|tasks\\\\.fail)", job=~"celery-autopilot"}[1m]');
    expect(() => interpolate('x{a=~"$nope"}', {})).toThrow('no value for dashboard variable $nope');
  });
});

describe('alert rules and remediation rules agree', () => {
  interface AlertRule {
    alert?: string;
    record?: string;
    expr: string;
    for?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  }
  interface RemediationRule {
    name: string;
    match: { status?: string; labels?: Record<string, string>; labels_regex?: Record<string, string> };
    action: string;
    arguments?: Record<string, unknown>;
    target: { queue_label?: string; worker_label?: string; pattern?: string };
    bounds?: Record<string, number>;
    cooldown_seconds?: number;
    max_actions?: { count: number; window_seconds: number };
    dry_run?: boolean;
    on_resolved?: { action: string; arguments?: Record<string, unknown> };
  }
  const ACTIONS = [
    'pool_grow',
    'pool_shrink',
    'autoscale',
    'add_consumer',
    'cancel_consumer',
    'rate_limit',
    'time_limit',
    'revoke',
    'pool_restart',
    'shutdown',
  ];
  let alerts: AlertRule[];
  let rules: RemediationRule[];

  beforeAll(async () => {
    const doc = parseYaml(await readFile(ALERT_RULES_FILE, 'utf8')) as { groups: Array<{ rules: AlertRule[] }> };
    alerts = doc.groups.flatMap((g) => g.rules).filter((r) => r.alert);
    rules = (parseYaml(await readFile(path.join(REPO_ROOT, 'alertmanager/remediation-rules.yml'), 'utf8')) as { rules: RemediationRule[] })
      .rules;
  });

  /** The labels an alert's series carry: those kept by its outermost `by (...)`, plus its own. */
  const alertLabels = (a: AlertRule): Set<string> => {
    const kept = [...a.expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
    const bare = metricNamesIn(a.expr).length > 0 && !/\b(by|sum|max|min|count)\b/.test(a.expr) ? ['job', 'instance', 'hostname'] : [];
    return new Set([...kept, ...bare, ...Object.keys(a.labels ?? {}), 'alertname']);
  };

  it('labels every alert with severity and an autopilot_action hint', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(8);
    for (const a of alerts) {
      expect(['critical', 'warning', 'info'], `${a.alert} severity`).toContain(a.labels?.severity);
      expect(['none', ...ACTIONS], `${a.alert} autopilot_action`).toContain(a.labels?.autopilot_action);
      expect(a.annotations?.summary, `${a.alert} summary`).toBeTruthy();
    }
  });

  it('uses only metrics the service exposes', async () => {
    const known = await knownMetricNames();
    expect(
      alerts.flatMap((a) =>
        metricNamesIn(a.expr)
          .filter((m) => !known.has(m))
          .map((m) => `${a.alert}: ${m}`),
      ),
    ).toEqual([]);
  });

  it('keeps queue_name on queue alerts and hostname on worker alerts', () => {
    for (const a of alerts) {
      const labels = alertLabels(a);
      if (/celery_queue_length|celery_active_worker_count|queue_wait/.test(a.expr)) expect([...labels], a.alert).toContain('queue_name');
      if (/celery_worker_up/.test(a.expr)) expect([...labels], a.alert).toContain('hostname');
    }
  });

  it('has well-formed remediation rules (names, actions, exactly one target, bounds)', () => {
    const names = rules.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
    for (const r of rules) {
      expect(r.name).toMatch(/^[a-z0-9_-]+$/);
      expect(ACTIONS, r.name).toContain(r.action);
      expect(['firing', 'resolved', 'any', undefined], r.name).toContain(r.match.status);
      expect(
        Object.keys(r.target).filter((k) => ['queue_label', 'worker_label', 'pattern'].includes(k)),
        `${r.name} target`,
      ).toHaveLength(1);
      expect(r.cooldown_seconds, `${r.name} cooldown`).toBeGreaterThan(0);
      expect(r.max_actions?.count, `${r.name} cap`).toBeGreaterThan(0);
      if (r.on_resolved) expect(ACTIONS, `${r.name} on_resolved`).toContain(r.on_resolved.action);
      if (r.action === 'pool_grow') expect(r.bounds?.max_pool_processes, `${r.name} needs a ceiling`).toBeGreaterThan(0);
      for (const [k, v] of Object.entries(r.match.labels_regex ?? {}))
        expect(() => new RegExp(`^(?:${v})$`), `${r.name} ${k}`).not.toThrow();
    }
  });

  it('matches each remediation rule to shipped alerts that carry every label and annotation it reads', () => {
    for (const r of rules) {
      const matching = alerts.filter((a) => {
        const labels: Record<string, string> = { alertname: a.alert!, ...a.labels };
        return (
          Object.entries(r.match.labels ?? {}).every(([k, v]) => labels[k] === v) &&
          Object.entries(r.match.labels_regex ?? {}).every(([k, v]) => labels[k] !== undefined && new RegExp(`^(?:${v})$`).test(labels[k]!))
        );
      });
      expect(matching.length, `${r.name} matches a shipped alert`).toBeGreaterThan(0);
      const templates = JSON.stringify([r.arguments ?? {}, r.on_resolved?.arguments ?? {}]);
      for (const a of matching) {
        const labels = alertLabels(a);
        const read = [r.target.queue_label, r.target.worker_label, ...[...templates.matchAll(/labels\.(\w+)/g)].map((m) => m[1])].filter(
          (l): l is string => !!l,
        );
        for (const l of read) expect([...labels], `${r.name} reads label ${l} of ${a.alert}`).toContain(l);
        for (const m of templates.matchAll(/annotations\.(\w+)/g))
          expect(Object.keys(a.annotations ?? {}), `${r.name} reads annotation ${m[1]} of ${a.alert}`).toContain(m[1]);
        expect(a.labels?.autopilot_action, `${a.alert} hints the action ${r.name} takes`).toBe(r.action);
      }
    }
  });

  it('acts out of the box only by growing pools within bounds; the rest are dry runs', () => {
    const live = rules.filter((r) => !r.dry_run);
    expect(live.map((r) => r.action)).toEqual(['pool_grow']);
    expect(live[0]!.on_resolved?.action).toBe('pool_shrink');
    // Cancelling the consumer an orphaned queue got would make its alert fire again at once.
    expect(rules.find((r) => r.action === 'add_consumer')?.on_resolved).toBeUndefined();
  });
});
