import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { AuditRecord } from '../../src/audit/audit-log.js';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import {
  ALERTMANAGER_CONFIG_FILE,
  alertRulesWith,
  startAlertmanager,
  startPrometheus,
  type RunningAlertmanager,
  type RunningPrometheus,
} from './prometheus.js';

/**
 * Alertmanager on the remediation side: the shipped alertmanager.yml pointed at a test service
 * with short intervals, and webhook bodies shaped exactly like Alertmanager 0.25's captured
 * deliveries (test/fixtures/captures/alertmanager-0.25/webhooks.jsonl) for tests that post them.
 */

interface Route {
  receiver?: string;
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
  [key: string]: unknown;
}

interface WebhookConfig {
  url: string;
  http_config?: { authorization?: { type?: string; credentials_file?: string; credentials?: string } };
  [key: string]: unknown;
}

export interface AlertmanagerTestSettings {
  /** The service's origin, e.g. http://127.0.0.1:40123; the shipped path is kept. */
  serviceOrigin: string;
  /** File holding the webhook bearer token (Alertmanager's authorization.credentials_file). */
  credentialsFile: string;
  groupWait?: string;
  groupInterval?: string;
  repeatInterval?: string;
}

/**
 * The shipped configuration with only what a test machine needs changed: the webhook's host
 * (its path stays as shipped), the token file, and every route's timers shortened. Routing,
 * matchers, send_resolved and max_alerts are exactly what users deploy.
 */
export async function shippedAlertmanagerConfig(s: AlertmanagerTestSettings): Promise<string> {
  const doc = parseYaml(await readFile(ALERTMANAGER_CONFIG_FILE, 'utf8')) as {
    route: Route;
    receivers: Array<{ name: string; webhook_configs?: WebhookConfig[] }>;
  };
  const timers = (r: Route): void => {
    r.group_wait = s.groupWait ?? '1s';
    r.group_interval = s.groupInterval ?? '2s';
    r.repeat_interval = s.repeatInterval ?? '4s';
    for (const child of r.routes ?? []) timers(child);
  };
  timers(doc.route);
  let webhooks = 0;
  for (const receiver of doc.receivers) {
    for (const w of receiver.webhook_configs ?? []) {
      const shipped = new URL(w.url);
      w.url = new URL(shipped.pathname, s.serviceOrigin).toString();
      const auth = w.http_config?.authorization;
      if (!auth?.credentials_file)
        throw new Error(`${ALERTMANAGER_CONFIG_FILE}: webhook ${shipped.href} has no authorization.credentials_file`);
      auth.credentials_file = s.credentialsFile;
      webhooks++;
    }
  }
  if (webhooks === 0) throw new Error(`${ALERTMANAGER_CONFIG_FILE} has no webhook receiver`);
  return stringifyYaml(doc);
}

export interface TestAlert {
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  status?: 'firing' | 'resolved';
  startsAt?: string;
  fingerprint?: string;
}

