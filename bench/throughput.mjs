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
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  REPO_ROOT,
  createVhost,
  environment,
  eventsReceived,
  samplesByLabel,
  sleep,
  startExporter,
  sumMetric,
  waitForEvents,
} from './exporter-process.mjs';
import { spawnGenerator } from './generate-events.mjs';

const { values: opts } = parseArgs({
  options: {
    brokers: { type: 'string', default: 'amqp,redis' },
    batches: { type: 'string', default: '1,10' },
    tasks: { type: 'string', default: '100000' },
    workers: { type: 'string', default: '8' },
    'task-names': { type: 'string', default: '8' },
    procs: { type: 'string', default: '1' },
    rate: { type: 'string', default: '0' },
    'with-sent': { type: 'boolean', default: false },
    'idle-seconds': { type: 'string', default: '10' },
    'poll-ms': { type: 'string', default: '100' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379/0' },
    'exporter-args': { type: 'string', default: '' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (opts.help) {
  console.log(`usage: node bench/throughput.mjs [--tasks 100000] [--brokers amqp,redis] [--batches 1,10]
  [--workers 8] [--task-names 8] [--procs 1] [--rate 0] [--with-sent] [--idle-seconds 10]
  [--poll-ms 100] [--redis-url redis://127.0.0.1:6379/0] [--exporter-args "--flag value ..."] [--out file.json]`);
  process.exit(0);
}

const brokers = opts.brokers.split(',').map((b) => b.trim()).filter(Boolean);
const batches = opts.batches.split(',').map(Number);
const suffix = () => randomBytes(4).toString('hex');
const mb = (bytes) => (bytes === null ? null : Math.round((bytes / 1024 / 1024) * 10) / 10);

async function runOne(broker, batch, target) {
  const label = `${broker} batch=${batch}`;
  const keyprefix = broker === 'redis' ? `bench-${suffix()}:` : '';
  const exporterArgs = opts['exporter-args'].split(/\s+/).filter(Boolean);
  console.error(`[throughput] ${label}: starting exporter`);
  const exporter = await startExporter({ brokerUrl: target.url, keyprefix, extraArgs: exporterArgs });
  let generator;
  try {
    // The wake-up heartbeat broadcast and first inspect go out right after ready: let them pass.
    await sleep(1000);
    const baseline = eventsReceived((await exporter.scrape()).text);
    const cpuBefore = exporter.cpuSeconds();
    const args = [
      '--broker', target.url,
      '--tasks', opts.tasks,
      '--workers', opts.workers,
      '--task-names', opts['task-names'],
      '--batch', String(batch),
      '--procs', opts.procs,
      '--rate', opts.rate,
      '--heartbeats',
    ];
    if (keyprefix) args.push('--keyprefix', keyprefix);
    if (opts['with-sent']) args.push('--with-sent');
    console.error(`[throughput] ${label}: publishing ${opts.tasks} tasks`);
    generator = spawnGenerator(args);
    let published = null;
    generator.done.then((r) => (published = r), () => undefined);
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
  } finally {
    generator?.kill();
    await exporter.stop();
  }
}

function printTable(rows) {
  const header = ['broker', 'batch', 'published', 'counted', 'lost', 'gen ev/s', 'exporter ev/s', 'ev/s (wall)', 'CPU s/100k ev', 'peak RSS MB', 'reconnects', 'dropped'];
  const cells = rows.map((r) =>
    r.error
      ? [r.broker, String(r.batch), 'ERROR', r.error.split('\n')[0], '', '', '', '', '', '', '', '']
      : [
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
        ],
  );
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}

async function main() {
  const env = environment();
  const rows = [];
  for (const broker of brokers) {
    if (broker !== 'amqp' && broker !== 'redis') throw new Error(`unknown broker ${broker}`);
    // One vhost per run: nothing else publishes there, and deleting it removes every leftover.
    const vhost = broker === 'amqp' ? createVhost(`bench-throughput-${suffix()}`) : null;
    const target = vhost ? { url: vhost.url } : { url: opts['redis-url'] };
    try {
      for (const batch of batches) {
        try {
          rows.push(await runOne(broker, batch, target));
        } catch (error) {
          console.error(`[throughput] ${broker} batch=${batch} failed: ${error.message}`);
          rows.push({ broker, batch, error: error.message });
        }
      }
    } finally {
      vhost?.remove();
    }
  }
  printTable(rows);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = opts.out ?? join(REPO_ROOT, 'bench', 'results', `throughput-${stamp}.json`);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, JSON.stringify({ benchmark: 'throughput', date: new Date().toISOString(), environment: env, options: opts, results: rows }, null, 2) + '\n');
  console.log(`\nresults written to ${out}`);
  if (rows.some((r) => r.error)) process.exitCode = 1;
}

main().catch((error) => {
  console.error(`throughput: ${error.stack ?? error}`);
  process.exit(1);
});
