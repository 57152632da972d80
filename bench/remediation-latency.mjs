#!/usr/bin/env node
/* global console, process, fetch, AbortSignal, Buffer, URL */
/**
 * Remediation latency: from the moment Alertmanager's webhook POST reaches celery-autopilot to
 * the moment the worker's pool really has one more process, against a real Alertmanager 0.25
 * and a real Celery 5.2.6 prefork worker on RabbitMQ.
 *
 *   npm run build && node bench/remediation-latency.mjs            # 5 runs through Alertmanager
 *   node bench/remediation-latency.mjs --runs 10 --direct            # the bench posts the webhook itself
 *
 * Per run: a new alert (its own `run` label) is posted to Alertmanager, which delivers it to a
 * timestamping pass-through in front of the service (that arrival is t0). Then
 *   - answered: the webhook's 200 went back to Alertmanager (decisions run after the answer);
 *   - decided:  the audit record of the acted decision, written once the worker replied ok;
 *   - grown:    `stats` (through the service's /api/v1/actions, polled every --poll-ms) first
 *               shows one more pool process. Celery adds the process on the pool's next
 *               maintenance tick, so this is what an operator would see. Runs start after a
 *               random gap (--max-gap-ms) so they sample every phase of that tick.
 *
 * Writes a table to stdout and JSON to bench/results/remediation-latency-<date>.json.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createVhost,
  environment,
  freePort,
  median,
  parseBenchArgs,
  randomSuffix,
  sleep,
  startCeleryWorker,
  startExporter,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/remediation-latency.mjs [--runs 5] [--direct] [--poll-ms 50] [--max-gap-ms 5000]
  [--python /usr/bin/python3] [--alertmanager prometheus-alertmanager] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  runs: '5',
  direct: false,
  'poll-ms': '50',
  'max-gap-ms': '5000',
  python: process.env.CELERY_PYTHON ?? '/usr/bin/python3',
  alertmanager: process.env.ALERTMANAGER_BIN ?? 'prometheus-alertmanager',
});

const RUNS = Number(opts.runs);
const POLL_MS = Number(opts['poll-ms']);
const MAX_GAP_MS = Number(opts['max-gap-ms']);
const QUEUE = 'bench_remediation';
const RUN_TIMEOUT_MS = 60_000;

/** Waits for `probe` to return something other than undefined, or throws after `timeoutMs`. */
async function until(what, probe, timeoutMs, everyMs = POLL_MS) {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1_000_000; i += 1) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Alertmanager's side of the wire, timestamped: every POST is recorded with its arrival time and
 * the labels of its alerts, then passed to the service unchanged, and the service's answer back.
 */