/** Alertmanager's fingerprint is a hash of the label set; any stable hash serves a test. */
export function fingerprintOf(labels: Record<string, string>): string {
  const text = Object.keys(labels)
    .sort()
    .map((k) => `${k}\u0000${labels[k]}`)
    .join('\u0001');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** A version "4" webhook body as Alertmanager 0.25 sends it (field order and extras included). */
export function notification(alerts: TestAlert[], options: { truncatedAlerts?: number; receiver?: string } = {}): Record<string, unknown> {
  const startsAt = '2026-11-30T01:57:10Z';
  const full = alerts.map((a) => ({
    status: a.status ?? 'firing',
    labels: a.labels,
    annotations: a.annotations ?? {},
    startsAt: a.startsAt ?? startsAt,
    endsAt: (a.status ?? 'firing') === 'resolved' ? '2026-11-30T02:07:10Z' : '0001-01-01T00:00:00Z',
    generatorURL: 'http://prometheus:9090/graph?g0.expr=celery_queue_length',
    fingerprint: a.fingerprint ?? fingerprintOf(a.labels),
  }));
  const common = (pick: (a: (typeof full)[number]) => Record<string, string>) => {
    const first = full[0] ? pick(full[0]) : {};
    return Object.fromEntries(Object.entries(first).filter(([k, v]) => full.every((a) => pick(a)[k] === v)));
  };
  const commonLabels = common((a) => a.labels);
  return {
    receiver: options.receiver ?? 'celery-autopilot',
    status: full.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    alerts: full,
    groupLabels: commonLabels,
    commonLabels,
    commonAnnotations: common((a) => a.annotations),
    externalURL: 'http://alertmanager:9093',
    version: '4',
    groupKey: `{}:{${Object.entries(commonLabels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ')}}`,
    truncatedAlerts: options.truncatedAlerts ?? 0,
  };
}

/** POSTs a webhook body as Alertmanager does (User-Agent, JSON, bearer credentials). */
export async function postWebhook(
  serviceUrl: string,
  body: unknown,
  token: string | undefined,
  path = '/api/v1/alertmanager',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(serviceUrl + path, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'Alertmanager/0.25.0',
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed };
}

// ---- The service Alertmanager posts to ----

export interface RemediationService {
  exporter: RunningExporter;
  url: string;
  /** What Alertmanager presents (remediation.webhook.bearer_token_file holds it). */
  webhookToken: string;
  webhookTokenFile: string;
  /** An admin API token (auth.tokens), for the kill switch, reload and the decisions API. */
  adminToken: string;
  /** GET /api/v1/remediation/decisions as an admin: newest first. */
  decisions(limit?: number): Promise<RemediationRecord[]>;
  /** Resolves once every accepted alert has been decided. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** One audited decision as the decisions API returns it. */
export type RemediationRecord = AuditRecord & {
  rule: string;
  action: string;
  outcome: string;
  reason?: string;
  alert: { fingerprint: string; startsAt: string; status: string; labels: Record<string, string> };
  arguments?: Record<string, unknown>;
  targets: string[];
  skipped: Array<{ worker: string; reason: string; detail?: string }>;
  results?: Array<{ worker: string; status: string; message?: string }>;
};

type ConfigTree = { [key: string]: unknown };

function merge(into: ConfigTree, from: ConfigTree): ConfigTree {
  for (const [k, v] of Object.entries(from)) {
    const have = into[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && have && typeof have === 'object' && !Array.isArray(have))
      merge(have as ConfigTree, v as ConfigTree);
    else into[k] = v;
  }
  return into;
}

/**
 * The service in-process with remediation on: a webhook token file, an admin API token, the
 * given rules file, fast worker inspection and uncached queue depths. `config` is merged over
 * those defaults (YAML keys), `argv` adds flags (the broker URL).
 */
export async function startRemediationService(argv: string[], rulesFile: string, config: ConfigTree = {}): Promise<RemediationService> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cap-remediation-'));
  const webhookToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const webhookTokenFile = path.join(dir, 'webhook-token');
  await writeFile(webhookTokenFile, `${webhookToken}\n`, { mode: 0o600 });
  const base: ConfigTree = {
    metrics: { inspect_interval_seconds: 2, queue_length_cache_seconds: 0 },
    control: { reply_timeout_ms: 1000 },
    audit: { file: '' },
    auth: {
      tokens: [{ name: 'test-admin', sha256: createHash('sha256').update(adminToken).digest('hex'), role: 'admin' }],
    },
    remediation: { enabled: true, rules_file: rulesFile, webhook: { bearer_token_file: webhookTokenFile } },
  };
  const configFile = path.join(dir, 'celery-autopilot.yaml');
  await writeFile(configFile, stringifyYaml(merge(base, config)));
  const exporter = await startExporter([...argv, '--config', configFile]);
  const url = exporter.url;
  return {
    exporter,
    url,
    webhookToken,
    webhookTokenFile,
    adminToken,
    decisions: async (limit = 1000) => {
      const res = await fetch(`${url}/api/v1/remediation/decisions?limit=${limit}`, { headers: { authorization: `Bearer ${adminToken}` } });
      if (res.status !== 200) throw new Error(`GET /api/v1/remediation/decisions answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as RemediationRecord[];
    },
    idle: () => exporter.service.remediator!.idle(),
    stop: async () => {
      await exporter.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Until the service's inspector has seen `worker` consuming `queue` (targets come from there). */
export async function waitForConsumer(service: RemediationService, worker: string, queue: string, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    `${worker} seen consuming ${queue}`,
    () => (service.exporter.service.workers.alive().some((w) => w.hostname === worker && w.queues?.includes(queue)) ? true : undefined),
    timeoutMs,
    200,
    () => JSON.stringify(service.exporter.service.workers.alive().map((w) => ({ hostname: w.hostname, queues: w.queues }))),
  );
}

export interface AlertingLoop {
  prometheus: RunningPrometheus;
  alertmanager: RunningAlertmanager;
  /** Both logs' tails, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Real Prometheus scraping the service (job celery-autopilot) with the shipped alert rules, some
 * tightened, and real Alertmanager with the shipped config posting to the service's webhook.
 */
export async function startAlertingLoop(
  service: RemediationService,
  overrides: Record<string, { for?: string; threshold?: number }>,
): Promise<AlertingLoop> {
  const alertmanager = await startAlertmanager({
    config: await shippedAlertmanagerConfig({ serviceOrigin: service.url, credentialsFile: service.webhookTokenFile }),
  });
  try {
    const prometheus = await startPrometheus({
      targets: [{ job: 'celery-autopilot', url: `${service.url}/metrics` }],
      rules: [await alertRulesWith(overrides)],
      alertmanager: new URL(alertmanager.url).host,
    });
    return {
      prometheus,
      alertmanager,
      logs: () => `prometheus:\n${prometheus.logs().slice(-1000)}\nalertmanager:\n${alertmanager.logs().slice(-1000)}`,
      stop: async () => {
        await prometheus.stop();
        await alertmanager.stop();
      },
    };
  } catch (e) {
    await alertmanager.stop();
    throw e;
  }
}
