#!/usr/bin/env node
/* global console, process */
/**
 * Cardinality benchmark: what a large fleet costs at scrape time. 200 workers × 500 task names,
 * every pair used once (received + started + succeeded) plus heartbeats for every worker, then
 * the size of /metrics, its series count, scrape time (median of 3) and peak RSS.
 *
 * Runs: "default" (the shipped cardinality caps), "uncapped" (caps raised so nothing is folded)
 * and "small" (10 workers × 20 names, the small-footprint RSS number).
 *
 *   node bench/cardinality.mjs             # full sizes on RabbitMQ
 *   node bench/cardinality.mjs --quick     # 50 × 100 pairs, to check that it works
 *
 * Writes a table to stdout and JSON to bench/results/cardinality-<date>.json.
 */
import {
  countSeries,
  environment,
  finishRows,
  mb,
  median,
  parseBenchArgs,
  runOnBrokers,
  samplesByLabel,
  splitList,
  waitForEvents,
  withExporter,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/cardinality.mjs [--quick] [--brokers amqp[,redis]] [--runs default,uncapped,small]
  [--workers 200] [--task-names 500] [--tasks W*T] [--small-workers 10] [--small-task-names 20]
  [--small-tasks 10000] [--batch 10] [--uncapped-limit 100000] [--idle-seconds 10]
  [--redis-url redis://127.0.0.1:6379/0] [--exporter-args "..."] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  brokers: 'amqp',
  runs: 'default,uncapped,small',
  workers: '200',
  'task-names': '500',
  tasks: null,
  'small-workers': '10',
  'small-task-names': '20',
  'small-tasks': '10000',
  batch: '10',
  'uncapped-limit': '100000',
  'idle-seconds': '10',
  'redis-url': 'redis://127.0.0.1:6379/0',
  'exporter-args': '',
  quick: false,
});
if (opts.quick) {
  opts.workers = '50';
  opts['task-names'] = '100';
  opts['small-tasks'] = '5000';
}

const SCRAPES = 3;

function runPlan(name) {
  const big = { workers: Number(opts.workers), taskNames: Number(opts['task-names']) };
  const bigTasks = opts.tasks ? Number(opts.tasks) : big.workers * big.taskNames;
  const limit = opts['uncapped-limit'];
  switch (name) {
    case 'default':
      return { name, ...big, tasks: bigTasks, exporterArgs: [] };
    case 'uncapped':
      return {
        name,
        ...big,
        tasks: bigTasks,
        exporterArgs: [
          '--cardinality-max-task-names',
          limit,
          '--cardinality-max-hostnames',
          limit,
          '--cardinality-max-task-series',
          String(Number(limit) * 10),
        ],
      };
    case 'small':
      return {
        name,
        workers: Number(opts['small-workers']),
        taskNames: Number(opts['small-task-names']),
        tasks: Number(opts['small-tasks']),
        exporterArgs: [],
      };
    default:
      throw new Error(`unknown run ${name} (default, uncapped, small)`);
  }
}

/** Series per metric family, biggest first: shows where the bytes go. */
function seriesByFamily(text) {
  const counts = new Map();
  for (const match of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?=[{ ])/gm)) {
    const family = match[1].replace(/_(bucket|sum|count)$/, '');
    counts.set(family, (counts.get(family) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).slice(0, 12));
}

async function runOne(broker, plan, target) {
  const label = `${plan.name} on ${broker} (${plan.workers} workers × ${plan.taskNames} names, ${plan.tasks} tasks)`;
  if (plan.tasks < plan.workers * plan.taskNames) {
    console.error(`[cardinality] ${label}: fewer tasks than pairs, not every worker × name pair is used`);
  }
  const extra = [...plan.exporterArgs, ...opts['exporter-args'].split(/\s+/).filter(Boolean)];
  console.error(`[cardinality] ${label}: starting exporter ${extra.join(' ')}`);
  return withExporter({ broker, target, extraArgs: extra }, async ({ exporter, baseline, publish }) => {
    const args = [
      '--tasks',
      String(plan.tasks),
      '--workers',
      String(plan.workers),
      '--task-names',
      String(plan.taskNames),
      '--batch',
      opts.batch,
      '--heartbeats',
    ];
    console.error(`[cardinality] ${label}: publishing`);
    const generator = publish(args);
    // No polling while publishing: scraping a huge page would only slow the ingest down.
    const published = await generator.done;
    const wait = await waitForEvents(exporter, {
      baseline,
      expected: () => published.published_events,
      producerDone: () => true,
      pollMs: 1000,
      idleMs: Number(opts['idle-seconds']) * 1000,
    });
    const afterIngest = exporter.memory();

    const scrapes = [];
    for (let i = 0; i < SCRAPES; i += 1) scrapes.push(await exporter.scrape(120_000));
    const page = scrapes[scrapes.length - 1];
    const afterScrapes = exporter.memory();
    const received = samplesByLabel(page.text, 'celery_task_received_total', 'name');
    const hostnames = samplesByLabel(page.text, 'celery_task_received_total', 'hostname');
    return {
      run: plan.name,
      broker,
      workers: plan.workers,
      task_names: plan.taskNames,
      tasks: plan.tasks,
      exporter_args: plan.exporterArgs,
      published_events: published.published_events,
      counted_events: wait.counted,
      lost_events: published.published_events - wait.counted,
      metrics_bytes: page.bytes,
      series_lines: countSeries(page.text),
      scrape_ms_median: Math.round(median(scrapes.map((s) => s.ms)) * 10) / 10,
      scrape_ms_all: scrapes.map((s) => Math.round(s.ms * 10) / 10),
      distinct_task_names: Object.keys(received).length,
      distinct_hostnames: Object.keys(hostnames).length,
      label_overflow: samplesByLabel(page.text, 'celery_autopilot_label_overflow_total', 'label'),
      dropped_by_reason: samplesByLabel(page.text, 'celery_autopilot_events_dropped_total', 'reason'),
      series_by_family: seriesByFamily(page.text),
      rss_bytes_after_ingest: afterIngest.rss,
      peak_rss_bytes_after_ingest: afterIngest.peakRss,
      peak_rss_bytes: afterScrapes.peakRss,
    };
  });
}

const HEADER = [
  'run',
  'broker',
  'workers×names',
  'events',
  'lost',
  '/metrics bytes',
  'series',
  'scrape ms (median)',
  'RSS after ingest MB',
  'peak RSS MB',
  'names/hosts seen',
  'overflow',
];

/** The table's cells for a case that ran. */
const cellsOf = (r) => [
  r.run,
  r.broker,
  `${r.workers}×${r.task_names}`,
  String(r.counted_events),
  String(r.lost_events),
  String(r.metrics_bytes),
  String(r.series_lines),
  String(r.scrape_ms_median),
  String(mb(r.rss_bytes_after_ingest)),
  String(mb(r.peak_rss_bytes)),
  `${r.distinct_task_names}/${r.distinct_hostnames}`,
  JSON.stringify(r.label_overflow),
];

async function main() {
  const env = environment();
  const plans = opts.runs.split(',').map((r) => runPlan(r.trim()));
  const rows = await runOnBrokers('cardinality', {
    brokers: splitList(opts.brokers),
    redisUrl: opts['redis-url'],
    cases: plans,
    runCase: runOne,
    describe: (broker, plan) => ({ label: `${plan.name} on ${broker}`, row: { run: plan.name, broker } }),
  });
  finishRows('cardinality', rows, { header: HEADER, cellsOf, environment: env, options: opts });
}

main().catch((error) => {
  console.error(`cardinality: ${error.stack ?? error}`);
  process.exit(1);
});
