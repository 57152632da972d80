#!/usr/bin/env node
/* global URLSearchParams */
/**
 * How long the console takes to render its busiest pages, in process (no HTTP, no browser): the
 * task list (a page of 50, newest first; with a search; filtered by worker), one task, and the
 * workers list, over a store of `--kept` tasks and `--workers` workers. Needs `npm run build`.
 *
 *   npm run build && node bench/console-pages.mjs [--kept 10000] [--workers 200] [--rounds 200]
 */
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { REPO_ROOT, printTable } from './exporter-process.mjs';

const { values: opts } = parseArgs({
  options: {
    kept: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '200' },
  },
  strict: true,
});
const dist = (p) => import(pathToFileURL(join(REPO_ROOT, 'dist', p)).href);
const { TaskStore } = await dist('tasks/task-store.js');
const { WorkerRegistry } = await dist('state/workers.js');
const { tasksPage } = await dist('console/tasks.js');
const { taskPage } = await dist('console/task.js');
const { workersPage } = await dist('console/workers.js');
const { overviewPage } = await dist('console/overview.js');
const { ClusterHistory } = await dist('state/cluster-history.js');
const { InFlightTasks } = await dist('state/in-flight-tasks.js');

const kept = Number(opts.kept);
const workerCount = Number(opts.workers);
const rounds = Number(opts.rounds);
const T = 1_800_000_000;
const store = new TaskStore({ maxTasks: kept, limits: { args: 1024, kwargs: 1024, result: 1024, exception: 1024, traceback: 8192 } });
for (let i = 0; i < kept; i++) {
  const uuid = `${((i * 2654435761) >>> 0).toString(16).padStart(8, '0')}-0000-4000-8000-${String(i).padStart(12, '0')}`;
  const common = { uuid, hostname: `worker${i % workerCount}@bench`, clock: i };
  store.handle({
    ...common,
    type: 'task-received',
    timestamp: T + i,
    name: `bench.tasks.t${i % 50}`,
    args: `(${i}, 'customer-${i}')`,
    kwargs: '{}',
    root_id: uuid,
    parent_id: null,
    retries: 0,
  });
  store.handle({ ...common, type: 'task-started', timestamp: T + i + 0.001 });
  if (i % 10 === 0)
    store.handle({
      ...common,
      type: 'task-failed',
      timestamp: T + i + 0.002,
      exception: "ValueError('boom')",
      traceback: 'Traceback (most recent call last):\n  ...\nValueError: boom',
    });
  else store.handle({ ...common, type: 'task-succeeded', timestamp: T + i + 0.002, result: String(i * 2), runtime: 0.001 });
}
const now = Date.now();
const registry = new WorkerRegistry({ nowMs: () => now }, { purgeAfterSeconds: 600 });
for (let w = 0; w < workerCount; w++) {
  registry.handle({
    type: 'worker-heartbeat',
    hostname: `worker${w}@bench`,
    timestamp: now / 1000,
    freq: 2,
    active: w % 4,
    processed: w * 100,
    loadavg: [0.5, 0.4, 0.3],
    sw_ver: '5.2.6',
  });
  registry.recordInspection(`worker${w}@bench`, { queues: ['celery', `q${w % 10}`], processes: 4 });
}
const ctx = {
  principal: { kind: 'basic', name: 'olga', role: 'operator', via: 'session' },
  csrfToken: 'token',
  prefix: '',
  can: () => true,
  href: (path, query) => path + (query ? `?${new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined))}` : ''),
};
const someId = [...store.all()][Math.floor(kept / 2)].uuid;