async function startTimestampingProxy(target) {
  const deliveries = [];
  const server = createServer((req, res) => {
    const arrivedAt = Date.now();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let alerts = [];
      try {
        alerts = JSON.parse(body.toString('utf8')).alerts ?? [];
      } catch {
        // passed on as is; the service answers 400
      }
      const delivery = { arrivedAt, answeredAt: null, status: null, alerts: alerts.map((a) => ({ status: a.status, labels: a.labels })) };
      deliveries.push(delivery);
      const upstream = request(target + req.url, { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (up) => {
        const back = [];
        up.on('data', (c) => back.push(c));
        up.on('end', () => {
          delivery.answeredAt = Date.now();
          delivery.status = up.statusCode;
          res.writeHead(up.statusCode ?? 502, { 'content-type': up.headers['content-type'] ?? 'application/json' });
          res.end(Buffer.concat(back));
        });
      });
      upstream.on('error', (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
      upstream.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${server.address().port}`, deliveries, close: () => new Promise((r) => server.close(r)) };
}

async function startAlertmanager(dir, webhookUrl, tokenFile) {
  const port = await freePort();
  const config = {
    route: {
      receiver: 'celery-autopilot',
      group_by: ['alertname', 'queue_name', 'run'],
      group_wait: '1s',
      group_interval: '2s',
      repeat_interval: '1h',
    },
    receivers: [
      {
        name: 'celery-autopilot',
        webhook_configs: [
          {
            url: webhookUrl,
            send_resolved: true,
            max_alerts: 0,
            http_config: { authorization: { type: 'Bearer', credentials_file: tokenFile } },
          },
        ],
      },
    ],
  };
  const configFile = join(dir, 'alertmanager.yml');
  writeFileSync(configFile, JSON.stringify(config)); // JSON is YAML
  const child = spawn(
    opts.alertmanager,
    [
      `--config.file=${configFile}`,
      `--storage.path=${join(dir, 'am-data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
    {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  child.stdout.on('data', (c) => (log = (log + c).slice(-5000)));
  child.stderr.on('data', (c) => (log = (log + c).slice(-5000)));
  const exited = once(child, 'exit');
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    if ((await Promise.race([exited, sleep(5000).then(() => 'late')])) === 'late') child.kill('SIGKILL');
  };
  try {
    await until(
      'Alertmanager ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`Alertmanager exited:\n${log}`);
        const ok = await fetch(`${url}/-/ready`).then(
          (r) => r.status === 200,
          () => false,
        );
        return ok ? true : undefined;
      },
      20_000,
      100,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    stop,
    post: async (alerts) => {
      const res = await fetch(`${url}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts),
      });
      if (!res.ok) throw new Error(`Alertmanager /api/v2/alerts: ${res.status} ${await res.text()}`);
    },
  };
}

function summarize(values) {
  return { median_ms: median(values), min_ms: Math.min(...values), max_ms: Math.max(...values) };
}

async function main() {
  const env = environment();
  const dir = mkdtempSync(join(tmpdir(), 'cap-bench-remediation-'));
  const vhost = createVhost(`bench-remediation-${randomSuffix()}`);
  const cleanup = [];
  try {
    const webhookToken = randomBytes(16).toString('hex');
    const adminToken = randomBytes(16).toString('hex');
    const tokenFile = join(dir, 'webhook-token');
    writeFileSync(tokenFile, webhookToken, { mode: 0o600 });
    const rulesFile = join(dir, 'rules.yml');
    writeFileSync(
      rulesFile,
      JSON.stringify({
        rules: [
          {
            name: 'bench-grow',
            match: { labels: { alertname: 'BenchBacklog' } },
            action: 'pool_grow',
            arguments: { n: 1 },
            target: { queue_label: 'queue_name' },
            // Each run grows by one from where the last one left it.
            bounds: { max_pool_processes: RUNS + 2, min_pool_processes: 1 },
            cooldown_seconds: 0,
          },
        ],
      }),
    );
    const configFile = join(dir, 'celery-autopilot.yaml');
    writeFileSync(
      configFile,
      JSON.stringify({
        metrics: { inspect_interval_seconds: 2 },
        audit: { file: '' },
        auth: {
          tokens: [{ name: 'bench', sha256: createHash('sha256').update(adminToken).digest('hex'), role: 'admin' }],
          // Webhook deliveries count as failed API logins from their IP (see bench/README.md).
          login_rate_limit: { max_failures: 10_000, window_seconds: 60 },
        },
        remediation: { enabled: true, rules_file: rulesFile, webhook: { bearer_token_file: tokenFile } },
      }),
    );

    const service = await startExporter({ brokerUrl: vhost.url, extraArgs: ['--config', configFile] });
    cleanup.push(() => service.stop());
    const nodename = `bench-remediation-${randomSuffix()}@bench`;
    // Prefork -c 1, task events on (-E): a pool that can really grow, one process at a time.
    const worker = await startCeleryWorker({
      brokerUrl: vhost.url,
      nodename,
      queues: QUEUE,
      concurrency: 1,
      events: true,
      python: opts.python,
    });
    cleanup.push(() => worker.stop());
    const api = async (path, init = {}) => {
      const res = await fetch(service.baseUrl + path, {
        ...init,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', ...init.headers },
        signal: AbortSignal.timeout(30_000),
      });
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
      return res.json();
    };
    const processes = async () => {
      const r = await api('/api/v1/actions', {
        method: 'POST',
        body: JSON.stringify({ command: 'stats', targets: { workers: [nodename] } }),
      });
      return r.results[0]?.reply?.pool?.processes?.length;
    };
    await until(
      'the service to see the worker consume the queue',
      async () => {
        const text = (await service.scrape()).text;
        return new RegExp(`^celery_active_worker_count\\{[^}]*queue_name="${QUEUE}"[^}]*\\} 1$`, 'm').test(text) ? true : undefined;
      },
      30_000,
      250,
    );

    const proxy = await startTimestampingProxy(service.baseUrl);
    cleanup.push(() => proxy.close());
    const alertmanager = opts.direct ? null : await startAlertmanager(dir, `${proxy.url}/api/v1/alertmanager`, tokenFile);
    if (alertmanager) cleanup.push(() => alertmanager.stop());

    const samples = [];
    for (let run = 1; run <= RUNS; run += 1) {
      // The pool adds processes on its own periodic tick; a random gap keeps the runs from
      // falling into step with it (each would then measure the same phase of the tick).
      await sleep(Math.floor(Math.random() * MAX_GAP_MS));
      const before = await processes();
      const labels = { alertname: 'BenchBacklog', queue_name: QUEUE, run: String(run) };
      if (alertmanager) {
        await alertmanager.post([{ labels, annotations: { summary: 'bench' } }]);
      } else {
        const alert = {
          status: 'firing',
          labels,
          annotations: {},
          startsAt: new Date().toISOString(),
          endsAt: '0001-01-01T00:00:00Z',
          generatorURL: '',
          fingerprint: `bench${run}`,
        };
        const body = JSON.stringify({
          receiver: 'celery-autopilot',
          status: 'firing',
          alerts: [alert],
          groupLabels: labels,
          commonLabels: labels,
          commonAnnotations: {},
          externalURL: '',
          version: '4',
          groupKey: `{}:{run="${run}"}`,
          truncatedAlerts: 0,
        });
        await fetch(`${proxy.url}/api/v1/alertmanager`, {
          method: 'POST',
          headers: { authorization: `Bearer ${webhookToken}`, 'content-type': 'application/json' },
          body,
        });
      }
      const delivery = await until(
        `run ${run}: the webhook delivery`,
        () => proxy.deliveries.find((d) => d.alerts.some((a) => a.labels?.run === String(run) && a.status === 'firing')),
        RUN_TIMEOUT_MS,
      );
      const grownAt = await until(
        `run ${run}: ${before + 1} pool processes`,
        async () => ((await processes()) === before + 1 ? Date.now() : undefined),
        RUN_TIMEOUT_MS,
      );
      const decisions = await api('/api/v1/remediation/decisions?limit=20');
      const decision = decisions.find((d) => d.alert?.labels?.run === String(run));
      if (!decision || decision.outcome !== 'acted') throw new Error(`run ${run}: no acted decision: ${JSON.stringify(decision)}`);
      await until(`run ${run}: the webhook answer`, () => (delivery.answeredAt !== null ? true : undefined), RUN_TIMEOUT_MS);
      const sample = {
        run,
        processes: `${before} → ${before + 1}`,
        answered_ms: delivery.answeredAt - delivery.arrivedAt,
        decided_ms: Date.parse(decision.time) - delivery.arrivedAt,
        grown_ms: grownAt - delivery.arrivedAt,
      };
      samples.push(sample);
      console.log(
        `run ${run}: pool ${sample.processes}, webhook answered +${sample.answered_ms} ms, worker acknowledged pool_grow +${sample.decided_ms} ms, new process seen in stats +${sample.grown_ms} ms`,
      );
    }

    const result = {
      benchmark: 'remediation-latency',
      date: new Date().toISOString(),
      environment: env,
      via: opts.direct ? 'direct POST' : 'Alertmanager 0.25',
      poll_ms: POLL_MS,
      samples,
      answered: summarize(samples.map((s) => s.answered_ms)),
      decided: summarize(samples.map((s) => s.decided_ms)),
      grown: summarize(samples.map((s) => s.grown_ms)),
    };
    console.log('\n| from webhook arrival to | median | min | max |\n|---|---|---|---|');
    for (const [key, label] of [
      ['answered', 'webhook answered (2xx)'],
      ['decided', 'worker acknowledged pool_grow (audit)'],
      ['grown', 'new pool process in stats'],
    ]) {
      const s = result[key];
      console.log(`| ${label} | ${s.median_ms} ms | ${s.min_ms} ms | ${s.max_ms} ms |`);
    }
    const out = writeResults('remediation-latency', result, { out: opts.out, at: result.date });
    console.log(`\nwrote ${out}`);
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
    vhost.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
