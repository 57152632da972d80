#!/usr/bin/env node
/* global console, process, fetch, AbortSignal */
/**
 * celery-exporter beside celery-autopilot, in the same run: one paced generator, both exporters
 * consuming the same event stream at the same time (a RabbitMQ topic exchange and Redis pub/sub
 * hand every event to each), so both are measured under the same machine state. Reports each
 * one's CPU-seconds per 100k task events counted. This is also how to tell one machine from
 * another: the paced target (bench/README.md) was set against celery-exporter's cost on the machine it
 * was measured on.
 *
 *   node bench/celery-exporter-side-by-side.mjs --ce-src /path/to/celery-exporter-checkout [--brokers amqp,redis]
 *
 * celery-exporter is NOT part of this repository: the script runs `/usr/bin/python3 cli.py` in
 * the checkout named on the command line, with its Python dependencies from the OS packages
 * (Debian: python3-celery python3-prometheus-client python3-loguru python3-flask python3-waitress
 * python3-click). Its only import with no Debian package, `pretty_errors` (it only makes
 * tracebacks pretty), is given an empty module in a temporary directory if Python cannot find one.
 * Both count task events in `celery_task_{received,started,succeeded}_total`: those sums are
 * what "counted" means here, for both, so the two figures divide the same thing.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cpuSeconds,
  environment,
  freePort,
  mb,
  memoryBytes,
  parseBenchArgs,
  printTable,
  runOnBrokers,
  sleep,
  splitList,
  terminate,
  sumMetric,
  withExporter,
  writeResults,
} from './exporter-process.mjs';

const USAGE = `usage: node bench/celery-exporter-side-by-side.mjs --ce-src DIR [--brokers amqp,redis]
  [--python /usr/bin/python3] [--tasks 33334] [--rate 1500] [--workers 10] [--task-names 20]
  [--redis-url redis://127.0.0.1:6379/0] [--out file.json]`;

const opts = parseBenchArgs(USAGE, {
  'ce-src': null,
  python: '/usr/bin/python3',
  brokers: 'amqp,redis',
  tasks: '33334',
  rate: '1500',
  workers: '10',
  'task-names': '20',
  'redis-url': 'redis://127.0.0.1:6379/0',
});
if (!opts['ce-src'] || !existsSync(join(opts['ce-src'], 'cli.py'))) {
  console.error(`--ce-src must name a celery-exporter checkout (a directory holding cli.py)\n${USAGE}`);
  process.exit(2);
}

const TASK_FAMILIES = ['celery_task_received_total', 'celery_task_started_total', 'celery_task_succeeded_total'];
const taskEvents = (text) => TASK_FAMILIES.reduce((sum, name) => sum + sumMetric(text, name), 0);

async function startCeleryExporter(brokerUrl, keyprefix) {
  const port = await freePort();
  const stubs = mkdtempSync(join(tmpdir(), 'bench-ce-'));
  writeFileSync(join(stubs, 'pretty_errors.py'), '# empty stand-in: only imported for prettier tracebacks\n');
  const args = [join(opts['ce-src'], 'cli.py'), '--broker-url', brokerUrl, '--port', String(port), '--log-level', 'WARNING'];
  if (keyprefix) args.push('--broker-transport-option', `global_keyprefix=${keyprefix}`);
  const child = spawn(opts.python, args, {
    cwd: opts['ce-src'],
    // The checkout first: a real pretty_errors, where installed, is found before the stand-in.
    env: { ...process.env, PYTHONPATH: `${opts['ce-src']}:${stubs}`, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (c) => (log = (log + c.toString('utf8')).slice(-4000)));
  const exited = once(child, 'exit');
  const running = () => child.exitCode === null && child.signalCode === null;
  const url = `http://127.0.0.1:${port}/metrics`;
  const handle = {
    cpuSeconds: () => cpuSeconds(child.pid),
    memory: () => memoryBytes(child.pid),
    // Each of its scrapes inspects the workers and waits for replies: allow for that.
    count: async () => taskEvents(await (await fetch(url, { signal: AbortSignal.timeout(60_000) })).text()),
    async stop() {
      await terminate(child, exited, 10_000);
      rmSync(stubs, { recursive: true, force: true });
    },
  };
  for (let i = 0; ; i += 1) {
    if (!running() || i > 300) {
      await handle.stop();
      throw new Error(`celery-exporter did not start:\n${log}`);
    }
    try {
      await handle.count();
      break;
    } catch {
      await sleep(200); // not listening yet
    }
  }
  await sleep(3000); // its event receiver subscribes in a thread after the HTTP server is up
  return handle;
}

async function runCase(broker, _item, target) {
  // withExporter gives a Redis run its own key prefix; celery-exporter is told the same one.
  return withExporter({ broker, target, extraArgs: [] }, async ({ exporter, publish, keyprefix }) => {
    const ce = await startCeleryExporter(target.url, keyprefix);
    try {
      const ours = { before: await countOurs(exporter), cpu: exporter.cpuSeconds() };
      const theirs = { before: await ce.count(), cpu: ce.cpuSeconds() };
      const expected = Number(opts.tasks) * 3;
      const generator = publish([
        ...['--tasks', opts.tasks, '--workers', opts.workers, '--task-names', opts['task-names']],
        ...['--batch', '1', '--rate', opts.rate, '--heartbeats'],
      ]);
      const sides = [
        { side: ours, count: () => countOurs(exporter), cpu: () => exporter.cpuSeconds() },
        { side: theirs, count: () => ce.count(), cpu: () => ce.cpuSeconds() },
      ];
      for (const s of sides) Object.assign(s.side, { last: s.side.before, cpuAtLast: s.side.cpu, changedAt: Date.now() });
      // A Prometheus-like 5 s scrape; done when both counted every task event, or neither moved
      // for 15 s after the generator finished.
      for (;;) {
        await sleep(5000);
        for (const s of sides) {
          const n = await s.count();
          if (n !== s.side.last) Object.assign(s.side, { last: n, cpuAtLast: s.cpu(), changedAt: Date.now() });
        }
        if (sides.every((s) => s.side.last - s.side.before >= expected)) break;
        if (generator.isDone() && sides.every((s) => Date.now() - s.side.changedAt > 15_000)) break;
      }
      const published = await generator.done;
      const figures = (s, memory) => {
        const counted = s.last - s.before;
        return {
          task_events_counted: counted,
          cpu_seconds_per_100k_events: counted > 0 ? ((s.cpuAtLast - s.cpu) / counted) * 100_000 : null,
          peak_rss_bytes: memory.peakRss,
        };
      };
      return {
        broker,
        published_events: published.published_events,
        task_events_expected: expected,
        gen_events_per_second: published.events_per_second,
        celery_autopilot: figures(ours, exporter.memory()),
        celery_exporter: figures(theirs, ce.memory()),
      };
    } finally {
      await ce.stop();
    }
  });
}

async function countOurs(exporter) {
  return taskEvents((await exporter.scrape()).text);
}

const rows = await runOnBrokers('celery-exporter-side-by-side', {
  brokers: splitList(opts.brokers),
  redisUrl: opts['redis-url'],
  cases: [null],
  runCase,
  describe: (broker) => ({ label: broker, row: { broker } }),
});
printTable(
  [
    'broker',
    'task events',
    'autopilot counted',
    'autopilot CPU s/100k',
    'autopilot RSS MB',
    'celery-exporter counted',
    'celery-exporter CPU s/100k',
    'celery-exporter RSS MB',
  ],
  rows.map((r) =>
    r.error
      ? [r.broker, `error: ${r.error}`]
      : [
          r.broker,
          String(r.task_events_expected),
          String(r.celery_autopilot.task_events_counted),
          r.celery_autopilot.cpu_seconds_per_100k_events?.toFixed(2) ?? 'n/a',
          String(mb(r.celery_autopilot.peak_rss_bytes)),
          String(r.celery_exporter.task_events_counted),
          r.celery_exporter.cpu_seconds_per_100k_events?.toFixed(2) ?? 'n/a',
          String(mb(r.celery_exporter.peak_rss_bytes)),
        ],
  ),
);
const out = writeResults(
  'celery-exporter-side-by-side',
  { date: new Date().toISOString(), environment: environment(), options: opts, results: rows },
  { out: opts.out },
);
console.log(`\nresults written to ${out}`);
if (rows.some((r) => r.error)) process.exitCode = 1;
