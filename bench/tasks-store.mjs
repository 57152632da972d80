#!/usr/bin/env node
/* global console, process, gc, fetch */
/**
 * Task store benchmark:
 *  1. memory: bytes per kept task, in this process with --expose-gc, for 10k and 100k kept tasks
 *     built from realistic events (received/started/succeeded), and 200k tasks through a store of
 *     10k (bounded: about the 10k figure);
 *  2. cpu: the real exporter (dist/main.js) counting ~100k events with the store on and off,
 *     CPU-seconds per 100k events and the ratio (must stay within 1.3×);
 *  3. latency: p50/p99 of GET /api/tasks?limit=100 and GET /api/task/info/<id> while the
 *     generator publishes 100k tasks (300k events) at 5 000 events/s into a store of 10k.
 *
 *   npm run build && node --expose-gc bench/tasks-store.mjs [--brokers amqp] [--parts memory,cpu,latency]
 *
 * Writes a table per part to stdout and JSON to bench/results/tasks-store-<date>.json.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  REPO_ROOT,
  environment,
  mb,
  parseBenchArgs,
  printTable,
  runOnBrokers,
  sampleTaskApi,
  sleep,
  splitList,
  waitForEvents,
  withExporter,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node --expose-gc bench/tasks-store.mjs [--brokers amqp,redis] [--parts memory,cpu,latency]
  [--cpu-tasks 34000] [--cpu-runs 2] [--latency-tasks 100000] [--rate 5000] [--kept 10000]
  [--redis-url redis://127.0.0.1:6379/0] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  brokers: 'amqp',
  parts: 'memory,cpu,latency',
  'cpu-tasks': '34000',
  'cpu-runs': '2',
  'latency-tasks': '100000',
  rate: '5000',
  kept: '10000',
  'redis-url': 'redis://127.0.0.1:6379/0',
});
const parts = new Set(splitList(opts.parts));
const kept = Number(opts.kept);

// ------------------------------------------------------------------------------------------
// 1. Memory per kept task

async function memory() {
  if (typeof gc !== 'function') throw new Error('run with node --expose-gc for the memory part');
  const { TaskStore } = await import(pathToFileURL(join(REPO_ROOT, 'dist', 'tasks', 'task-store.js')).href);
  const limits = { args: 1024, kwargs: 1024, result: 1024, exception: 1024, traceback: 8192 };
  const T = 1_800_000_000;
  const feed = (store, n, argsChars) => {
    const pad = 'x'.repeat(Math.max(0, argsChars - 16));
    for (let i = 0; i < n; i++) {
      const uuid = `${((i * 2654435761) >>> 0).toString(16).padStart(8, '0')}-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const common = { uuid, hostname: `worker${i % 8}@bench`, clock: i };
      // Through JSON.parse, as the decoder hands them over: every string is its own copy.
      const ev = (o) => store.handle(JSON.parse(JSON.stringify({ ...common, ...o })));
      ev({
        type: 'task-received',
        timestamp: T + i,
        name: `bench.tasks.t${i % 8}`,
        args: `(${i}, '${pad}')`,
        kwargs: '{}',
        root_id: uuid,
        parent_id: null,
        retries: 0,
        eta: null,
        expires: null,
      });
      ev({ type: 'task-started', timestamp: T + i + 0.001 });
      ev({ type: 'task-succeeded', timestamp: T + i + 0.002, result: String(i * 2), runtime: 0.001 });
    }
  };
  const heap = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const rows = [];
  for (const [seen, keep, argsChars] of [
    [10_000, 10_000, 16],
    [100_000, 100_000, 16],
    [10_000, 10_000, 1024],
    [200_000, 10_000, 16],
  ]) {
    const before = heap();
    const size = (() => {
      // The store lives in this scope only, so the next case starts from a collected heap.
      const store = new TaskStore({ maxTasks: keep, limits });
      feed(store, seen, argsChars);
      rows.push({ seen, kept: store.size, args_chars: argsChars, heap_bytes: heap() - before });
      return store.size;
    })();
    const row = rows[rows.length - 1];
    row.bytes_per_kept_task = Math.round(row.heap_bytes / size);
  }
  // The store's own share of event CPU, without the broker and decoding around it: 100k fresh
  // tasks (300k events) through a store of `kept`, events parsed beforehand.
  const events = [];
  for (let i = 0; i < 100_000; i++) {
    const uuid = `${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`;
    const common = `"hostname": "worker${i % 8}@bench", "utcoffset": 0, "pid": 1, "clock": ${i}, "uuid": "${uuid}"`;
    events.push(
      JSON.parse(
        `{${common}, "name": "bench.tasks.t${i % 8}", "args": "(${i}, 2)", "kwargs": "{}", "root_id": "${uuid}", "parent_id": null, "retries": 0, "eta": null, "expires": null, "timestamp": ${T + i}, "type": "task-received"}`,
      ),
    );
    events.push(JSON.parse(`{${common}, "timestamp": ${T + i + 0.1}, "type": "task-started"}`));
    events.push(JSON.parse(`{${common}, "result": "3", "runtime": 0.1, "timestamp": ${T + i + 0.2}, "type": "task-succeeded"}`));
  }
  const store = new TaskStore({ maxTasks: kept, limits });
  const cpu0 = process.cpuUsage();
  for (const e of events) store.handle(e);
  const cpu = process.cpuUsage(cpu0);
  const handleCpu = ((cpu.user + cpu.system) / 1e6 / events.length) * 100_000;
  console.log(`store.handle alone: ${handleCpu.toFixed(3)} CPU-s per 100k events (${events.length} events, ${kept} kept)`);
  rows.push({ store_handle_cpu_seconds_per_100k_events: handleCpu });
  printTable(
    ['tasks seen', 'kept', 'args chars', 'heap MB', 'bytes per kept task'],
    rows
      .filter((r) => r.seen !== undefined)
      .map((r) => [String(r.seen), String(r.kept), String(r.args_chars), String(mb(r.heap_bytes)), String(r.bytes_per_kept_task)]),
  );
  return rows;
}

// ------------------------------------------------------------------------------------------
// 2. Event CPU with the store on and off (the real exporter process)

const GENERATOR = (tasks, rate) => [
  '--tasks',
  String(tasks),
  '--workers',
  '8',
  '--task-names',
  '8',
  '--batch',
  '1',
  '--rate',
  String(rate),
  '--heartbeats',
];

async function cpuRun(broker, target, storeOn) {
  const extraArgs = storeOn ? ['--tasks-max-tasks', String(kept)] : ['--tasks-enabled', 'false'];
  return withExporter({ broker, target, extraArgs }, async ({ exporter, baseline, publish }) => {
    const cpuBefore = exporter.cpuSeconds();
    const generator = publish(GENERATOR(Number(opts['cpu-tasks']), 0));
    let published = null;
    generator.done.then(
      (r) => (published = r),
      () => undefined,
    );
    const wait = await waitForEvents(exporter, {
      baseline,
      expected: () => published?.published_events ?? null,
      producerDone: () => generator.isDone(),
      idleMs: 10_000,
    });
    published = await generator.done;
    return {
      broker,
      store: storeOn ? `on (${kept} kept)` : 'off',
      published_events: published.published_events,
      counted_events: wait.counted,
      cpu_seconds_per_100k_events: wait.counted > 0 ? ((wait.cpuAtLastChange - cpuBefore) / wait.counted) * 100_000 : null,
      peak_rss_bytes: exporter.memory().peakRss,
    };
  });
}

async function cpu() {
  const runs = Number(opts['cpu-runs']);
  const rows = await runOnBrokers('tasks-store-cpu', {
    brokers: splitList(opts.brokers),
    redisUrl: opts['redis-url'],
    // Alternating on/off so load from other processes on the machine hits both alike.
    cases: Array.from({ length: runs * 2 }, (_, i) => i % 2 === 1),
    runCase: (broker, storeOn, target) => cpuRun(broker, target, storeOn),
    describe: (broker, storeOn) => ({ label: `${broker} store=${storeOn}`, row: { broker, store: storeOn ? 'on' : 'off' } }),
  });
  printTable(
    ['broker', 'store', 'published', 'counted', 'CPU s/100k ev', 'peak RSS MB'],
    rows.map((r) => [
      r.broker,
      r.store,
      String(r.published_events),
      String(r.counted_events),
      r.cpu_seconds_per_100k_events?.toFixed(2) ?? 'n/a',
      String(mb(r.peak_rss_bytes ?? 0)),
    ]),
  );
  const summary = {};
  for (const broker of new Set(rows.map((r) => r.broker))) {
    const med = (on) => {
      const v = rows
        .filter((r) => r.broker === broker && r.store.startsWith(on) && r.cpu_seconds_per_100k_events !== null)
        .map((r) => r.cpu_seconds_per_100k_events)
        .sort((a, b) => a - b);
      return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
    };
    const on = med('on');
    const off = med('off');
    summary[broker] = { on, off, ratio: on !== null && off ? on / off : null };
    console.log(`${broker}: CPU s/100k events store on ${on?.toFixed(2)} / off ${off?.toFixed(2)} = ${summary[broker].ratio?.toFixed(2)}×`);
  }
  return { rows, summary };
}

// ------------------------------------------------------------------------------------------
// 3. API latency under a paced event stream

async function latencyRun(broker, target) {
  const extraArgs = ['--tasks-max-tasks', String(kept), '--auth-insecure-no-auth', 'true'];
  return withExporter({ broker, target, extraArgs }, async ({ exporter, publish }) => {
    const base = exporter.baseUrl;
    const generator = publish(GENERATOR(Number(opts['latency-tasks']), Number(opts.rate)));
    // Measure once the store is full (kept tasks), until the generator is done.
    for (;;) {
      const r = await fetch(`${base}/api/tasks?limit=1`);
      if (r.status === 200 && Object.keys(await r.json()).length > 0) {
        const types = await (await fetch(`${base}/metrics`)).text();
        const m = /celery_autopilot_tracked_tasks (\d+)/.exec(types);
        if (m && Number(m[1]) >= kept) break;
      }
      if (generator.isDone()) break;
      await sleep(500);
    }
    const sampled = await sampleTaskApi(base, generator);
    const published = await generator.done;
    return {
      broker,
      tasks_seen: Number(opts['latency-tasks']),
      kept,
      events_per_second: published.events_per_second,
      ...sampled,
      peak_rss_bytes: exporter.memory().peakRss,
    };
  });
}

async function latency() {
  const rows = await runOnBrokers('tasks-store-latency', {
    brokers: splitList(opts.brokers),
    redisUrl: opts['redis-url'],
    cases: [null],
    runCase: (broker, _item, target) => latencyRun(broker, target),
    describe: (broker) => ({ label: broker, row: { broker } }),
  });
  const f = (v) => (v === null || v === undefined ? 'n/a' : v.toFixed(1));
  printTable(
    ['broker', 'tasks seen', 'kept', 'gen ev/s', 'requests', 'errors', 'list p50', 'list p99', 'info p50', 'info p99', 'peak RSS MB'],
    rows.map((r) => [
      r.broker,
      String(r.tasks_seen),
      String(r.kept),
      String(r.events_per_second),
      String(r.requests),
      String(r.errors),
      f(r.list_p50_ms),
      f(r.list_p99_ms),
      f(r.info_p50_ms),
      f(r.info_p99_ms),
      String(mb(r.peak_rss_bytes ?? 0)),
    ]),
  );
  return rows;
}

async function main() {
  const out = { benchmark: 'tasks-store', date: new Date().toISOString(), environment: environment(), options: opts };
  if (parts.has('memory')) out.memory = await memory();
  if (parts.has('cpu')) out.cpu = await cpu();
  if (parts.has('latency')) out.latency = await latency();
  console.log(`\nresults written to ${writeResults('tasks-store', out, { out: opts.out, at: out.date })}`);
}

main().catch((error) => {
  console.error(`tasks-store: ${error.stack ?? error}`);
  process.exit(1);
});
