#!/usr/bin/env node
/* global console, process, fetch, AbortSignal */
/**
 * Flower beside celery-autopilot: puts a Flower checkout through the same
 * generated event stream as throughput.mjs / tasks-store.mjs and measures
 *  1. cpu: Flower's CPU-seconds per 100k events, paced (the generator at --rate);
 *  2. latency: p50/p99 of its GET /api/tasks?limit=100 and GET /api/task/info/<id> while the
 *     generator publishes --latency-tasks tasks at --latency-rate events/s into --max-tasks kept.
 *
 *   node bench/flower-side-by-side.mjs --flower-src /path/to/flower-checkout [--brokers amqp,redis]
 *
 * Flower is NOT part of this repository: the script runs `/usr/bin/python3 -m flower` with
 * PYTHONPATH set to the checkout named on the command line (its Python deps from the OS packages).
 * Flower counts task events in `flower_events_total` (it does not count worker events there), so
 * completion is "every task event counted"; CPU is divided by the task events counted.
 * Redis isolation: a generated `celeryconfig.py` (Celery's default loader reads it) in a temporary
 * directory sets `broker_transport_options.global_keyprefix`, the same prefix the generator uses.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawnGenerator } from './generate-events.mjs';
import {
  cpuSeconds,
  environment,
  freePort,
  mb,
  median,
  memoryBytes,
  parseBenchArgs,
  printTable,
  randomSuffix,
  runOnBrokers,
  sampleTaskApi,
  sleep,
  splitList,
  terminate,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/flower-side-by-side.mjs --flower-src DIR [--brokers amqp,redis] [--parts cpu,latency]
  [--python /usr/bin/python3] [--tasks 33334] [--rate 1500] [--workers 10] [--task-names 20] [--runs 1]
  [--latency-tasks 100000] [--latency-rate 5000] [--max-tasks 10000] [--redis-url redis://127.0.0.1:6379/0] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  'flower-src': null,
  python: '/usr/bin/python3',
  brokers: 'amqp,redis',
  parts: 'cpu,latency',
  tasks: '33334',
  rate: '1500',
  workers: '10',
  'task-names': '20',
  runs: '1',
  'latency-tasks': '100000',
  'latency-rate': '5000',
  'max-tasks': '10000',
  'redis-url': 'redis://127.0.0.1:6379/0',
});
if (!opts['flower-src'] || !existsSync(join(opts['flower-src'], 'flower', '__main__.py'))) {
  console.error(`--flower-src must name a Flower checkout (a directory holding flower/__main__.py)\n${USAGE}`);
  process.exit(2);
}
const parts = new Set(splitList(opts.parts));

/** Sum of every sample of a counter family in a Prometheus text page. */
function sumFamily(text, name) {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function startFlower({ brokerUrl, keyprefix }) {
  const port = await freePort();
  const confDir = mkdtempSync(join(tmpdir(), 'bench-flower-'));
  writeFileSync(
    join(confDir, 'celeryconfig.py'),
    keyprefix ? `broker_transport_options = {'global_keyprefix': ${JSON.stringify(keyprefix)}}\n` : '\n',
  );
  const args = [
    '-m',
    'flower',
    `--broker=${brokerUrl}`,
    'flower',
    `--port=${port}`,
    '--address=127.0.0.1',
    `--max_tasks=${opts['max-tasks']}`,
    '--logging=warning',
  ];
  const child = spawn(opts.python, args, {
    cwd: confDir,
    env: { ...process.env, PYTHONPATH: `${confDir}:${opts['flower-src']}`, FLOWER_UNAUTHENTICATED_API: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail = [];
  const keep = (chunk) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      tail.push(line);
      if (tail.length > 100) tail.shift();
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = once(child, 'exit');
  const baseUrl = `http://127.0.0.1:${port}`;
  const running = () => child.exitCode === null && child.signalCode === null;
  const handle = {
    baseUrl,
    cpuSeconds: () => cpuSeconds(child.pid),
    memory: () => memoryBytes(child.pid),
    isRunning: running,
    async taskEvents() {
      const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(30_000) });
      return sumFamily(await res.text(), 'flower_events_total');
    },
    async stop() {
      await terminate(child, exited, 10_000);
      rmSync(confDir, { recursive: true, force: true });
    },
  };
  for (let i = 0; i < 600; i += 1) {
    if (!running()) throw new Error(`flower exited (${child.exitCode ?? child.signalCode}):\n${tail.join('\n')}`);
    try {
      const res = await fetch(`${baseUrl}/healthcheck`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  // Its event receiver connects in a thread after the HTTP server is up: give it time to subscribe.
  await sleep(3000);
  return handle;
}

async function withFlower(broker, target, measure) {
  const keyprefix = broker === 'redis' ? `bench-${randomSuffix()}:` : '';
  const flower = await startFlower({ brokerUrl: target.url, keyprefix });
  let generator;
  try {
    const publish = (args) => {
      generator = spawnGenerator(['--broker', target.url, ...args, ...(keyprefix ? ['--keyprefix', keyprefix] : [])]);
      return generator;
    };
    return await measure({ flower, publish, baseline: await flower.taskEvents() });
  } finally {
    generator?.kill();
    await flower.stop();
  }
}

const generatorArgs = (tasks, rate) => [
  '--tasks',
  String(tasks),
  '--workers',
  opts.workers,
  '--task-names',
  opts['task-names'],
  '--batch',
  '1',
  '--rate',
  String(rate),
  '--heartbeats',
];

async function cpuRun(broker, target) {
  return withFlower(broker, target, async ({ flower, publish, baseline }) => {
    const expected = Number(opts.tasks) * 3;
    const cpuBefore = flower.cpuSeconds();
    const generator = publish(generatorArgs(opts.tasks, opts.rate));
    let last = baseline;
    let lastChange = performance.now();
    let cpuAtLastChange = cpuBefore;
    // Poll every 5 s (a Prometheus-like scrape rate); stop when all task events are counted or
    // the count has not moved for 15 s after the generator finished.
    for (;;) {
      await sleep(5000);
      const count = await flower.taskEvents();
      if (count !== last) {
        last = count;
        lastChange = performance.now();
        cpuAtLastChange = flower.cpuSeconds();
      }
      if (count - baseline >= expected) break;
      if (generator.isDone() && performance.now() - lastChange > 15_000) break;
      if (!flower.isRunning()) break;
    }
    const published = await generator.done;
    const counted = last - baseline;
    return {
      broker,
      published_events: published.published_events,
      task_events_expected: expected,
      task_events_counted: counted,
      gen_events_per_second: published.events_per_second,
      cpu_seconds_per_100k_events: counted > 0 ? ((cpuAtLastChange - cpuBefore) / counted) * 100_000 : null,
      peak_rss_bytes: flower.memory().peakRss,
    };
  });
}

async function latencyRun(broker, target) {
  return withFlower(broker, target, async ({ flower, publish, baseline }) => {
    const base = flower.baseUrl;
    const kept = Number(opts['max-tasks']);
    const generator = publish(generatorArgs(opts['latency-tasks'], opts['latency-rate']));
    // Measure once the store is full (more than max_tasks tasks seen), until the generator is done.
    while (!generator.isDone() && (await flower.taskEvents()) - baseline < kept * 3) await sleep(500);
    const sampled = await sampleTaskApi(base, generator);
    const published = await generator.done;
    return {
      broker,
      tasks_seen: Number(opts['latency-tasks']),
      kept,
      gen_events_per_second: published.events_per_second,
      ...sampled,
      task_events_counted: (await flower.taskEvents()) - baseline,
      peak_rss_bytes: flower.memory().peakRss,
    };
  });
}

const f = (v, d = 1) => (v === null || v === undefined ? 'n/a' : v.toFixed(d));

async function main() {
  const out = { benchmark: 'flower-side-by-side', date: new Date().toISOString(), environment: environment(), options: opts };
  const brokers = splitList(opts.brokers);
  if (parts.has('cpu')) {
    out.cpu = await runOnBrokers('flower-cpu', {
      brokers,
      redisUrl: opts['redis-url'],
      cases: Array.from({ length: Number(opts.runs) }, (_, i) => i),
      runCase: (broker, _i, target) => cpuRun(broker, target),
      describe: (broker, i) => ({ label: `${broker} run ${i}`, row: { broker } }),
    });
    printTable(
      ['broker', 'published', 'task ev expected', 'task ev counted', 'gen ev/s', 'CPU s/100k ev', 'peak RSS MB'],
      out.cpu.map((r) =>
        r.error
          ? [r.broker, 'ERROR', r.error.split('\n')[0]]
          : [
              r.broker,
              String(r.published_events),
              String(r.task_events_expected),
              String(r.task_events_counted),
              String(r.gen_events_per_second),
              f(r.cpu_seconds_per_100k_events, 2),
              String(mb(r.peak_rss_bytes ?? 0)),
            ],
      ),
    );
    for (const broker of brokers) {
      const v = out.cpu
        .filter((r) => r.broker === broker && r.cpu_seconds_per_100k_events != null)
        .map((r) => r.cpu_seconds_per_100k_events);
      if (v.length) console.log(`${broker}: median CPU s/100k events ${median(v).toFixed(2)} (${v.map((x) => x.toFixed(2)).join(', ')})`);
    }
  }
  if (parts.has('latency')) {
    out.latency = await runOnBrokers('flower-latency', {
      brokers,
      redisUrl: opts['redis-url'],
      cases: [null],
      runCase: (broker, _i, target) => latencyRun(broker, target),
      describe: (broker) => ({ label: broker, row: { broker } }),
    });
    printTable(
      [
        'broker',
        'tasks seen',
        'kept',
        'gen ev/s',
        'task ev counted',
        'requests',
        'errors',
        'list p50',
        'list p99',
        'info p50',
        'info p99',
        'peak RSS MB',
      ],
      out.latency.map((r) =>
        r.error
          ? [r.broker, 'ERROR', r.error.split('\n')[0]]
          : [
              r.broker,
              String(r.tasks_seen),
              String(r.kept),
              String(r.gen_events_per_second),
              String(r.task_events_counted),
              String(r.requests),
              String(r.errors),
              f(r.list_p50_ms),
              f(r.list_p99_ms),
              f(r.info_p50_ms),
              f(r.info_p99_ms),
              String(mb(r.peak_rss_bytes ?? 0)),
            ],
      ),
    );
  }
  console.log(`\nresults written to ${writeResults('flower-side-by-side', out, { out: opts.out, at: out.date })}`);
}

main().catch((error) => {
  console.error(`flower-side-by-side: ${error.stack ?? error}`);
  process.exit(1);
});
