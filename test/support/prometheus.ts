import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

/**
 * Real Prometheus and Alertmanager (Debian's 2.42 and 0.25) for asset tests: each instance runs on
 * a free loopback port with its own temporary config and data directory, and is killed by PID.
 */

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ALERT_RULES_FILE = path.join(REPO_ROOT, 'alertmanager/celery-alerts.rules.yml');
export const ALERTMANAGER_CONFIG_FILE = path.join(REPO_ROOT, 'alertmanager/alertmanager.yml');
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? 'prometheus';
/** Debian names the binary prometheus-alertmanager; upstream tarballs name it alertmanager. */
export const ALERTMANAGER_BIN = process.env.ALERTMANAGER_BIN ?? 'prometheus-alertmanager';

export interface ScrapeTarget {
  job: string;
  /** Full URL of the metrics endpoint, e.g. http://127.0.0.1:40123/metrics. */
  url: string;
  /** Prometheus `metric_relabel_configs` for this job, as YAML would give them. */
  metricRelabelConfigs?: Array<Record<string, unknown>>;
  /** Prometheus `tls_config` for an https:// target (ca_file, cert_file, key_file, server_name). */
  tlsConfig?: Record<string, string>;
}

export interface PrometheusOptions {
  targets: ScrapeTarget[];
  /** Default 1s: tests want samples quickly. */
  scrapeInterval?: string;
  evaluationInterval?: string;
  /** Rule files' contents (YAML), written into the temporary directory. */
  rules?: string[];
  /** host:port of an Alertmanager to send alerts to. */
  alertmanager?: string;
}

export type PromLabels = Record<string, string>;
export type InstantVector = Array<{ metric: PromLabels; value: [number, string] }>;
export type RangeMatrix = Array<{ metric: PromLabels; values: Array<[number, string]> }>;
export type QueryData =
  | { resultType: 'vector'; result: InstantVector }
  | { resultType: 'matrix'; result: RangeMatrix }
  | { resultType: 'scalar' | 'string'; result: [number, string] };

export interface RuleState {
  name: string;
  query: string;
  type: 'alerting' | 'recording';
  health: string;
  lastError?: string;
  lastEvaluation: string;
  alerts?: Array<{ labels: PromLabels; state: string }>;
}

export interface RunningPrometheus {
  url: string;
  /** Instant query; rejects with Prometheus' error text when the expression does not parse or fails. */
  query(expr: string, time?: number): Promise<QueryData>;
  queryRange(expr: string, startSeconds: number, endSeconds: number, stepSeconds: number): Promise<QueryData>;
  /** The label sets of every series matching the selector (what Grafana's label_values reads). */
  series(match: string, startSeconds?: number, endSeconds?: number): Promise<PromLabels[]>;
  rules(): Promise<Array<{ name: string; rules: RuleState[] }>>;
  logs(): string;
  stop(): Promise<void>;
}

export interface RunningAlertmanager {
  url: string;
  /** Posts alerts to the v2 API as Prometheus does. */
  postAlerts(alerts: Array<{ labels: PromLabels; annotations?: PromLabels; startsAt?: string; endsAt?: string }>): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

/** A port nothing listens on right now (the process started next binds it; a clash is retried). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cap-prometheus-'));
  const ruleFiles: string[] = [];
  for (const [i, text] of (options.rules ?? []).entries()) {
    const file = path.join(dir, `rules-${i}.yml`);
    await writeFile(file, text);
    ruleFiles.push(file);
  }
  const config = {
    global: {
      scrape_interval: options.scrapeInterval ?? '1s',
      scrape_timeout: '1s',
      evaluation_interval: options.evaluationInterval ?? '1s',
    },
    rule_files: ruleFiles,
    ...(options.alertmanager ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [options.alertmanager] }] }] } } : {}),
    scrape_configs: options.targets.map((t) => {
      const u = new URL(t.url);
      return {
        job_name: t.job,
        scheme: u.protocol.replace(':', ''),
        metrics_path: u.pathname,
        static_configs: [{ targets: [u.host] }],
        ...(t.metricRelabelConfigs ? { metric_relabel_configs: t.metricRelabelConfigs } : {}),
        ...(t.tlsConfig ? { tls_config: t.tlsConfig } : {}),
      };
    }),
  };
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, stringifyYaml(config));
  const proc = await startOnFreePort('prometheus', dir, (port) => [
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
  ]);
  const api = async (pathAndQuery: string): Promise<unknown> => {
    const res = await fetch(proc.url + pathAndQuery);
    const body = (await res.json()) as { status: string; data?: unknown; error?: string; errorType?: string };
    if (body.status !== 'success')
      throw new Error(`Prometheus ${pathAndQuery.split('?')[0]}: ${body.errorType ?? res.status}: ${body.error ?? ''}`);
    return body.data;
  };
  const qs = (params: Record<string, string | number | undefined>) =>
    new URLSearchParams(
      Object.entries(params).flatMap(([k, v]): Array<[string, string]> => (v === undefined ? [] : [[k, String(v)]])),
    ).toString();
  return {
    url: proc.url,
    logs: proc.logs,
    stop: proc.stop,
    query: async (expr, time) => (await api(`/api/v1/query?${qs({ query: expr, time })}`)) as QueryData,
    queryRange: async (expr, start, end, step) => (await api(`/api/v1/query_range?${qs({ query: expr, start, end, step })}`)) as QueryData,
    series: async (match, start, end) => (await api(`/api/v1/series?${qs({ 'match[]': match, start, end })}`)) as PromLabels[],
    rules: async () => ((await api('/api/v1/rules')) as { groups: Array<{ name: string; rules: RuleState[] }> }).groups,
  };
}

export interface AlertmanagerOptions {
  /** The whole configuration, as YAML text. */
  config: string;
}