/** A full hour of readings (360 at 10 s) for `workers` workers and `queues` queues. */
function fullHistory(workers, queues, caps) {
  const h = new ClusterHistory({ stepMs: 10_000, points: 360, ...caps });
  const t0 = now - 3_600_000;
  for (let step = 0; step < 360; step++) {
    const total = step * 100;
    h.record(
      {
        brokerUp: true,
        workersUp: workers,
        processes: workers * 4,
        succeeded: total,
        failed: step,
        retried: 0,
        queues: Array.from({ length: queues }, (_, q) => ({ queue: `q${q}`, depth: (step * q) % 50, reserved: q % 3 })),
        workers: Array.from({ length: workers }, (_, w) => ({
          hostname: `worker${w}@bench`,
          succeeded: step * (w % 7),
          failed: step % 3,
          retried: 0,
        })),
      },
      t0 + step * 10_000,
    );
  }
  return h;
}
const history = fullHistory(workerCount, 10, { maxQueues: 500, maxWorkers: 1000 });
const health = { connected: true, subscribed: true, reconnects: 0, lastEventAtMs: now, eventsDropped: 0 };
const queues = Array.from({ length: 10 }, (_, q) => ({ queue: `q${q}`, depth: q * 3, reserved: q % 3, running: q % 2 }));

function measure(label, render) {
  const times = [];
  let bytes = 0;
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    bytes = render().length;
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(2);
  return [label, at(0.5), at(0.99), String(Math.round(bytes / 1024))];
}

const list = (query) => () =>
  tasksPage(ctx, store, { query }, { seesPayload: true, payloadRole: 'operator', workers: [...registry.all()].map((w) => w.hostname) });
printTable(
  ['page', 'p50 ms', 'p99 ms', 'KiB'],
  [
    measure(`/ui/tasks (50 of ${kept}, newest first)`, list({})),
    measure('/ui/tasks?search=customer-12', list({ search: 'customer-12' })),
    measure('/ui/tasks?workername=worker7@bench&sort_by=-runtime', list({ workername: 'worker7@bench', sort_by: '-runtime' })),
    measure('/ui/tasks/<id>', () => taskPage(ctx, store.get(someId), store.children(someId), { seesPayload: true, abortable: true })),
    measure(`/ui/workers (${workerCount} workers, an hour of history)`, () => workersPage(ctx, { registry, history, health, nowMs: now })),
    measure(`/ui overview (${workerCount} workers, 10 queues, ${kept} tasks)`, () =>
      overviewPage(ctx, { health, workers: registry, history, queues, tasks: store, decisions: [], killSwitch: false, nowMs: now }),
    ),
  ],
);

// The history behind the charts at the default caps (cardinality.max_queues 500, max_hostnames
// 1000), full for an hour; one reading (every 10 s, off the event path) and the reserved count
// over a full in-flight map (cardinality.max_tracked_tasks 100 000).
const atCaps = fullHistory(1000, 500, { maxQueues: 500, maxWorkers: 1000 });
const reading = {
  brokerUp: true,
  workersUp: 1000,
  processes: 4000,
  succeeded: 1e6,
  failed: 10,
  retried: 0,
  queues: Array.from({ length: 500 }, (_, q) => ({ queue: `q${q}`, depth: q, reserved: 1 })),
  workers: Array.from({ length: 1000 }, (_, w) => ({ hostname: `worker${w}@bench`, succeeded: w, failed: 0, retried: 0 })),
};
let at = now;
const inFlight = new InFlightTasks(100_000);
for (let i = 0; i < 100_000; i++) {
  const t = inFlight.getOrCreate(`t${i}`);
  t.queue = `q${i % 500}`;
  inFlight.markSeen(t, 'task-received');
  if (i % 2) inFlight.markSeen(t, 'task-started');
}
printTable(
  ['history at the caps', 'p50 ms', 'p99 ms', 'MiB'],
  [
    [
      ...measure('one reading: 1000 workers, 500 queues', () => (atCaps.record(reading, (at += 10_000)), '')).slice(0, 3),
      (atCaps.bytes / 2 ** 20).toFixed(1),
    ],
    [...measure('reserved per queue over 100 000 in-flight tasks', () => (inFlight.openByQueue('celery'), '')).slice(0, 3), ''],
  ],
);
