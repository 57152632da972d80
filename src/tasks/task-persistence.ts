import { existsSync, renameSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { TASK_STATES, type TaskRecord } from './task-state.js';
import type { TaskStore } from './task-store.js';

/**
 * Flower's --persistent for the task store: `tasks.persist` names an SQLite file (better-sqlite3,
 * WAL) that holds the kept tasks, one row each, so task history survives a restart. The event
 * path only marks tasks changed; a timer writes the changes in one transaction per batch, off the
 * event path, and deletes evicted rows, so the file holds at most max_tasks rows of capped size.
 * A crash loses at most the batch being written (SQLite's journal keeps the file consistent). A
 * file that cannot be read (truncated, corrupted, not a database) is moved aside, logged, and a
 * new one is built from the events that follow.
 */
export interface TaskPersistenceOptions {
  file: string;
  flushMs: number;
}

const SCHEMA_VERSION = 1;

export class TaskPersistence {
  #db: Database.Database;
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;
  /** Rows restored at start, and batches written, for logs and tests. */
  restored = 0;
  batches = 0;
  rebuiltFrom: string | undefined;

  constructor(
    private readonly store: TaskStore,
    private readonly options: TaskPersistenceOptions,
    private readonly logger: Logger,
  ) {
    this.#db = this.#open();
  }

  /** The open file, for the worker state kept in the same file (worker-persistence.ts). */
  get database(): Database.Database {
    return this.#db;
  }

  #open(): Database.Database {
    try {
      const db = this.#openChecked();
      this.#load(db);
      return db;
    } catch (e) {
      // Kept for a post-mortem rather than deleted; the service starts either way.
      const aside = `${this.options.file}.unreadable-${Date.now()}`;
      this.logger.error(
        { file: this.options.file, movedTo: aside, err: (e as Error).message },
        'task persistence file unreadable: moved aside, starting a new one',
      );
      for (const suffix of ['', '-wal', '-shm']) {
        const f = this.options.file + suffix;
        if (!existsSync(f)) continue;
        if (suffix === '') renameSync(f, aside);
        else rmSync(f, { force: true });
      }
      this.rebuiltFrom = aside;
      return this.#openChecked();
    }
  }

  #openChecked(): Database.Database {
    const db = new Database(this.options.file);
    try {
      db.pragma('journal_mode = WAL');
      // WAL + NORMAL: a power loss may lose the last commits, never consistency.
      db.pragma('synchronous = NORMAL');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new Error(`integrity check: ${String(check)}`);
      db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
               CREATE TABLE IF NOT EXISTS tasks (uuid TEXT PRIMARY KEY, seq INTEGER NOT NULL, record TEXT NOT NULL);
               CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq);`);
      const version = db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get('schema') as string | undefined;
      if (version === undefined) db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run('schema', String(SCHEMA_VERSION));
      else if (version !== String(SCHEMA_VERSION)) throw new Error(`schema version ${version}, expected ${SCHEMA_VERSION}`);
      return db;
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Restores rows oldest first; a row that does not parse as a task is skipped and counted. */
  #load(db: Database.Database): void {
    let skipped = 0;
    for (const row of db.prepare('SELECT seq, record FROM tasks ORDER BY seq').iterate() as IterableIterator<{
      seq: number;
      record: string;
    }>) {
      this.#seq = Math.max(this.#seq, row.seq);
      const record = parseRecord(row.record);
      if (record) {
        this.store.restore(record);
        this.restored++;
      } else skipped++;
    }
    if (skipped > 0) this.logger.warn({ skipped }, 'task persistence: rows that are not tasks were skipped');
  }

  /** Starts the batch writer; changes from now on are written every flushMs. */
  start(): void {
    this.store.trackChanges();
    if (this.restored > 0) this.logger.info({ restored: this.restored, file: this.options.file }, 'task history restored');
    this.#timer = setInterval(() => this.flush(), this.options.flushMs);
    this.#timer.unref();
  }

  /** Writes what changed since the last batch, in one transaction. */
  flush(): void {
    const { updated, evicted } = this.store.takeChanges();
    if (updated.length === 0 && evicted.length === 0) return;
    const upsert = this.#db.prepare(
      'INSERT INTO tasks (uuid, seq, record) VALUES (?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET seq = excluded.seq, record = excluded.record',
    );
    const remove = this.#db.prepare('DELETE FROM tasks WHERE uuid = ?');
    try {
      this.#db.transaction(() => {
        for (const id of evicted) remove.run(id);
        for (const t of updated) upsert.run(t.uuid, ++this.#seq, JSON.stringify(t));
      })();
      this.batches++;
    } catch (e) {
      // A full disk or a removed file must not stop the service: the history is a convenience.
      this.logger.warn({ err: (e as Error).message, lost: updated.length }, 'task persistence: batch not written');
    }
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.flush();
    this.#db.close();
  }
}

function parseRecord(text: string): TaskRecord | undefined {
  try {
    const r = JSON.parse(text) as TaskRecord;
    if (typeof r?.uuid === 'string' && (TASK_STATES as readonly string[]).includes(r.state)) return r;
  } catch {
    // not JSON: skipped
  }
  return undefined;
}
