/* global console, process, Buffer, setTimeout, clearTimeout, fetch, AbortSignal */
/**
 * Runs the built exporter (dist/main.js) as a child process for the benchmarks, and reads what
 * the benchmarks measure about it: its /metrics, its CPU time and its peak RSS (from /proc, so
 * the numbers are the kernel's, not the exporter's own view of itself). Also what the benchmark
 * scripts share: their command line, real Celery workers, the results table and the JSON file.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnGenerator } from './generate-events.mjs';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const EXPORTER_MAIN = join(REPO_ROOT, 'dist', 'main.js');

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let clockTicks;
/** utime/stime in /proc/<pid>/stat are in clock ticks (USER_HZ), almost always 100. */
export function clockTicksPerSecond() {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU seconds of a process, all its threads included (GC, libuv pool). */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicksPerSecond();
}

/** VmHWM (peak resident set) and VmRSS (current), in bytes. */
export function memoryBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : null;
  };
  return { peakRss: kib('VmHWM'), rss: kib('VmRSS') };
}

/** A free TCP port on 127.0.0.1 (the OS picks; released just before the exporter binds it). */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** GET /metrics; the whole body is read, so `ms` is what a Prometheus scrape would wait. */
export async function scrape(baseUrl, timeoutMs = 60_000) {
  const started = performance.now();
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  const body = Buffer.from(await response.arrayBuffer());
  const ms = performance.now() - started;
  if (!response.ok) throw new Error(`GET /metrics: HTTP ${response.status}`);
  return { text: body.toString('utf8'), bytes: body.length, ms };
}

/** Sum of every sample of one metric family (all label sets), from Prometheus text. */
export function sumMetric(text, name) {
  let total = 0;
  let start = 0;
  for (;;) {
    const at = text.indexOf(name, start);
    if (at === -1) return total;
    start = at + name.length;
    if (at !== 0 && text[at - 1] !== '\n') continue; // inside a HELP/TYPE line or another name
    const next = text[start];
    if (next !== '{' && next !== ' ') continue; // a longer name with this one as prefix
    const lineEnd = text.indexOf('\n', start);
    const line = text.slice(at, lineEnd === -1 ? undefined : lineEnd);
    // The value follows the last space outside the label set (an optional timestamp is not used).
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) total += value;
  }
}

/** Samples per label value of one metric family, e.g. events received by `type`. */
export function samplesByLabel(text, name, label) {
  const out = {};
  const re = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm');
  const labelRe = new RegExp(`(?:^|,)${label}="((?:[^"\\\\]|\\\\.)*)"`);
  for (const match of text.matchAll(re)) {
    const value = labelRe.exec(match[1])?.[1] ?? '';
    out[value] = (out[value] ?? 0) + Number(match[2]);
  }
  return out;
}

/** Sample lines (not comments, not blank): the number of series a scrape carries. */
export function countSeries(text) {
  let lines = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (end > start && text.charCodeAt(start) !== 35 /* # */) lines += 1;
    start = end + 1;
  }
  return lines;
}

/** Events the exporter decoded so far (self-telemetry, every type). */
export function eventsReceived(text, selfPrefix = 'celery_autopilot_') {
  return sumMetric(text, `${selfPrefix}events_received_total`);
}

/**
 * SIGTERM, then `forceKill()` if the child is still running after `graceMs`; resolves once it has
 * exited (`exited` is its 'exit' event). Without a pid the spawn itself failed: nothing to stop.
 */
export async function terminate(child, exited, graceMs, forceKill = () => child.kill('SIGKILL')) {
  const running = () => child.pid !== undefined && child.exitCode === null && child.signalCode === null;
  if (!running()) return;
  child.kill('SIGTERM');
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  const outcome = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (outcome === 'late' && running()) {
    forceKill();
    await exited;
  }
}

/**
 * Starts `node dist/main.js` with the given settings and waits until GET /-/ready is 200 (broker
 * connected, event subscription live). Events published before that are not routed anywhere.
 */
