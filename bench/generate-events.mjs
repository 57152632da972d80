#!/usr/bin/env node
/* global console, process, Buffer, URL, setTimeout, clearTimeout */
/**
 * Load generator: publishes Celery 5.2.6-shaped events as fast as it can (or at --rate), on
 * RabbitMQ or Redis, exactly as real workers and clients put them on the wire (docs/wire-protocol.md §A).
 *
 *   node bench/generate-events.mjs --broker amqp://guest:guest@127.0.0.1:5672/bench \
 *        --tasks 100000 --workers 8 --task-names 8 --batch 10 --heartbeats
 *
 * Each task is task-received, task-started, task-succeeded from one worker (plus a client
 * task-sent with --with-sent). --batch 1 sends one event per message with routing keys
 * task.received... (eventlet/gevent shape); --batch B>1 sends prefork-style task.multi arrays
 * of up to B events per worker. Prints one JSON line with the totals at the end.
 *
 * Nothing is routed unless a consumer is already bound/subscribed: start the exporter first.
 */
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { Redis } from 'ioredis';

const HEARTBEAT_FREQ_SECONDS = 2.0;

const USAGE = `usage: node bench/generate-events.mjs --broker <amqp://...|redis://...> [options]
  --tasks N          tasks to emit (3 events each)                        [10000]
  --workers W        worker nodes worker<i>@bench                         [4]
  --task-names T     task names bench.tasks.t<j>; task i runs name (i/W)%T on worker i%W,
                     so tasks >= W*T uses every worker x name pair        [4]
  --batch B          1: one event per message (task.received...);
                     >1: task.multi arrays of up to B events per worker   [1]
  --with-sent        also publish a client task-sent (routing key task.sent) per task
  --heartbeats       worker-online at start, worker-heartbeat every 2 s and at the end
  --keyprefix P      Redis kombu global_keyprefix                          ['']
  --procs P          fork P publishing processes, each owning every P-th worker [1]
  --rate R           cap at R messages/s in total (0 = as fast as possible) [0]
  --chunk C          Redis: PUBLISH commands per pipeline                  [500]
  --max-seconds S    abort after S seconds                                 [1800]`;

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      broker: { type: 'string' },
      keyprefix: { type: 'string', default: '' },
      tasks: { type: 'string', default: '10000' },
      workers: { type: 'string', default: '4' },
      'task-names': { type: 'string', default: '4' },
      batch: { type: 'string', default: '1' },
      'with-sent': { type: 'boolean', default: false },
      heartbeats: { type: 'boolean', default: false },
      procs: { type: 'string', default: '1' },
      rate: { type: 'string', default: '0' },
      chunk: { type: 'string', default: '500' },
      'max-seconds': { type: 'string', default: '1800' },
      'proc-index': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help || !values.broker) {
    console.error(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const int = (name, min) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const opts = {
    broker: values.broker,
    keyprefix: values.keyprefix,
    tasks: int('tasks', 0),
    workers: int('workers', 1),
    taskNames: int('task-names', 1),
    batch: int('batch', 1),
    withSent: values['with-sent'],
    heartbeats: values.heartbeats,
    procs: int('procs', 1),
    rate: Number(values.rate),
    chunk: int('chunk', 1),
    maxSeconds: Number(values['max-seconds']),
    procIndex: values['proc-index'] === undefined ? undefined : Number(values['proc-index']),
  };
  if (!(opts.rate >= 0)) throw new Error('--rate must be >= 0');
  if (!(opts.maxSeconds > 0)) throw new Error('--max-seconds must be > 0');
  if (!/^(amqps?|redis|rediss):\/\//.test(opts.broker)) throw new Error('--broker must be amqp://, amqps://, redis:// or rediss://');
  // A worker belongs to exactly one process, so each worker's event stream stays in order.
  opts.procs = Math.min(opts.procs, opts.workers);
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Event bodies in Python json.dumps style (", " and ": " separators, floats keep their ".0"),
// keys in the order Celery 5.2.6 emits them (docs/wire-protocol.md §A5).

/** Python's repr(float): always a decimal point or exponent, exponent form below 1e-4. */
function pyFloat(x) {
  if (Number.isInteger(x) && Math.abs(x) < 1e16) return `${x}.0`;
  const abs = Math.abs(x);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e16)) {
    const [mantissa, exponent] = x.toExponential().split('e');
    const sign = exponent[0] === '-' ? '-' : '+';
    const digits = exponent.replace(/^[+-]/, '').padStart(2, '0');
    return `${mantissa}e${sign}${digits}`;
  }
  return String(x);
}

/** time.time() with sub-millisecond digits, as Celery stamps events. */
function now() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

function workerNode(index) {
  const hostname = `worker${index}@bench`;
  return {
    index,
    hostname,
    hostJson: JSON.stringify(hostname),
    headers: { hostname },
    pid: 10_000 + index,
    clock: 0,
    processed: 0,
    buffer: [],
  };
}

function common(node) {
  node.clock += 1;
  return `{"hostname": ${node.hostJson}, "utcoffset": 0, "pid": ${node.pid}, "clock": ${node.clock}, `;
}

function taskSent(client, id, nameJson, a, b) {
  return (
    `${common(client)}"uuid": "${id}", "root_id": "${id}", "parent_id": null, "name": ${nameJson}, ` +
    `"args": "(${a}, ${b})", "kwargs": "{}", "retries": 0, "eta": null, "expires": null, ` +
    `"queue": "celery", "exchange": "", "routing_key": "celery", "timestamp": ${pyFloat(now())}, "type": "task-sent"}`
  );
}

function taskReceived(node, id, nameJson, a, b) {
  return (
    `${common(node)}"uuid": "${id}", "name": ${nameJson}, "args": "(${a}, ${b})", "kwargs": "{}", ` +
    `"root_id": "${id}", "parent_id": null, "retries": 0, "eta": null, "expires": null, ` +
    `"timestamp": ${pyFloat(now())}, "type": "task-received"}`
  );
}

function taskStarted(node, id) {
  return `${common(node)}"uuid": "${id}", "timestamp": ${pyFloat(now())}, "type": "task-started"}`;
}

function taskSucceeded(node, id, result, runtime) {
  return (
    `${common(node)}"uuid": "${id}", "result": "${result}", "runtime": ${pyFloat(runtime)}, ` +
    `"timestamp": ${pyFloat(now())}, "type": "task-succeeded"}`
  );
}

function workerEvent(node, type) {
  const load = (1 + (node.index % 7) / 10).toFixed(2);
  return (
    `${common(node)}"freq": ${pyFloat(HEARTBEAT_FREQ_SECONDS)}, "active": 0, "processed": ${node.processed}, ` +
    `"loadavg": [${pyFloat(Number(load))}, 0.7, 0.28], "sw_ident": "py-celery", "sw_ver": "5.2.6", ` +
    `"sw_sys": "Linux", "timestamp": ${pyFloat(now())}, "type": "${type}"}`
  );
}

/** Log-uniform between 1 ms and ~3 s, so the runtime histogram fills most buckets. */
function runtimeSeconds() {
  return 10 ** (-3 + Math.random() * 3.5);
}

// ---------------------------------------------------------------------------------------------
// Publishers. publish() returns undefined, or a promise when the caller must wait (backpressure).

async function amqpPublisher(url) {
  const connection = await amqp.connect(url);
  connection.on('error', () => undefined); // surfaced through 'close' and the failing publish
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  let closed = null;
  const whenClosed = new Promise((_, reject) => {
    channel.once('close', () => {
      closed = new Error('AMQP channel closed while publishing');
      reject(closed);
    });
  });
  whenClosed.catch(() => undefined);
  await channel.assertExchange('celeryev', 'topic', { durable: true, autoDelete: false });
  const optionsByHost = new Map();
  return {
    unrouted: null,
    publish(routingKey, headers, body) {
      let options = optionsByHost.get(headers);
      if (!options) {
        options = { contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 1, priority: 0, headers };
        optionsByHost.set(headers, options);
      }
      if (closed) throw closed;
      // The socket buffer is full: wait until it drains rather than queue without bound.
      if (!channel.publish('celeryev', routingKey, Buffer.from(body), options)) return Promise.race([once(channel, 'drain'), whenClosed]);
      return undefined;
    },
    // The broker handles a channel's frames in order, so close-ok means every publish arrived.
    async finish() {
      await channel.close();
      await connection.close();
    },
    async abort() {
      await connection.close().catch(() => undefined);
    },
  };
}

function redisDb(url) {
  const u = new URL(url);
  const raw = u.pathname.replace(/^\//, '') || u.searchParams.get('db') || '0';
  return Number(raw);
}

async function redisPublisher(url, keyprefix, chunk) {
  const db = redisDb(url);
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on('error', () => undefined); // a failed exec rejects and ends the run
  await redis.connect();
  const channelPrefix = `${keyprefix}/${db}.celeryev/`;
  const maxInFlight = 4;
  const inFlight = [];
  const stats = { unrouted: 0 };
  let pipeline = redis.pipeline();
  let queued = 0;

  const tally = (results) => {
    for (const [error, receivers] of results) {
      if (error) throw error;
      if (receivers === 0) stats.unrouted += 1;
    }
  };
  const flush = () => {
    if (queued === 0) return;
    inFlight.push(pipeline.exec().then(tally));
    pipeline = redis.pipeline();
    queued = 0;
  };

  return {
    get unrouted() {
      return stats.unrouted;
    },
    publish(routingKey, headers, body) {
      // The kombu envelope as captured (docs/wire-protocol.md §A3), body base64, one delivery_tag per message.
      const envelope =
        `{"body": "${Buffer.from(body).toString('base64')}", "content-encoding": "utf-8", ` +
        `"content-type": "application/json", "headers": {"hostname": ${JSON.stringify(headers.hostname)}}, ` +
        `"properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "${routingKey}"}, ` +
        `"priority": 0, "body_encoding": "base64", "delivery_tag": "${randomUUID()}"}}`;
      pipeline.publish(channelPrefix + routingKey, envelope);
      queued += 1;
      if (queued >= chunk) {
        flush();
        // Pipelines complete in order on one connection: waiting for the oldest bounds memory.
        if (inFlight.length >= maxInFlight) return inFlight.shift();
      }
      return undefined;
    },
    async finish() {
      flush();
      await Promise.all(inFlight.splice(0));
      await redis.quit();
    },
    async abort() {
      redis.disconnect();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One publishing process: owns the workers w with w % procs === procIndex.

async function connect(opts) {
  return opts.broker.startsWith('amqp') ? amqpPublisher(opts.broker) : redisPublisher(opts.broker, opts.keyprefix, opts.chunk);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function publishShare(opts, procIndex, publisher) {
  const nodes = [];
  for (let w = procIndex; w < opts.workers; w += opts.procs) nodes.push(workerNode(w));
  const nodeByWorker = new Map(nodes.map((n) => [n.index, n]));
  const nameJson = Array.from({ length: opts.taskNames }, (_, j) => JSON.stringify(`bench.tasks.t${j}`));
  const client = { ...workerNode(0), hostname: `gen${process.pid}@bench`, pid: process.pid };
  client.hostJson = JSON.stringify(client.hostname);
  client.headers = { hostname: client.hostname };
  const rate = opts.rate > 0 ? opts.rate / opts.procs : 0;
  const deadline = performance.now() + opts.maxSeconds * 1000;

  let messages = 0;
  let events = 0;
  let owned = 0;
  const started = performance.now();
  let nextHeartbeat = started + HEARTBEAT_FREQ_SECONDS * 1000;

  // Every message goes through here: count, pace, and honour backpressure.
  const send = async (routingKey, headers, body, eventCount) => {
    messages += 1;
    events += eventCount;
    const wait = publisher.publish(routingKey, headers, body);
    if (wait) await wait;
    if (rate > 0) {
      const ahead = (messages / rate) * 1000 - (performance.now() - started);
      if (ahead > 5) await sleep(ahead);
    }
  };
  const sendWorkerEvents = async (type) => {
    const routingKey = type.replace('-', '.');
    for (const node of nodes) await send(routingKey, node.headers, workerEvent(node, type), 1);
  };
  const flushBatch = async (node) => {
    if (node.buffer.length === 0) return;
    const count = node.buffer.length;
    const body = `[${node.buffer.join(', ')}]`;
    node.buffer = [];
    await send('task.multi', node.headers, body, count);
  };
  const taskEvent = async (node, routingKey, body) => {
    if (opts.batch === 1) return send(routingKey, node.headers, body, 1);
    node.buffer.push(body);
    if (node.buffer.length >= opts.batch) await flushBatch(node);
    return undefined;
  };

  if (opts.heartbeats) await sendWorkerEvents('worker-online');
  for (let i = 0; i < opts.tasks; i += 1) {
    const node = nodeByWorker.get(i % opts.workers);
    if (!node) continue;
    const name = nameJson[Math.floor(i / opts.workers) % opts.taskNames];
    const id = randomUUID();
    const a = i % 1000;
    const b = (i * 7) % 1000;
    if (opts.withSent) await send('task.sent', client.headers, taskSent(client, id, name, a, b), 1);
    await taskEvent(node, 'task.received', taskReceived(node, id, name, a, b));
    await taskEvent(node, 'task.started', taskStarted(node, id));
    node.processed += 1;
    await taskEvent(node, 'task.succeeded', taskSucceeded(node, id, a + b, runtimeSeconds()));
    owned += 1;
    if ((owned & 255) === 0) {
      const t = performance.now();
      if (t > deadline) throw new Error(`aborted after --max-seconds ${opts.maxSeconds}`);
      if (opts.heartbeats && t >= nextHeartbeat) {
        nextHeartbeat = t + HEARTBEAT_FREQ_SECONDS * 1000;
        await sendWorkerEvents('worker-heartbeat');
      }
    }
  }
  for (const node of nodes) await flushBatch(node);
  if (opts.heartbeats) await sendWorkerEvents('worker-heartbeat');
  await publisher.finish();
  const ended = performance.now();
  return {
    published_messages: messages,
    published_events: events,
    unrouted_messages: publisher.unrouted,
    started_at: (performance.timeOrigin + started) / 1000,
    ended_at: (performance.timeOrigin + ended) / 1000,
  };
}

function summary(opts, parts) {
  const sum = (key) => parts.reduce((s, p) => s + p[key], 0);
  const startedAt = Math.min(...parts.map((p) => p.started_at));
  const endedAt = Math.max(...parts.map((p) => p.ended_at));
  const seconds = Math.max(endedAt - startedAt, 1e-6);
  const unrouted = parts.some((p) => p.unrouted_messages === null) ? null : sum('unrouted_messages');
  return {
    published_messages: sum('published_messages'),
    published_events: sum('published_events'),
    seconds: Number(seconds.toFixed(3)),
    events_per_second: Math.round(sum('published_events') / seconds),
    messages_per_second: Math.round(sum('published_messages') / seconds),
    // Redis only: messages PUBLISH delivered to nobody (no subscriber); null on AMQP.
    unrouted_messages: unrouted,
    broker: opts.broker.startsWith('amqp') ? 'amqp' : 'redis',
    tasks: opts.tasks,
    workers: opts.workers,
    task_names: opts.taskNames,
    batch: opts.batch,
    with_sent: opts.withSent,
    heartbeats: opts.heartbeats,
    procs: opts.procs,
    rate: opts.rate,
    started_at: startedAt,
    ended_at: endedAt,
  };
}

// ---------------------------------------------------------------------------------------------
// Entry points: a single process, a parent that forks --procs children, or one of those children.

async function runSingle(opts) {
  const publisher = await connect(opts);
  try {
    return await publishShare(opts, 0, publisher);
  } catch (error) {
    await publisher.abort();
    throw error;
  }
}

/** Child: connect, report ready, publish on "go", report the result. */
async function runChild(opts) {
  const publisher = await connect(opts);
  const go = once(process, 'message');
  process.send({ ready: true });
  const [message] = await go;
  if (!message?.go) throw new Error('expected go from parent');
  try {
    const result = await publishShare(opts, opts.procIndex, publisher);
    process.send({ result });
  } catch (error) {
    await publisher.abort();
    throw error;
  }
}

/** Parent: all children connect first, then start together, so the rate covers publishing only. */
async function runParent(opts, argv) {
  const self = fileURLToPath(import.meta.url);
  const children = [];
  const exits = [];
  for (let k = 0; k < opts.procs; k += 1) {
    const child = fork(self, [...argv, '--proc-index', String(k)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    exits.push(once(child, 'exit'));
  }
  const killAll = () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  };
  const withTimeout = (promise, ms, what) => {
    let timer;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    });
    return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
  };
  const nextMessage = (child) =>
    new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`generator child ${child.pid} exited with ${code}`)));
    });
  try {
    await withTimeout(Promise.all(children.map(nextMessage)), 30_000, 'children to connect');
    const results = children.map(nextMessage);
    for (const child of children) child.send({ go: true });
    const parts = await withTimeout(Promise.all(results), opts.maxSeconds * 1000 + 10_000, 'children to publish');
    await withTimeout(Promise.all(exits), 10_000, 'children to exit');
    return parts.map((m) => m.result);
  } catch (error) {
    killAll();
    throw error;
  }
}

