#!/usr/bin/env node
/* global console, fetch, AbortSignal */
/**
 * Task search over hostile kwargs: how long an operator's ordinary
 * `kwargs:user=ann` search takes when a Celery client has planted a kwargs repr holding a run of
 * N backslashes as the second string of a list (Windows paths: the repr
 * `{'user': 'ann', 'paths': ['C:\\tmp', 'C:\\\\…']}`), and how long `/-/healthy` waits meanwhile.
 * One fresh service per N (a stuck one is killed), on Redis, the task planted by a real Celery
 * 5.2.6 client (its kwargsrepr option, so the repr holds exactly N backslashes).
 *
 *   npm run build && node bench/task-search.mjs                       # this checkout
 *   node bench/task-search.mjs --repo /tmp/before                     # another checkout's dist/ (built)
 *   node bench/task-search.mjs --backslashes 20,30,44,1000 --timeout-seconds 300
 *
 * Writes a table to stdout and JSON to bench/results/task-search-<date>.json.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  REPO_ROOT,
  environment,
  parseBenchArgs,
  printTable,
  randomSuffix,
  sendCeleryTasks,
  sleep,
  splitList,
  startExporter,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/task-search.mjs [--repo DIR] [--backslashes 44,1000] [--timeout-seconds 120]
  [--redis-url redis://127.0.0.1:6379/0] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  repo: REPO_ROOT,
  backslashes: '44,1000',
  'timeout-seconds': '120',
  'redis-url': 'redis://127.0.0.1:6379/0',
});
const timeoutMs = Number(opts['timeout-seconds']) * 1000;
const round = (ms) => (ms === null ? null : Math.round(ms * 10) / 10);

/** A service with one operator token; `--tasks-max-kwargs-chars` keeps the planted repr whole. */
async function service(dir) {
  const token = randomBytes(24).toString('base64url');
  const config = join(dir, 'config.yaml');
  const sha = createHash('sha256').update(token).digest('hex');
  writeFileSync(config, `auth:\n  tokens: [{ name: bench, role: operator, sha256: "${sha}" }]\naudit: { file: "" }\n`);
  const keyprefix = `bench-${randomSuffix()}:`;
  const exporter = await startExporter({
    main: join(opts.repo, 'dist', 'main.js'),
    brokerUrl: opts['redis-url'],
    keyprefix,
    extraArgs: ['--config', config, '--tasks-max-kwargs-chars', '8192'],
  });
  const get = (path, ms) =>
    fetch(exporter.baseUrl + path, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(ms) });
  return { exporter, keyprefix, get };
}

/** `/-/healthy` asked every 100 ms until stopped: the longest wait seen. */
function probeHealthy(baseUrl) {
  let stop = false;
  let max = 0;
  const done = (async () => {
    while (!stop) {
      const t0 = performance.now();
      try {
        await fetch(`${baseUrl}/-/healthy`, { signal: AbortSignal.timeout(timeoutMs + 60_000) });
      } catch {
        // the service was stopped under the probe
      }
      max = Math.max(max, performance.now() - t0);
      await sleep(100);
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
      return max;
    },
  };
}

async function measure(n) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-search-'));
  const { exporter, keyprefix, get } = await service(dir);
  const name = `bench.search_${n}`;
  const kwargsrepr = `{'user': 'ann', 'paths': ['C:\\\\tmp', 'C:${'\\'.repeat(n)}']}`;
  try {
    await sendCeleryTasks({
      brokerUrl: opts['redis-url'],
      keyprefix,
      tasks: [{ name, kwargs: { user: 'ann' }, kwargsrepr, queue: 'bench-nobody' }],
    });
    for (let i = 0; ; i++) {
      const r = await get(`/api/tasks?taskname=${name}`, 10_000);
      if (Object.keys(await r.json()).length === 1) break;
      if (i > 300) throw new Error('the planted task never reached the store');
      await sleep(100);
    }
    const probe = probeHealthy(exporter.baseUrl);
    const t0 = performance.now();
    let searchMs = null;
    let found = null;
    try {
      const r = await get(`/api/tasks?taskname=${name}&search=${encodeURIComponent('kwargs:user=ann')}`, timeoutMs);
      found = Object.keys(await r.json()).length;
      searchMs = performance.now() - t0;
    } catch {
      // no answer within the bound: the service is stuck; stopping it ends the probe too
      await exporter.stop(2_000);
    }
    const healthyMaxMs = await probe.stop();
    return { backslashes: n, repr_chars: kwargsrepr.length, search_ms: round(searchMs), found, healthy_max_ms: round(healthyMaxMs) };
  } finally {
    await exporter.stop(2_000);
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
for (const n of splitList(opts.backslashes).map(Number)) {
  const row = await measure(n);
  rows.push(row);
  console.error(JSON.stringify(row));
}
printTable(
  ['backslashes', 'repr chars', 'search (ms)', 'tasks found', '/-/healthy max wait (ms)'],
  rows.map((r) => [
    String(r.backslashes),
    String(r.repr_chars),
    r.search_ms === null ? `no answer in ${opts['timeout-seconds']} s` : String(r.search_ms),
    String(r.found ?? '-'),
    String(r.healthy_max_ms),
  ]),
);
const out = writeResults(
  'task-search',
  { benchmark: 'task-search', date: new Date().toISOString(), environment: environment(), options: opts, results: rows },
  { out: opts.out },
);
console.log(`\nresults written to ${out}`);