export async function startExporter({
  // Another checkout's build (`--repo` of task-search, task-lists and result-waiters): the same measurement before a change.
  main = EXPORTER_MAIN,
  brokerUrl,
  keyprefix = '',
  extraArgs = [],
  logLevel = 'warn',
  readyTimeoutMs = 30_000,
  // The same V8 flags the shebang and `npm start` use (see src/main.ts).
  nodeArgs = ['--max-semi-space-size=4', '--single-threaded-gc'],
}) {
  if (!existsSync(main)) throw new Error(`${main} does not exist: run \`npm run build\` first`);
  const port = await freePort();
  const args = [
    ...nodeArgs,
    main,
    '--broker-url',
    brokerUrl,
    '--port',
    String(port),
    '--listen-address',
    '127.0.0.1',
    '--log-level',
    logLevel,
  ];
  if (keyprefix) args.push('--broker-transport-options-global-keyprefix', keyprefix);
  args.push(...extraArgs);

  // Spawned directly (no shell), so child.pid is the exporter itself and /proc reads are its own.
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = [];
  const keep = (chunk) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      tail.push(line);
      if (tail.length > 200) tail.shift();
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = once(child, 'exit');
  const baseUrl = `http://127.0.0.1:${port}`;

  const handle = {
    pid: child.pid,
    port,
    baseUrl,
    args,
    logTail: () => tail.slice(),
    isRunning: () => child.exitCode === null && child.signalCode === null,
    cpuSeconds: () => cpuSeconds(child.pid),
    memory: () => memoryBytes(child.pid),
    scrape: (timeoutMs) => scrape(baseUrl, timeoutMs),
    /** SIGTERM by PID, then SIGKILL by PID if it has not exited within `graceMs`. */
    stop: (graceMs = 15_000) => terminate(child, exited, graceMs, () => child.kill('SIGKILL')),
  };

  const deadline = performance.now() + readyTimeoutMs;
  let lastStatus = 'no answer';
  for (let attempt = 0; attempt < 10_000 && performance.now() < deadline; attempt += 1) {
    if (!handle.isRunning()) {
      throw new Error(`exporter exited (code ${child.exitCode}, signal ${child.signalCode}) before ready:\n${tail.join('\n')}`);
    }
    try {
      const response = await fetch(`${baseUrl}/-/ready`, { signal: AbortSignal.timeout(2000) });
      lastStatus = `HTTP ${response.status} ${await response.text()}`;
      if (response.status === 200) return handle;
    } catch (error) {
      lastStatus = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  await handle.stop();
  throw new Error(`exporter not ready after ${readyTimeoutMs} ms (last: ${lastStatus}):\n${tail.join('\n')}`);
}

/**
 * Polls /metrics until the exporter counted `expected()` events more than `baseline`, or the
 * count stopped moving for `idleMs` after `producerDone()`. Records when counting started and
 * ended and the exporter's CPU time at the last change, so rates cover processing only.
 */
export async function waitForEvents(
  exporter,
  { baseline, expected, producerDone, pollMs = 100, idleMs = 10_000, maxMs = 30 * 60_000, selfPrefix = 'celery_autopilot_' },
) {
  const started = performance.now();
  let last = baseline;
  let firstChange = null;
  let lastChange = null;
  let cpuAtLastChange = exporter.cpuSeconds();
  let scrapes = 0;
  let lastText = '';
  for (let i = 0; i < 1_000_000; i += 1) {
    const now = performance.now();
    if (now - started > maxMs) break;
    const page = await exporter.scrape();
    scrapes += 1;
    lastText = page.text;
    const count = eventsReceived(page.text, selfPrefix);
    const t = performance.now();
    if (count !== last) {
      // The first poll that sees movement marks the start; the events it already saw are not
      // part of the measured interval (they arrived at some unknown time before it).
      if (firstChange === null) firstChange = { t, count };
      lastChange = { t, count };
      cpuAtLastChange = exporter.cpuSeconds();
      last = count;
    }
    const target = expected();
    if (target !== null && count - baseline >= target) break;
    const idleSince = lastChange ? lastChange.t : started;
    if (producerDone() && t - idleSince > idleMs) break;
    if (!exporter.isRunning()) break;
    // Large pages are expensive: never spend more than about a third of the time scraping.
    await sleep(Math.max(pollMs, page.ms * 2));
  }
  return {
    counted: last - baseline,
    firstChange,
    lastChange,
    cpuAtLastChange,
    scrapes,
    lastText,
    timedOut: performance.now() - started > maxMs,
  };
}

/** rabbitmqctl add_vhost + set_permissions for guest; returns the amqp:// URL and a remover. */
export function createVhost(name) {
  const ctl = (...args) => execFileSync('rabbitmqctl', ['-q', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    ctl('add_vhost', name);
  } catch (error) {
    if (!String(error.stderr ?? error).includes('already exists')) throw error;
  }
  ctl('set_permissions', '-p', name, 'guest', '.*', '.*', '.*');
  return {
    vhost: name,
    url: `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(name)}`,
    remove() {
      try {
        ctl('delete_vhost', name);
      } catch {
        // already gone: nothing to clean
      }
    },
  };
}

/** Median of a few numbers. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Machine facts stored with the results, so numbers from different machines are not mixed up. */
export function environment() {
  const read = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  return {
    node: process.version,
    cpus: read('nproc', []),
    cpu_model: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? null,
    loadavg_at_start: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
    git_commit: read('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']),
    git_dirty: (read('git', ['--no-optional-locks', '-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
  };
}

/** A short random tag for vhost names, Redis key prefixes and node names, unique per run. */
export function randomSuffix() {
  return randomBytes(4).toString('hex');
}

/** Bytes as MB with one decimal, as the tables show them. */
export function mb(bytes) {
  return bytes === null ? null : Math.round((bytes / 1024 / 1024) * 10) / 10;
}

/** A comma-separated option (`--brokers amqp,redis`) as its non-empty items. */
export function splitList(value) {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

/**
 * Parses a benchmark's command line. `defaults` maps each option to its default: a string or a
 * boolean gives the option that type, `null` a string option without default. Every script also
 * takes `--out file.json` and `--help` (prints `usage` and exits), kept last so the options stored
 * with the results list in the same order as before.
 */
export function parseBenchArgs(usage, defaults) {
  const options = {};
  for (const [name, value] of Object.entries(defaults)) {
    options[name] = value === null ? { type: 'string' } : { type: typeof value, default: value };
  }
  options.out = { type: 'string' };
  options.help = { type: 'boolean', default: false };
  const { values } = parseArgs({ options, strict: true });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return values;
}

/**
 * Runs every case on every broker, one after the other. A RabbitMQ broker gets a vhost of its own
 * per benchmark run (nothing else publishes there, and deleting it removes every leftover); Redis
 * runs at `redisUrl`. A case that fails becomes a row `{ ...describe().row, error }` instead of
 * ending the benchmark, so the other cases still report.
 */
export async function runOnBrokers(name, { brokers, redisUrl, cases, runCase, describe }) {
  const rows = [];
  for (const broker of brokers) {
    if (broker !== 'amqp' && broker !== 'redis') throw new Error(`unknown broker ${broker}`);
    const vhost = broker === 'amqp' ? createVhost(`bench-${name}-${randomSuffix()}`) : null;
    const target = vhost ? { url: vhost.url } : { url: redisUrl };
    try {
      for (const item of cases) {
        try {
          rows.push(await runCase(broker, item, target));
        } catch (error) {
          const { label, row } = describe(broker, item);
          console.error(`[${name}] ${label} failed: ${error.message}`);
          rows.push({ ...row, error: error.message });
        }
      }
    } finally {
      vhost?.remove();
    }
  }
  return rows;
}

/**
 * One case of an event benchmark: starts the exporter on `target` (a Redis broker gets a key
 * prefix of its own), lets its wake-up traffic pass, then calls `measure` with the exporter, the
 * events it counted so far (`baseline`), `publish(args)`, which starts the load generator on the
 * same broker and prefix with `args` and returns it, and that `keyprefix` ('' on RabbitMQ). The
 * generator and the exporter are stopped when `measure` is done, whether it succeeded or not.
 */
export async function withExporter({ broker, target, extraArgs, nodeArgs }, measure) {
  const keyprefix = broker === 'redis' ? `bench-${randomSuffix()}:` : '';
  const exporter = await startExporter({ brokerUrl: target.url, keyprefix, extraArgs, ...(nodeArgs?.length ? { nodeArgs } : {}) });
  let generator;
  try {
    // The wake-up heartbeat broadcast and first inspect go out right after ready: let them pass.
    await sleep(1000);
    const baseline = eventsReceived((await exporter.scrape()).text);
    const publish = (args) => {
      generator = spawnGenerator(['--broker', target.url, ...args, ...(keyprefix ? ['--keyprefix', keyprefix] : [])]);
      return generator;
    };
    return await measure({ exporter, baseline, publish, keyprefix });
  } finally {
    generator?.kill();
    await exporter.stop();
  }
}

/** A Markdown table with padded columns; rows shorter than the header get empty cells. */
export function printTable(header, cells) {
  const full = cells.map((c) => header.map((_, i) => c[i] ?? ''));
  const widths = header.map((h, i) => Math.max(h.length, ...full.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of full) console.log(line(c));
}

/**
 * Writes a benchmark's JSON to `out`, or else to bench/results/<name>-<at>.json with `at` (an ISO
 * date, by default now) made safe for file names. Returns the path written.
 */
export function writeResults(name, payload, { out, at = new Date().toISOString() } = {}) {
  const file = out ?? join(REPO_ROOT, 'bench', 'results', `${name}-${at.replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(payload, null, 2) + '\n');
  return file;
}

/**
 * The end of a benchmark that makes one row per case (see runOnBrokers): its table on stdout, with
 * `cellsOf(row)` for the cases that ran and the case's keys, ERROR and the first line of the error
 * for those that failed; the rows with the machine facts and options in the JSON file; exit code 1
 * if any case failed.
 */
export function finishRows(name, rows, { header, cellsOf, environment: env, options }) {
  const failed = (r) => [
    ...Object.entries(r)
      .filter(([key]) => key !== 'error')
      .map(([, value]) => String(value)),
    'ERROR',
    r.error.split('\n')[0],
  ];
  printTable(
    header,
    rows.map((r) => (r.error ? failed(r) : cellsOf(r))),
  );
  const date = new Date().toISOString();
  const out = writeResults(name, { benchmark: name, date, environment: env, options, results: rows }, { out: options.out, at: date });
  console.log(`\nresults written to ${out}`);
  if (rows.some((r) => r.error)) process.exitCode = 1;
}

/** The test rig's Celery app (test/support/celery/app.py). */
export const CELERY_RIG_DIR = join(REPO_ROOT, 'test', 'support', 'celery');

/**
 * Starts one real Celery worker from the test rig's app and resolves once it logs
 * `rig: consuming <node>` (its pidbox is listened to). `pool` and `concurrency` default to
 * Celery's own; `events` adds -E. The worker gets a process group of its own, so stop() can kill
 * its pool children with it, and it dies with this process anyway (the rig's parent-death signal).
 */
export async function startCeleryWorker({
  brokerUrl,
  nodename,
  queues,
  keyprefix = '',
  pool,
  concurrency,
  events = false,
  // Debian's Celery 5.2.6: the python3 first on PATH may have no Celery.
  python = process.env.CELERY_PYTHON ?? '/usr/bin/python3',
  env = {},
  startTimeoutMs = 60_000,
  stopGraceMs = 10_000,
}) {
  const args = ['-m', 'celery', '-A', 'app', 'worker', '-n', nodename, '-l', 'info', '-Q', [queues].flat().join(',')];
  if (pool) args.push('--pool', pool);
  if (concurrency !== undefined) args.push('-c', String(concurrency));
  if (events) args.push('-E');
  args.push('--without-gossip', '--without-mingle');
  const child = spawn(python, args, {
    cwd: CELERY_RIG_DIR,
    env: {
      ...process.env,
      PYTHONPATH: CELERY_RIG_DIR,
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONUNBUFFERED: '1',
      CAP_BROKER_URL: brokerUrl,
      CAP_TRANSPORT_OPTIONS: JSON.stringify(keyprefix ? { global_keyprefix: keyprefix } : {}),
      CAP_PARENT_PID: String(process.pid),
      ...env,
    },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const exited = once(child, 'exit');
  const handle = {
    nodename,
    pid: child.pid,
    logTail: () => log,
    /** SIGTERM (warm shutdown), then SIGKILL of its process group if it has not exited in time. */
    stop: () =>
      terminate(child, exited, stopGraceMs, () => {
        try {
          process.kill(-child.pid, 'SIGKILL'); // the pool children too
        } catch {
          // already gone
        }
      }),
  };
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${nodename} not consuming after ${startTimeoutMs} ms:\n${log.slice(-2000)}`)),
        startTimeoutMs,
      );
      const onData = (chunk) => {
        log = (log + chunk.toString('utf8')).slice(-20_000);
        if (log.includes(`rig: consuming ${nodename}`)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      exited.then(
        () => {
          clearTimeout(timer);
          reject(new Error(`${nodename} exited before consuming:\n${log.slice(-2000)}`));
        },
        (error) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  } catch (error) {
    await handle.stop();
    throw error;
  }
  return handle;
}

/**
 * Sends tasks as a real Celery client does (the test rig's tools.py `send`: app.send_task with
 * task_send_sent_event), so the task-sent events carry Celery's own argsrepr/kwargsrepr. Resolves
 * with the task ids.
 */
export async function sendCeleryTasks({ brokerUrl, keyprefix = '', tasks, python = process.env.CELERY_PYTHON ?? '/usr/bin/python3' }) {
  const child = spawn(python, [join(CELERY_RIG_DIR, 'tools.py'), 'send'], {
    cwd: CELERY_RIG_DIR,
    env: {
      ...process.env,
      PYTHONPATH: CELERY_RIG_DIR,
      PYTHONDONTWRITEBYTECODE: '1',
      CAP_BROKER_URL: brokerUrl,
      CAP_TRANSPORT_OPTIONS: JSON.stringify(keyprefix ? { global_keyprefix: keyprefix } : {}),
      CAP_SEND_SENT_EVENT: '1',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  child.stdin.end(JSON.stringify(tasks));
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`tools.py send failed (${code}):\n${err.slice(-2000)}`);
  return JSON.parse(out);
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function timedGet(url) {
  const t0 = performance.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  return { ms: performance.now() - t0, status: res.status, text };
}

/**
 * Flower's task API under load, the same way for celery-autopilot and for Flower: until
 * `generator` is done, one GET /api/tasks?limit=100 then one GET /api/task/info/<id> of a task
 * from that page, 20 ms apart. Returns the count of requests and errors and p50/p99 per path.
 */
export async function sampleTaskApi(baseUrl, generator) {
  const list = [];
  const info = [];
  let errors = 0;
  let ids = [];
  while (!generator.isDone()) {
    const l = await timedGet(`${baseUrl}/api/tasks?limit=100`);
    if (l.status !== 200) errors++;
    else {
      list.push(l.ms);
      ids = Object.keys(JSON.parse(l.text));
    }
    if (ids.length > 0) {
      const i = await timedGet(`${baseUrl}/api/task/info/${encodeURIComponent(ids[Math.floor(Math.random() * ids.length)])}`);
      if (i.status === 200) info.push(i.ms);
      else errors++;
    }
    await sleep(20);
  }
  const [ls, is] = [list, info].map((a) => [...a].sort((x, y) => x - y));
  return {
    requests: list.length + info.length,
    errors,
    list_p50_ms: percentile(ls, 50),
    list_p99_ms: percentile(ls, 99),
    list_max_ms: ls[ls.length - 1] ?? null,
    info_p50_ms: percentile(is, 50),
    info_p99_ms: percentile(is, 99),
    info_max_ms: is[is.length - 1] ?? null,
  };
}