async function main() {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  // The last resort against any hang (a broker that stops reading, a lost child): exit anyway.
  setTimeout(
    () => {
      console.error(`generate-events: still running after --max-seconds ${opts.maxSeconds}, exiting`);
      process.exit(1);
    },
    opts.maxSeconds * 1000 + 30_000,
  ).unref();
  if (opts.procIndex !== undefined) {
    await runChild(opts);
    process.disconnect();
    return;
  }
  const parts = opts.procs > 1 ? await runParent(opts, argv) : [await runSingle(opts)];
  console.log(JSON.stringify(summary(opts, parts)));
}

/**
 * For the benchmark runners: runs this generator as a child process with `args` and resolves
 * with its final JSON line. A separate process, so its CPU is not charged to the runner.
 */
export function spawnGenerator(args, { timeoutMs = 30 * 60_000 } = {}) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let finished = false;
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
  const done = new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      finished = true;
      const last = stdout.trim().split('\n').pop();
      if (code === 0 && last) {
        try {
          resolve(JSON.parse(last));
          return;
        } catch {
          // fall through to the error below
        }
      }
      reject(new Error(`generator exited with ${signal ?? code}: ${stderr.trim() || stdout.trim()}`));
    });
  });
  done.catch(() => undefined); // the caller awaits it; never an unhandled rejection meanwhile
  return { pid: child.pid, done, isDone: () => finished, kill: () => finished || child.kill('SIGTERM') };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error) => {
    console.error(`generate-events: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
