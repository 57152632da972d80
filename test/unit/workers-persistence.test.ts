import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import type { Auth } from '../../src/auth/index.js';
import type { QueueCollector } from '../../src/exporter/queue-collector.js';
import { flowerWorkersApi } from '../../src/http/flower-workers-api.js';
import { PayloadRule } from '../../src/tasks/payload.js';
import type { WorkerEvent } from '../../src/celery/events.js';
import { ManualClock } from '../../src/clock.js';
import type { ControlClient } from '../../src/control/client.js';
import { WorkerSnapshot } from '../../src/control/worker-snapshot.js';
import type { InspectMethod } from '../../src/state/inspect-replies.js';
import { WorkerRegistry } from '../../src/state/workers.js';
import { TaskPersistence } from '../../src/persistence/task-persistence.js';
import { TaskStore } from '../../src/tasks/task-store.js';
import { WorkerPersistence } from '../../src/persistence/worker-persistence.js';

const LIMITS = { args: 1024, kwargs: 1024, result: 1024, exception: 1024, traceback: 8192 };
const dirs: string[] = [];
const silent = pino({ level: 'silent' });

function tmpFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'workers-persist-'));
  dirs.push(dir);
  return path.join(dir, 'tasks.sqlite');
}

/** Inspect replies for every worker in `answering` (a stand-in for the broker round trip). */
function fakeControl(answering: () => string[]): ControlClient {
  const replies: Record<InspectMethod, unknown> = {
    stats: { pool: { 'max-concurrency': 3 }, total: { 'tasks.add': 7 } },
    active_queues: [{ name: 'tq' }],
    registered: ['tasks.add'],
    scheduled: [],
    active: [],
    reserved: [],
    revoked: [],
    conf: { worker_prefetch_multiplier: 4 },
  };
  return {
    run: (method: InspectMethod) =>
      Promise.resolve({ results: answering().map((worker) => ({ worker, status: 'ok', reply: replies[method] })) }),
  } as unknown as ControlClient;
}

/** One service's worker state on a file: registry, snapshot, and the persistence of both. */
function open(file: string, clock: ManualClock, opts: { maxWorkers?: number; answering?: string[] } = {}) {
  const registry = new WorkerRegistry(clock, { purgeAfterSeconds: 600 });
  const answering = opts.answering ?? [];
  const snapshot = new WorkerSnapshot(
    fakeControl(() => answering),
    clock,
    silent,
    { refreshSeconds: 30, forgetSeconds: 600 },
    registry,
  );
  const tasks = new TaskPersistence(new TaskStore({ maxTasks: 100, limits: LIMITS }), { file, flushMs: 60_000 }, silent);
  const workers = new WorkerPersistence(
    tasks.database,
    registry,
    snapshot,
    { flushMs: 60_000, maxWorkers: opts.maxWorkers ?? 1000 },
    silent,
  );
  tasks.start();
  workers.start();
  const close = () => {
    snapshot.stop();
    workers.close();
    tasks.close();
  };
  return { registry, snapshot, tasks, workers, answering, close };
}