export async function startAlertmanager(options: AlertmanagerOptions): Promise<RunningAlertmanager> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cap-alertmanager-'));
  const configFile = path.join(dir, 'alertmanager.yml');
  await writeFile(configFile, options.config);
  const proc = await startOnFreePort('alertmanager', dir, (port) => [
    ALERTMANAGER_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // No gossip cluster: a lone instance must not look for peers.
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
  ]);
  return {
    url: proc.url,
    logs: proc.logs,
    stop: proc.stop,
    postAlerts: async (alerts) => {
      const res = await fetch(`${proc.url}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts),
      });
      if (!res.ok) throw new Error(`Alertmanager /api/v2/alerts answered ${res.status}: ${await res.text()}`);
    },
  };
}

/**
 * The shipped alert rules with some alerts' `for:` and threshold replaced, for tests that must see
 * an alert fire within seconds (e.g. CeleryQueueBacklog with threshold 3 and for 2s). The threshold
 * is the first `> <number>` of the alert's expression, as the rules file promises.
 */
export async function alertRulesWith(overrides: Record<string, { for?: string; threshold?: number }>): Promise<string> {
  const doc = parseYaml(await readFile(ALERT_RULES_FILE, 'utf8')) as { groups: Array<{ rules: Array<Record<string, unknown>> }> };
  const pending = new Set(Object.keys(overrides));
  for (const rule of doc.groups.flatMap((g) => g.rules)) {
    const name = rule.alert;
    if (typeof name !== 'string' || !(name in overrides)) continue;
    const o = overrides[name]!;
    pending.delete(name);
    if (o.for !== undefined) rule.for = o.for;
    if (o.threshold !== undefined) {
      const expr = String(rule.expr);
      const m = /> *(\d+(?:\.\d+)?)/.exec(expr);
      if (!m) throw new Error(`alert ${name} has no "> <number>" threshold to override`);
      rule.expr = expr.slice(0, m.index) + `> ${o.threshold}` + expr.slice(m.index + m[0].length);
    }
  }
  if (pending.size > 0) throw new Error(`no such alert in ${ALERT_RULES_FILE}: ${[...pending].join(', ')}`);
  return stringifyYaml(doc);
}

interface StartedProcess {
  url: string;
  logs(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Starts a server that binds the port it is given, retrying on a port clash, and resolves once
 * its /-/ready answers 200. On failure the error carries the process' output.
 */
async function startOnFreePort(
  what: string,
  dir: string,
  command: (port: number) => [string, string[]],
  attempts = 3,
): Promise<StartedProcess> {
  installExitHook();
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = await freePort();
    const [bin, args] = command(port);
    const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let output = '';
    const append = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.length > 200_000) output = output.slice(-200_000);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    let alive = true;
    child.once('exit', () => {
      alive = false;
      running.delete(child);
    });
    child.once('error', (e) => append(Buffer.from(`\n[test] ${e.message}\n`)));
    const url = `http://127.0.0.1:${port}`;
    const stop = async (): Promise<void> => {
      if (alive) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    };
    const deadline = Date.now() + 20_000;
    while (alive && Date.now() < deadline) {
      try {
        if ((await fetch(`${url}/-/ready`)).status === 200) return { url, logs: () => output, stop };
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (alive) {
      child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`${what} did not become ready on ${url} within 20 s:\n${output}`);
    }
    await exited;
    lastError = new Error(`${what} exited before becoming ready (${bin} ${args.join(' ')}):\n${output}`);
    if (!/address already in use/.test(output)) break;
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError ?? new Error(`${what} did not start`);
}

/** A test process that dies without cleanup must not leave Prometheus or Alertmanager behind. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

/** The finite sample values of a query result: NaN and ±Inf are not data a panel can show. */
export function finiteValues(data: QueryData): number[] {
  if (data.resultType === 'vector') return data.result.map((s) => Number(s.value[1])).filter(Number.isFinite);
  if (data.resultType === 'matrix') return data.result.flatMap((s) => s.values.map((v) => Number(v[1]))).filter(Number.isFinite);
  const v = Number(data.result[1]);
  return Number.isFinite(v) ? [v] : [];
}

// ---- Grafana dashboard queries, rendered as Grafana would send them to Prometheus ----

export const DASHBOARD_FILE = path.join(REPO_ROOT, 'grafana/dashboards/celery-autopilot.json');

export interface DashboardTarget {
  expr: string;
  refId: string;
  instant?: boolean;
  legendFormat?: string;
  datasource?: unknown;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: unknown;
  targets?: DashboardTarget[];
  panels?: DashboardPanel[];
}

export interface DashboardVariable {
  name: string;
  type: string;
  query?: unknown;
  datasource?: unknown;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: DashboardPanel[];
  templating: { list: DashboardVariable[] };
}

export async function loadDashboard(file = DASHBOARD_FILE): Promise<Dashboard> {
  return JSON.parse(await readFile(file, 'utf8')) as Dashboard;
}

/** Every panel, those inside collapsed rows included. */
export function allPanels(dashboard: Dashboard): DashboardPanel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export interface PanelQuery {
  panel: DashboardPanel;
  target: DashboardTarget;
  /** e.g. `Queue depth/A`, how tests name a query. */
  key: string;
}

export function panelQueries(dashboard: Dashboard): PanelQuery[] {
  return allPanels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ panel, target, key: `${panel.title}/${target.refId}` })),
  );
}

