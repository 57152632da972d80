import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { TaskEvent } from '../../src/celery/events.js';
import { TaskPersistence, parseRecord } from '../../src/persistence/task-persistence.js';
import { TaskStore } from '../../src/tasks/task-store.js';

const LIMITS = { args: 1024, kwargs: 1024, result: 1024, exception: 1024, traceback: 8192 };
const T = 1_800_000_000;
const dirs: string[] = [];

function tmpFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tasks-persist-'));
  dirs.push(dir);
  return path.join(dir, 'tasks.sqlite');
}

/** A logger that keeps what it was told, to check that a rebuild is logged. */
function recordingLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger, lines };
}

function open(file: string, maxTasks = 1000) {
  const store = new TaskStore({ maxTasks, limits: LIMITS });
  const { logger, lines } = recordingLogger();
  const persistence = new TaskPersistence(store, { file, flushMs: 60_000 }, logger);
  persistence.start();
  return { store, persistence, lines };
}

const feed = (store: TaskStore, from: number, to: number) => {
  for (let i = from; i < to; i++) {
    const uuid = `t${i}`;
    store.handle({
      type: 'task-received',
      uuid,
      hostname: 'celery@w1',
      timestamp: T + i,
      name: 'tasks.add',
      args: `(${i},)`,
      kwargs: '{}',
    } as unknown as TaskEvent);
    store.handle({
      type: 'task-succeeded',
      uuid,
      hostname: 'celery@w1',
      timestamp: T + i + 0.5,
      result: String(i),
      runtime: 0.1,
    } as unknown as TaskEvent);
  }
};

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('task persistence (tasks.persist)', () => {
  it('restores the kept tasks, oldest first, with their state and fields', () => {
    const file = tmpFile();
    const a = open(file);
    feed(a.store, 0, 50);
    a.persistence.close();

    const b = open(file);
    expect(b.persistence.restored).toBe(50);
    expect(b.store.get('t7')).toMatchObject({ state: 'SUCCESS', name: 'tasks.add', args: '(7,)', result: '7' });
    expect([...b.store.all()].map((t) => t.uuid).slice(0, 3)).toEqual(['t0', 't1', 't2']);
    expect(b.store.taskTypes()).toEqual(['tasks.add']);
    b.persistence.close();
  });

  it('keeps the file bounded: evicted tasks are deleted with the batch that evicts them', () => {
    const file = tmpFile();
    const a = open(file, 100);
    for (let batch = 0; batch < 10; batch++) {
      feed(a.store, batch * 100, batch * 100 + 100);
      a.persistence.flush();
    }
    a.persistence.close();
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT count(*) FROM tasks').pluck().get()).toBe(100);
    expect(db.prepare('SELECT min(uuid) FROM tasks').pluck().get()).toBe('t900');
    db.close();
  });

  it('loses at most the batch not yet written when the process dies', () => {
    const file = tmpFile();
    const a = open(file);
    feed(a.store, 0, 20);
    a.persistence.flush();
    feed(a.store, 20, 30); // never flushed: the process "dies" here (no close)
    const b = open(file);
    expect(b.persistence.restored).toBe(20);
    expect(b.store.get('t19')?.state).toBe('SUCCESS');
    expect(b.store.get('t20')).toBeUndefined();
    b.persistence.close();
  });

  it.each([
    ['truncated', (file: string) => truncateSync(file, Math.floor(statSync(file).size / 3))],
    ['overwritten with garbage', (file: string) => writeFileSync(file, Buffer.alloc(8192, 0x5a))],
    [
      'its header corrupted',
      (file: string) => {
        const db = Buffer.alloc(100, 0x01);
        writeFileSync(file, db, { flag: 'r+' });
      },
    ],
  ])('starts, logs and rebuilds when the file is %s', (_what, damage) => {
    const file = tmpFile();
    const a = open(file);
    feed(a.store, 0, 300);
    a.persistence.close();
    damage(file);

    const b = open(file);
    expect(b.persistence.rebuiltFrom).toMatch(/tasks\.sqlite\.unreadable-\d+$/);
    expect(b.lines.some((l) => l.level >= 50 && /unreadable: moved aside/.test(l.msg))).toBe(true);
    expect(b.store.size).toBe(0);
    feed(b.store, 1000, 1005);
    b.persistence.close();
    const c = open(file);
    expect(c.persistence.restored).toBe(5);
    expect(readdirSync(path.dirname(file)).some((f) => f.includes('.unreadable-'))).toBe(true);
    c.persistence.close();
  });

  it('restores only rows whose every field has its type and length; the others are skipped and counted by reason', () => {
    const file = tmpFile();
    const a = open(file);
    feed(a.store, 0, 3);
    a.persistence.close();
    const good = JSON.parse(new Database(file).prepare('SELECT record FROM tasks LIMIT 1').pluck().get() as string) as Record<
      string,
      unknown
    >;
    const db = new Database(file);
    const insert = db.prepare('INSERT INTO tasks (uuid, seq, record) VALUES (?, ?, ?)');
    insert.run('bad-runtime', 100, JSON.stringify({ ...good, uuid: 'bad-runtime', runtime: 'x' }));
    insert.run('bad-name', 101, JSON.stringify({ ...good, uuid: 'bad-name', name: 12345 }));
    insert.run('long-worker', 102, JSON.stringify({ ...good, uuid: 'long-worker', worker: 'w'.repeat(256) }));
    insert.run('not-json', 103, '{"uuid": "not-json", ');
    db.close();
    const b = open(file);
    expect(b.persistence.restored).toBe(3);
    expect(Object.fromEntries(b.persistence.skipped)).toEqual({ bad_field: 3, not_json: 1 });
    expect(b.store.get('bad-runtime')).toBeUndefined();
    expect(b.lines.some((l) => l.level === 40 && /rows that are not tasks were skipped/.test(l.msg))).toBe(true);
    b.persistence.close();
  });

  it.each([
    [{ uuid: 'a', state: 'SUCCESS' }, undefined],
    [{ uuid: 'a', state: 'SUCCESS', runtime: 'x' }, 'runtime'],
    [{ uuid: 'a', state: 'SUCCESS', name: 12345 }, 'name'],
    [{ uuid: 'a', state: 'DONE' }, 'state'],
    [{ uuid: '', state: 'SUCCESS' }, 'uuid'],
    [{ uuid: 'a', state: 'SUCCESS', received: Number.NaN }, undefined],
    [{ uuid: 'a', state: 'SUCCESS', terminated: 'yes' }, 'terminated'],
    [{ uuid: 'a', state: 'SUCCESS', clock: '3' }, 'clock'],
    [{ uuid: 'a', state: 'SUCCESS', eta: 'x'.repeat(65) }, 'eta'],
    [[1, 2], 'record'],
  ])('parseRecord(%j): bad field %s', (raw, field) => {
    const parsed = parseRecord(JSON.stringify(raw));
    if (field === undefined) expect(parsed).toHaveProperty('record');
    else expect(parsed).toEqual({ reason: 'bad_field', field });
  });

  it('parseRecord keeps only the fields a task has', () => {
    const parsed = parseRecord(JSON.stringify({ uuid: 'a', state: 'FAILURE', exception: 'E()', injected: '<script>' }));
    expect('record' in parsed && parsed.record).toMatchObject({ uuid: 'a', state: 'FAILURE', exception: 'E()', runtime: null });
    expect('record' in parsed && 'injected' in parsed.record).toBe(false);
  });
});
