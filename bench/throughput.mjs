#!/usr/bin/env node
/* global console, process */
/**
 * Throughput benchmark: for each broker and event shape, start the exporter, publish
 * `--tasks` tasks (3 events each) as fast as the generator can, and measure how fast the
 * exporter counts them, what that costs in CPU, its peak memory, and how many were lost.
 *
 *   node bench/throughput.mjs                      # 100k tasks, amqp+redis, batch 1 and 10
 *   node bench/throughput.mjs --tasks 5000         # quick check
 *
 * Writes a table to stdout and JSON to bench/results/throughput-<date>.json.
 */
import { performance } from 'node:perf_hooks';
import {
  environment,
  finishRows,
  mb,
  parseBenchArgs,
  runOnBrokers,
  samplesByLabel,
  splitList,
  sumMetric,
  waitForEvents,
  withExporter,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/throughput.mjs [--tasks 100000] [--brokers amqp,redis] [--batches 1,10]
  [--workers 8] [--task-names 8] [--procs 1] [--rate 0] [--with-sent] [--idle-seconds 10]
  [--poll-ms 100] [--redis-url redis://127.0.0.1:6379/0] [--exporter-args "--flag value ..."]
  [--node-args="--max-semi-space-size=4 --single-threaded-gc --cpu-prof --cpu-prof-dir=bench/results/prof"] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  brokers: 'amqp,redis',
  batches: '1,10',
  tasks: '100000',
  workers: '8',
  'task-names': '8',
  procs: '1',
  rate: '0',
  'with-sent': false,
  'idle-seconds': '10',
  'poll-ms': '100',
  'redis-url': 'redis://127.0.0.1:6379/0',
  'exporter-args': '',
  // Replaces the exporter's node flags (default: the --max-semi-space-size=4 --single-threaded-gc of npm start).
  'node-args': '',
});

const brokers = splitList(opts.brokers);
const batches = opts.batches.split(',').map(Number);

async function runOne(broker, batch, target) {
  const label = `${broker} batch=${batch}`;
  const exporterArgs = opts['exporter-args'].split(/\s+/).filter(Boolean);
  const nodeArgs = opts['node-args'].split(/\s+/).filter(Boolean);
  console.error(`[throughput] ${label}: starting exporter`);
  return withExporter({ broker, target, extraArgs: exporterArgs, nodeArgs }, async ({ exporter, baseline, publish }) => {
    const cpuBefore = exporter.cpuSeconds();
    const args = [
      '--tasks',
      opts.tasks,
      '--workers',
      opts.workers,
      '--task-names',
      opts['task-names'],
      '--batch',
      String(batch),
      '--procs',
      opts.procs,
      '--rate',
      opts.rate,
      '--heartbeats',
    ];
    if (opts['with-sent']) args.push('--with-sent');
    console.error(`[throughput] ${label}: publishing ${opts.tasks} tasks`);
    const generator = publish(args);
    let published = null;
    generator.done.then(
      (r) => (published = r),
      () => undefined,
    );
    const wait = await waitForEvents(exporter, {
      baseline,
      expected: () => published?.published_events ?? null,
      producerDone: () => generator.isDone(),
      pollMs: Number(opts['poll-ms']),
      idleMs: Number(opts['idle-seconds']) * 1000,
    });
    published = await generator.done;
    const memory = exporter.memory();
    const dropped = samplesByLabel(wait.lastText, 'celery_autopilot_events_dropped_total', 'reason');
    const byType = samplesByLabel(wait.lastText, 'celery_autopilot_events_received_total', 'type');

    const { firstChange, lastChange } = wait;
    const span = firstChange && lastChange ? (lastChange.t - firstChange.t) / 1000 : 0;
    const counted = wait.counted;
    // From the generator's first publish to the last poll that saw the count move.
    const wallSpan = lastChange ? (performance.timeOrigin + lastChange.t) / 1000 - published.started_at : 0;
    return {
      broker,
      batch,
      tasks: Number(opts.tasks),
      workers: Number(opts.workers),
      task_names: Number(opts['task-names']),
      published_messages: published.published_messages,
      published_events: published.published_events,
      generator_seconds: published.seconds,
      generator_events_per_second: published.events_per_second,
      redis_unrouted_messages: published.unrouted_messages,
      counted_events: counted,
      lost_events: published.published_events - counted,
      exporter_events_per_second: span > 0 ? Math.round((lastChange.count - firstChange.count) / span) : null,
      exporter_events_per_second_wall: wallSpan > 0 ? Math.round(counted / wallSpan) : null,
      exporter_lag_seconds: lastChange ? Math.max(0, (performance.timeOrigin + lastChange.t) / 1000 - published.ended_at) : null,
      cpu_seconds: wait.cpuAtLastChange - cpuBefore,
      cpu_seconds_per_100k_events: counted > 0 ? ((wait.cpuAtLastChange - cpuBefore) / counted) * 100_000 : null,
      peak_rss_bytes: memory.peakRss,
      rss_bytes_at_end: memory.rss,
      events_by_type: byType,
      dropped_by_reason: dropped,
      broker_reconnects: sumMetric(wait.lastText, 'celery_autopilot_broker_reconnects_total'),
      scrapes_during_run: wait.scrapes,
      exporter_log_tail: exporter.logTail().slice(-10),
      timed_out: wait.timedOut,
    };
  });
}

const HEADER = [
  'broker',
  'batch',
  'published',
  'counted',
  'lost',
  'gen ev/s',
  'exporter ev/s',
  'ev/s (wall)',
  'CPU s/100k ev',
  'peak RSS MB',
  'reconnects',
  'dropped',
];

/** The table's cells for a case that ran. */
const cellsOf = (r) => [
  r.broker,
  String(r.batch),
  String(r.published_events),
  String(r.counted_events),
  String(r.lost_events),
  String(r.generator_events_per_second),
  String(r.exporter_events_per_second ?? 'n/a'),
  String(r.exporter_events_per_second_wall ?? 'n/a'),
  r.cpu_seconds_per_100k_events === null ? 'n/a' : r.cpu_seconds_per_100k_events.toFixed(2),
  String(mb(r.peak_rss_bytes)),
  String(r.broker_reconnects),
  JSON.stringify(r.dropped_by_reason),
];

async function main() {
  const env = environment();
  const rows = await runOnBrokers('throughput', {
    brokers,
    redisUrl: opts['redis-url'],
    cases: batches,
    runCase: runOne,
    describe: (broker, batch) => ({ label: `${broker} batch=${batch}`, row: { broker, batch } }),
  });
  finishRows('throughput', rows, { header: HEADER, cellsOf, environment: env, options: opts });
}

main().catch((error) => {
  console.error(`throughput: ${error.stack ?? error}`);
  process.exit(1);
});