/**
 * Grafana's Prometheus interpolation: a multi-value or include-all variable becomes `(a|b)` with
 * each value's regex characters escaped (escaped once more for the PromQL string literal); a
 * single value of such a variable is escaped without parentheses. Built-ins ($__rate_interval,
 * $__range...) are given as already formatted strings.
 */
export function interpolate(expr: string, values: Record<string, string | string[]>): string {
  const regexEscape = (v: string) => v.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
  const render = (name: string): string => {
    const value = values[name];
    if (value === undefined) throw new Error(`no value for dashboard variable $${name} in: ${expr}`);
    if (typeof value === 'string') return value;
    return value.length === 1 ? regexEscape(value[0]!) : `(${value.map(regexEscape).join('|')})`;
  };
  return expr
    .replace(/\$\{(\w+)(?::\w+)?\}/g, (_m, name: string) => render(name))
    .replace(/\[\[(\w+)\]\]/g, (_m, name: string) => render(name))
    .replace(/\$(\w+)/g, (_m, name: string) => render(name));
}

/** `label_values(selector, label)` or `label_values(label)`: the series selector and the label. */
export function parseLabelValues(query: string): { selector: string | undefined; label: string } {
  const m = /^\s*label_values\(\s*(?:(.*),\s*)?(\w+)\s*\)\s*$/s.exec(query);
  if (!m) throw new Error(`not a label_values() query: ${query}`);
  return { selector: m[1]?.trim(), label: m[2]! };
}

/** The text of a query variable, whether stored as a string or as Grafana's query object. */
export function variableQuery(variable: DashboardVariable): string {
  const q = variable.query;
  if (typeof q === 'string') return q;
  if (q && typeof q === 'object' && typeof (q as { query?: unknown }).query === 'string') return (q as { query: string }).query;
  throw new Error(`variable ${variable.name} has no query text`);
}
