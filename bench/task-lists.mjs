#!/usr/bin/env node
/* global console, fetch, AbortSignal, Buffer */
/**
 * The heaviest task list the API allows, served while /-/healthy is asked:
 * a store of 50 000 failed tasks, each with Celery's longest reprs (args, kwargs and exception
 * of 1 000 characters, a traceback of 8 000), and several operators (who see payloads) asking in
 * parallel for the heaviest page: limit=1000 at the end of the store (so every hit is sorted), a
 * kwargs search that scans every task. Meanwhile /-/healthy is asked every 50 ms.
 *
 *   npm run build && node bench/task-lists.mjs [--tasks 50000] [--callers 4] [--per-caller 2] [--seconds 30]
 *
 * Events are published on RabbitMQ (a vhost of its own) as Celery 5.2.6 workers send them.
 * Writes a table to stdout and JSON to bench/results/task-lists-<date>.json.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import amqp from 'amqplib';
import {
  REPO_ROOT,
  createVhost,
  environment,
  mb,
  parseBenchArgs,
  percentile,
  printTable,
  randomSuffix,
  sleep,
  startExporter,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/task-lists.mjs [--repo DIR] [--tasks 50000] [--callers 4] [--per-caller 2] [--seconds 30]
  [--query "limit=1000&offset=49000&sort_by=-received&search=kwargs:user=ann"] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  repo: REPO_ROOT,
  tasks: '50000',
  callers: '4',
  'per-caller': '2',
  seconds: '30',
  query: null,
});
const TASKS = Number(opts.tasks);
const query =
  opts.query ?? `limit=1000&offset=${Math.max(0, TASKS - 1000)}&sort_by=-received&search=${encodeURIComponent('kwargs:user=ann')}`;
const round = (ms) => (ms === null ? null : Math.round(ms * 10) / 10);

/** Celery's repr cut at argsrepr_maxsize: 1 000 characters of something. */
const pad = (head, n) => (head + 'x'.repeat(n)).slice(0, n);

function events(i) {
  const uuid = randomUUID();
  const hostname = `worker${i % 8}@bench`;
  const t = Date.now() / 1000;
  const common = { hostname, utcoffset: 0, pid: 1000 + (i % 8), clock: i };
  return [
    [
      'task.received',
      hostname,
      {
        ...common,
        uuid,
        name: `bench.tasks.t${i % 20}`,
        args: pad(`('${i}', `, 1000),
        kwargs: pad(`{'user': 'ann', 'blob': '`, 998) + "'}",
        root_id: uuid,
        parent_id: null,
        retries: 0,
        eta: null,
        expires: null,
        timestamp: t,
        type: 'task-received',
      },
    ],
    [
      'task.failed',
      hostname,
      {
        ...common,
        uuid,
        exception: pad('ValueError(', 1000),
        traceback: pad('Traceback (most recent call last):\n', 8000),
        timestamp: t + 0.01,
        type: 'task-failed',
      },
    ],
  ];
}

async function publishTasks(url, n) {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.assertExchange('celeryev', 'topic', { durable: true, autoDelete: false });
  for (let i = 0; i < n; i++) {
    for (const [routingKey, hostname, body] of events(i)) {
      const ok = channel.publish('celeryev', routingKey, Buffer.from(JSON.stringify(body)), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 1,
        headers: { hostname },
      });
      if (!ok) await once(channel, 'drain');
    }
  }
  await channel.close();
  await connection.close();
}

