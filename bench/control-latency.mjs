#!/usr/bin/env node
/* global console, process, fetch, AbortSignal */
/**
 * Control latency benchmark: how long an HTTP control request takes from the moment a script
 * sends it until the service has every targeted worker's reply and has answered, against real
 * Celery 5.2.6 workers (solo pool, to keep 20 of them light), on RabbitMQ and Redis.
 *
 *   node bench/control-latency.mjs                      # amqp+redis, 1 and 20 workers, 200 requests each
 *   node bench/control-latency.mjs --requests 50 --workers 1,5 --brokers redis
 *
 * Each request is `POST /api/v1/actions` naming every worker (so the service stops collecting as
 * soon as the last reply arrives, as kombu does), sent one at a time with a bearer token:
 *   - ping, stats;
 *   - pool_grow then pool_shrink (n=1), one pair per sample. A solo pool cannot resize, so each
 *     worker answers `unsupported_pool` at once: the full control round trip without changing
 *     the pool (pass --pool prefork to resize real pools instead).
 * Also GET /-/healthy, the HTTP floor of the same connection.
 *
 * Writes a table to stdout and JSON to bench/results/control-latency-<date>.json.
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  createVhost,
  environment,
  mb,
  median,
  parseBenchArgs,
  randomSuffix,
  sleep,
  splitList,
  startCeleryWorker,
  startExporter,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/control-latency.mjs [--brokers amqp,redis] [--workers 1,20] [--requests 200]
  [--warmup 10] [--commands ping,stats,pool_grow+pool_shrink] [--pool solo|prefork]
  [--python /usr/bin/python3] [--redis-url redis://127.0.0.1:6379/0] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  brokers: 'amqp,redis',
  workers: '1,20',
  requests: '200',
  warmup: '10',
  commands: 'ping,stats,pool_grow+pool_shrink',
  pool: 'solo',
  python: process.env.CELERY_PYTHON ?? '/usr/bin/python3',
  'redis-url': 'redis://127.0.0.1:6379/0',
});

const brokers = splitList(opts.brokers);
const fleetSizes = opts.workers
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
const commands = splitList(opts.commands);
const requests = Number(opts.requests);
const warmup = Number(opts.warmup);
const REQUEST_TIMEOUT_MS = 30_000;
const round = (ms) => Math.round(ms * 100) / 100;

/** Nearest-rank percentile. */
function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function summarize(samples) {
  return {
    n: samples.length,
    median_ms: round(median(samples)),
    p99_ms: round(percentile(samples, 99)),
    mean_ms: round(samples.reduce((a, b) => a + b, 0) / samples.length),
    min_ms: round(Math.min(...samples)),
    max_ms: round(Math.max(...samples)),
  };
}

/** Starts workers a few at a time: 20 Python interpreters at once would stall a 2-core machine. */
async function startWorkers(count, { brokerUrl, keyprefix, pool, prefix }, into) {
  for (let i = 0; i < count; i += 4) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 4); j += 1) {
      batch.push(
        startCeleryWorker({
          brokerUrl,
          keyprefix,
          nodename: `${prefix}-${into.length + j - i}@bench`,
          queues: 'bench-control',
          pool,
          // Prefork with one process each, so that 20 of them stay light (a solo pool has no size).
          concurrency: pool === 'prefork' ? 1 : undefined,
          python: opts.python,
        }),
      );
    }
    const started = await Promise.allSettled(batch);
    for (const s of started) if (s.status === 'fulfilled') into.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

async function timed(url, init) {
  const started = performance.now();
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const body = await response.text();
  return { ms: performance.now() - started, status: response.status, body };
}