const heartbeat = (hostname: string, clock: ManualClock, processed = 12): WorkerEvent =>
  ({
    type: 'worker-heartbeat',
    hostname,
    timestamp: clock.nowMs() / 1000,
    freq: 2,
    active: 1,
    processed,
    loadavg: [0.5, 0.25, 0.1],
    sw_ver: '5.2.6',
    pid: 4242,
  }) as unknown as WorkerEvent;

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('worker persistence (tasks.persist)', () => {
  it('restores the console fields and the last inspect replies, with the worker down', async () => {
    const file = tmpFile();
    const clock = new ManualClock();
    const a = open(file, clock, { answering: ['celery@w1'] });
    a.registry.handle(heartbeat('celery@w1', clock));
    a.registry.recordInspection('celery@w1', { queues: ['tq'], processes: 3 });
    await a.snapshot.refresh();
    const heartbeatAt = clock.nowMs();
    a.close();

    clock.advance(1000); // a restart well inside the liveness window
    const b = open(file, clock);
    expect(b.workers.restored).toBe(1);
    const w = b.registry.get('celery@w1')!;
    expect(w).toMatchObject({ restored: true, processed: 12, active: 1, processes: 3, queues: ['tq'], swVersion: '5.2.6' });
    expect(w.heartbeatBeforeRestartAt).toBe(heartbeatAt);
    expect(w.lastHeartbeatAt).toBeUndefined();
    expect(b.registry.isAlive(w)).toBe(false);
    expect(b.registry.alive()).toEqual([]);
    expect(b.snapshot.get('celery@w1')).toMatchObject({ stats: { total: { 'tasks.add': 7 } }, registered: ['tasks.add'] });
    expect(b.snapshot.isRestored('celery@w1')).toBe(true);

    // Its own heartbeat makes it a live worker again, and its next reply a fresh entry.
    b.registry.handle(heartbeat('celery@w1', clock, 13));
    expect(b.registry.get('celery@w1')!.restored).toBeUndefined();
    expect(b.registry.isAlive(b.registry.get('celery@w1')!)).toBe(true);
    b.answering.push('celery@w1');
    await b.snapshot.refresh();
    expect(b.snapshot.isRestored('celery@w1')).toBe(false);
    b.close();
  });

  it('survives a second restart without a heartbeat in between, and forgets what the purge rules drop', () => {
    const file = tmpFile();
    const clock = new ManualClock();
    const a = open(file, clock);
    a.registry.handle(heartbeat('celery@w1', clock));
    a.registry.handle(heartbeat('celery@w2', clock));
    a.close();

    const b = open(file, clock);
    b.close();
    const c = open(file, clock);
    expect([...c.registry.all()].map((w) => w.hostname).sort()).toEqual(['celery@w1', 'celery@w2']);
    clock.advance(700_000); // past purge_offline_worker_seconds (600) since the last heartbeat
    expect(c.registry.purge().sort()).toEqual(['celery@w1', 'celery@w2']);
    c.close();

    const d = open(file, clock);
    expect(d.workers.restored).toBe(0);
    expect(d.registry.size).toBe(0);
    d.close();
  });

  it('keeps at most maxWorkers rows, the most recently seen', () => {
    const file = tmpFile();
    const clock = new ManualClock();
    const a = open(file, clock, { maxWorkers: 3 });
    for (let i = 0; i < 8; i++) {
      a.registry.handle(heartbeat(`celery@w${i}`, clock));
      clock.advance(100);
    }
    a.close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT hostname FROM workers ORDER BY hostname').pluck().all()).toEqual(['celery@w5', 'celery@w6', 'celery@w7']);
    db.close();
    const b = open(file, clock, { maxWorkers: 2 });
    expect([...b.registry.all()].map((w) => w.hostname).sort()).toEqual(['celery@w6', 'celery@w7']);
    b.close();
  });

  it('skips rows that are not workers and starts empty on a file that is not a database', () => {
    const file = tmpFile();
    const clock = new ManualClock();
    const a = open(file, clock);
    a.registry.handle(heartbeat('celery@good', clock));
    a.close();
    const db = new Database(file);
    const put = db.prepare('INSERT INTO workers (hostname, record) VALUES (?, ?)');
    put.run('celery@notjson', '{oops');
    put.run('celery@badfreq', JSON.stringify({ worker: { hostname: 'celery@badfreq', freq: 'x' } }));
    put.run('celery@mismatch', JSON.stringify({ worker: { hostname: 'celery@other', freq: 2 } }));
    put.run('celery@badinspect', JSON.stringify({ inspect: { timestamp: 'then' } }));
    db.close();

    const b = open(file, clock);
    expect([...b.registry.all()].map((w) => w.hostname)).toEqual(['celery@good']);
    expect(b.snapshot.all().size).toBe(0);
    b.close();

    writeFileSync(file, Buffer.alloc(8192, 0x5a));
    const c = open(file, clock);
    expect(c.tasks.rebuiltFrom).toMatch(/\.unreadable-\d+$/);
    expect(c.registry.size).toBe(0);
    c.registry.handle(heartbeat('celery@after', clock));
    c.close();
    const d = open(file, clock);
    expect([...d.registry.all()].map((w) => w.hostname)).toEqual(['celery@after']);
    d.close();
  });

  it('starts and persists workers again when the workers table has another shape', () => {
    const file = tmpFile();
    const clock = new ManualClock();
    const a = open(file, clock);
    a.close();
    const db = new Database(file);
    db.exec('DROP TABLE workers; CREATE TABLE workers (name TEXT, blob BLOB); INSERT INTO workers VALUES (1, 2);');
    db.close();
    const b = open(file, clock);
    expect(b.registry.size).toBe(0);
    b.registry.handle(heartbeat('celery@w1', clock));
    b.close();
    const c = open(file, clock);
    expect([...c.registry.all()].map((w) => w.hostname)).toEqual(['celery@w1']);
    c.close();
  });

  it('answers ?status=true with false for a worker only the file knows, however fresh its entry', async () => {
    const file = tmpFile();
    const clock = new ManualClock(Date.now()); // the route's freshness rule reads the wall clock
    const a = open(file, clock, { answering: ['celery@inspected-only'] });
    await a.snapshot.refresh();
    a.close();
    const b = open(file, clock);
    expect(b.registry.get('celery@inspected-only')).toBeUndefined();
    const api = await serveWorkersApi(b);
    try {
      const status = await api.get('/api/workers?status=true');
      expect(await status.json()).toEqual({ 'celery@inspected-only': false });
    } finally {
      api.close();
      b.close();
    }
  });

  it('reads workername as every request parameter is read: the last one when repeated', async () => {
    const clock = new ManualClock(Date.now());
    const a = open(tmpFile(), clock, { answering: ['celery@w1', 'celery@w2'] });
    await a.snapshot.refresh();
    const api = await serveWorkersApi(a);
    try {
      const status = await api.get('/api/workers?status=true&workername=celery@w1&workername=celery@w2');
      expect(status.status).toBe(200);
      expect(await status.json()).toEqual({ 'celery@w2': true });
    } finally {
      api.close();
      a.close();
    }
  });
});

/** Flower's /api/workers over one service's worker state, on a free local port. */
async function serveWorkersApi(s: ReturnType<typeof open>): Promise<{ get: (path: string) => Promise<Response>; close: () => void }> {
  const app = express().use(
    flowerWorkersApi({
      snapshot: s.snapshot,
      workers: s.registry,
      queues: {} as QueueCollector,
      auth: { requireRole: () => (_req: unknown, _res: unknown, next: () => void) => next() } as unknown as Auth,
      brokerApi: undefined,
      refreshSeconds: 30,
      payload: new PayloadRule('operator'),
    }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  return { get: (path) => fetch(`http://127.0.0.1:${port}${path}`), close: () => server.close() };
}
