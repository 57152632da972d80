#!/usr/bin/env node
/* global console, fetch, AbortSignal, setTimeout, clearTimeout */
/**
 * What waiting result requests cost the result backend: W requests
 * `GET /api/task/result/<id>?timeout=T` for ids that never get a result, all at once, and the
 * commands per second the result backend's Redis executes while they wait. The result backend
 * is a redis-server of the benchmark's own (started on a free port, stopped by its PID), so its
 * INFO counts nothing but this service; events come from the shared Redis under a key prefix of
 * their own.
 *
 *   npm run build && node bench/result-waiters.mjs                            # 500 waits, this checkout
 *   node bench/result-waiters.mjs --repo /tmp/before                          # another checkout's dist/
 *   node bench/result-waiters.mjs --exporter-args="--tasks-max-result-waiters 1000"
 *
 * Writes a table to stdout and JSON to bench/results/result-waiters-<date>.json.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  REPO_ROOT,
  environment,
  freePort,
  parseBenchArgs,
  printTable,
  randomSuffix,
  sleep,
  startExporter,
  terminate,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/result-waiters.mjs [--repo DIR] [--waiters 500] [--timeout-seconds 30] [--measure-seconds 10]
  [--exporter-args="--tasks-max-result-waiters 1000"] [--cold] [--redis-url redis://127.0.0.1:6379/0] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  repo: REPO_ROOT,
  waiters: '500',
  'timeout-seconds': '30',
  'measure-seconds': '10',
  'exporter-args': '',
  cold: false,
  'redis-url': 'redis://127.0.0.1:6379/0',
});

async function privateRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit');
  let log = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server not ready:\n${log}`)), 10_000);
    child.stdout.on('data', (c) => {
      log += c;
      if (log.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  const commands = async () => {
    const info = await client.info('stats');
    return Number(/total_commands_processed:(\d+)/.exec(info)[1]);
  };
  return {
    url: `redis://127.0.0.1:${port}/0`,
    commands,
    commandStats: async () => {
      const info = await client.info('commandstats');
      return Object.fromEntries([...info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
    },
    stop: async () => {
      client.disconnect();
      await terminate(child, exited, 5_000, () => child.kill('SIGKILL'));
    },
  };
}

async function main() {
  const backend = await privateRedis();
  const dir = mkdtempSync(join(tmpdir(), 'bench-waiters-'));
  const token = randomBytes(24).toString('base64url');
  writeFileSync(
    join(dir, 'config.yaml'),
    `auth:\n  tokens: [{ name: bench, role: operator, sha256: "${createHash('sha256').update(token).digest('hex')}" }]\naudit: { file: "" }\n`,
  );
  const extra = opts['exporter-args'].split(/\s+/).filter(Boolean);
  const exporter = await startExporter({
    main: join(opts.repo, 'dist', 'main.js'),
    brokerUrl: opts['redis-url'],
    keyprefix: `bench-${randomSuffix()}:`,
    extraArgs: ['--config', join(dir, 'config.yaml'), '--tasks-result-backend', backend.url, ...extra],
  });
  try {
    // One request first opens the backend connection, so the waits measure polling alone (on a
    // service before the backend connection was shared, concurrent first requests raced to connect and 499 of
    // 500 failed: --cold shows it).
    if (!opts.cold)
      await (await fetch(`${exporter.baseUrl}/api/task/result/${randomUUID()}`, { headers: { Authorization: `Bearer ${token}` } })).text();
    const waits = Number(opts.waiters);
    const timeoutS = Number(opts['timeout-seconds']);
    const statuses = new Map();
    const requests = Array.from({ length: waits }, async () => {
      const r = await fetch(`${exporter.baseUrl}/api/task/result/${randomUUID()}?timeout=${timeoutS}`, {
        headers: { Authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout((timeoutS + 60) * 1000),
      }).catch(() => null);
      const status = r ? r.status : 'error';
      await r?.text();
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    });
    // Let every request arrive and its first reads pass, then count for measure-seconds.
    await sleep(3000);
    const before = await backend.commands();
    const statsBefore = await backend.commandStats();
    const measureS = Number(opts['measure-seconds']);
    await sleep(measureS * 1000);
    const after = await backend.commands();
    const statsAfter = await backend.commandStats();
    await Promise.all(requests);
    const perCommand = Object.fromEntries(
      Object.entries(statsAfter)
        .map(([k, v]) => [k, Math.round(((v - (statsBefore[k] ?? 0)) / measureS) * 10) / 10])
        .filter(([k, v]) => v > 0 && k !== 'info'),
    );
    return {
      waiters: waits,
      timeout_seconds: timeoutS,
      exporter_args: extra.join(' '),
      cold: opts.cold,
      answers: Object.fromEntries(statuses),
      // INFO itself is counted too: two calls per window.
      commands_per_second: Math.round(((after - before - 2) / measureS) * 10) / 10,
      per_command_per_second: perCommand,
    };
  } finally {
    await exporter.stop();
    await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const row = await main();
printTable(
  ['waiting requests', 'answers', 'backend commands/s', 'by command (/s)'],
  [[String(row.waiters), JSON.stringify(row.answers), String(row.commands_per_second), JSON.stringify(row.per_command_per_second)]],
);
const out = writeResults(
  'result-waiters',
  { benchmark: 'result-waiters', date: new Date().toISOString(), environment: environment(), options: opts, results: [row] },
  { out: opts.out },
);
console.log(`\nresults written to ${out}`);