/** One /api/v1/actions request; counts workers that did not answer as incomplete. */
async function controlRequest(service, token, command, workers) {
  const r = await timed(`${service.baseUrl}/api/v1/actions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ command, ...(command.startsWith('pool_') ? { arguments: { n: 1 } } : {}), targets: { workers } }),
  });
  if (r.status !== 200) throw new Error(`${command}: HTTP ${r.status} ${r.body.slice(0, 300)}`);
  const results = JSON.parse(r.body).results;
  const answered = results.filter((x) => x.status === 'ok' || x.status === 'error').length;
  return { ms: r.ms, answered, statuses: [...new Set(results.map((x) => (x.kind ? `${x.status}:${x.kind}` : x.status)))] };
}

async function measure(service, token, workers, command) {
  const names = workers.map((w) => w.nodename);
  const steps = command.split('+');
  const samples = [];
  const perStep = Object.fromEntries(steps.map((s) => [s, []]));
  let incomplete = 0;
  const statuses = new Set();
  for (let i = 0; i < warmup + requests; i += 1) {
    let total = 0;
    for (const step of steps) {
      const r = await controlRequest(service, token, step, names);
      total += r.ms;
      if (r.answered !== names.length) incomplete += 1;
      for (const s of r.statuses) statuses.add(`${step} ${s}`);
      if (i >= warmup) perStep[step].push(r.ms);
    }
    if (i >= warmup) samples.push(total);
  }
  return {
    command,
    workers: names.length,
    ...summarize(samples),
    ...(steps.length > 1 ? { steps: Object.fromEntries(Object.entries(perStep).map(([k, v]) => [k, summarize(v)])) } : {}),
    incomplete_requests: incomplete,
    worker_answers: [...statuses].sort(),
  };
}

async function measureHttpFloor(service) {
  const samples = [];
  for (let i = 0; i < warmup + requests; i += 1) {
    const r = await timed(`${service.baseUrl}/-/healthy`, {});
    if (i >= warmup) samples.push(r.ms);
  }
  return summarize(samples);
}

async function waitUntilAllUp(service, token, names, timeoutMs = 60_000) {
  const deadline = performance.now() + timeoutMs;
  for (let i = 0; i < 10_000 && performance.now() < deadline; i += 1) {
    const response = await fetch(`${service.baseUrl}/api/v1/workers`, {
      headers: { Authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const up = new Set((await response.json()).filter((w) => w.up && w.queues !== null).map((w) => w.name));
    if (names.every((n) => up.has(n))) return;
    await sleep(250);
  }
  throw new Error(`not every worker was heard of and inspected within ${timeoutMs} ms`);
}

async function runBroker(broker, token, configFile) {
  const keyprefix = broker === 'redis' ? `bench-${randomSuffix()}:` : '';
  const vhost = broker === 'amqp' ? createVhost(`bench-control-${randomSuffix()}`) : undefined;
  const brokerUrl = vhost ? vhost.url : opts['redis-url'];
  const workers = [];
  let service;
  const rows = [];
  try {
    console.error(`[control-latency] ${broker}: starting the service`);
    service = await startExporter({ brokerUrl, keyprefix, extraArgs: ['--config', configFile] });
    const http = await measureHttpFloor(service);
    rows.push({ broker, workers: 0, command: 'GET /-/healthy', ...http });
    for (const size of fleetSizes) {
      console.error(`[control-latency] ${broker}: ${size} ${opts.pool} worker(s)`);
      await startWorkers(size - workers.length, { brokerUrl, keyprefix, pool: opts.pool, prefix: `bench${randomSuffix()}` }, workers);
      // Measured once the service has heard of every worker and its first inspection is over.
      await waitUntilAllUp(
        service,
        token,
        workers.map((w) => w.nodename),
      );
      await sleep(2000);
      for (const command of commands) {
        const row = await measure(service, token, workers, command);
        console.error(`[control-latency] ${broker} ${size}× ${command}: median ${row.median_ms} ms, p99 ${row.p99_ms} ms`);
        rows.push({ broker, ...row });
      }
    }
    return { rows, service_peak_rss_mb: mb(service.memory().peakRss ?? 0) };
  } catch (error) {
    if (service) console.error(service.logTail().slice(-30).join('\n'));
    throw error;
  } finally {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await service?.stop();
    vhost?.remove();
  }
}

async function main() {
  const env = environment();
  // A bearer token, as scripts use it; only its SHA-256 goes into the config.
  const token = `cap_${randomBytes(32).toString('base64url')}`;
  const configDir = mkdtempSync(join(tmpdir(), 'bench-control-'));
  const configFile = join(configDir, 'autopilot.yaml');
  const sha256 = createHash('sha256').update(token).digest('hex');
  writeFileSync(configFile, `auth:\n  tokens:\n    - { name: bench, sha256: "${sha256}", role: operator }\naudit:\n  file: ""\n`);
  const results = {
    benchmark: 'control-latency',
    started_at: new Date().toISOString(),
    environment: env,
    settings: { requests, warmup, pool: opts.pool, fleet_sizes: fleetSizes, commands },
    brokers: {},
  };
  try {
    for (const broker of brokers) results.brokers[broker] = await runBroker(broker, token, configFile);
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }

  const lines = [
    '| broker | workers | request | median ms | p99 ms | mean ms | max ms | incomplete |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [broker, { rows }] of Object.entries(results.brokers)) {
    for (const r of rows) {
      lines.push(
        `| ${broker} | ${r.workers} | ${r.command} | ${r.median_ms} | ${r.p99_ms} | ${r.mean_ms} | ${r.max_ms} | ${r.incomplete_requests ?? ''} |`,
      );
    }
  }
  console.log(lines.join('\n'));
  const out = writeResults('control-latency', results, { out: opts.out, at: results.started_at });
  console.error(`[control-latency] wrote ${out}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