async function main() {
  const vhost = createVhost(`bench-lists-${randomSuffix()}`);
  const dir = mkdtempSync(join(tmpdir(), 'bench-lists-'));
  const tokens = Array.from({ length: Number(opts.callers) }, () => randomBytes(24).toString('base64url'));
  const sha = (t) => createHash('sha256').update(t).digest('hex');
  writeFileSync(
    join(dir, 'config.yaml'),
    `auth:\n  tokens:\n${tokens.map((t, i) => `    - { name: op${i}, role: operator, sha256: "${sha(t)}" }`).join('\n')}\naudit: { file: "" }\n`,
  );
  const exporter = await startExporter({
    main: join(opts.repo, 'dist', 'main.js'),
    brokerUrl: vhost.url,
    extraArgs: ['--config', join(dir, 'config.yaml'), '--events-queue-message-ttl-seconds', '3600', '--tasks-max-tasks', String(TASKS)],
  });
  const get = (path, token, ms = 120_000) =>
    fetch(exporter.baseUrl + path, { headers: token ? { Authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(ms) });
  try {
    const t0 = performance.now();
    await publishTasks(vhost.url, TASKS);
    for (;;) {
      const r = await get(`/api/tasks?limit=1&offset=${TASKS - 1}&taskname=`, tokens[0]);
      if (r.status === 200 && Object.keys(await r.json()).length === 1) break;
      if (performance.now() - t0 > 15 * 60_000) throw new Error('the store never filled');
      await sleep(1000);
    }
    const fillSeconds = (performance.now() - t0) / 1000;
    const rssBefore = exporter.memory().rss;

    const until = performance.now() + Number(opts.seconds) * 1000;
    const lists = [];
    let refused = 0;
    let failed = 0;
    let peakRss = rssBefore;
    const caller = async (token) => {
      while (performance.now() < until) {
        const s = performance.now();
        try {
          const r = await get(`/api/tasks?${query}`, token);
          const body = await r.arrayBuffer();
          if (r.status === 200) lists.push({ ms: performance.now() - s, bytes: body.byteLength });
          else if (r.status === 429) {
            refused++;
            await sleep(100);
          } else failed++;
        } catch {
          failed++;
        }
      }
    };
    const healthy = [];
    let probeErrors = 0;
    const probe = async () => {
      while (performance.now() < until) {
        const s = performance.now();
        try {
          await (await get('/-/healthy')).text();
        } catch {
          probeErrors++;
        }
        healthy.push(performance.now() - s);
        peakRss = Math.max(peakRss, exporter.memory().rss ?? 0);
        await sleep(50);
      }
    };
    await Promise.all([probe(), ...tokens.flatMap((t) => Array.from({ length: Number(opts['per-caller']) }, () => caller(t)))]);
    const ms = lists.map((l) => l.ms).sort((a, b) => a - b);
    const h = [...healthy].sort((a, b) => a - b);
    return {
      tasks: TASKS,
      fill_seconds: round(fillSeconds),
      query,
      callers: Number(opts.callers),
      per_caller: Number(opts['per-caller']),
      lists_served: lists.length,
      refused_429: refused,
      failed,
      list_mb: mb(lists[0]?.bytes ?? null),
      list_p50_ms: round(percentile(ms, 50)),
      list_p99_ms: round(percentile(ms, 99)),
      healthy_probes: h.length,
      healthy_errors: probeErrors,
      healthy_p50_ms: round(percentile(h, 50)),
      healthy_p99_ms: round(percentile(h, 99)),
      healthy_max_ms: round(h[h.length - 1] ?? null),
      rss_before_mb: mb(rssBefore),
      rss_peak_mb: mb(peakRss),
    };
  } finally {
    await exporter.stop();
    vhost.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

const row = await main();
printTable(
  ['lists served', '429', 'MB per list', 'list p50 / p99 (ms)', '/-/healthy p50 / p99 / max (ms)', 'RSS before / peak (MB)'],
  [
    [
      String(row.lists_served),
      String(row.refused_429),
      String(row.list_mb),
      `${row.list_p50_ms} / ${row.list_p99_ms}`,
      `${row.healthy_p50_ms} / ${row.healthy_p99_ms} / ${row.healthy_max_ms}`,
      `${row.rss_before_mb} / ${row.rss_peak_mb}`,
    ],
  ],
);
const out = writeResults(
  'task-lists',
  { benchmark: 'task-lists', date: new Date().toISOString(), environment: environment(), options: opts, results: [row] },
  { out: opts.out },
);
console.log(`\nresults written to ${out}`);
