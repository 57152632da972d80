import { existsSync, renameSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import { ensurePrivateFile, tightenIfExists } from '../private-file.js';
import { TASK_STATES, newTask, type TaskHistory } from '../tasks/task-history.js';
import type { TaskStore } from '../tasks/task-store.js';

/**
 * Flower's --persistent for the task store: `tasks.persist` names an SQLite file (better-sqlite3,
 * WAL) that holds the kept tasks, one row each, so task history survives a restart. The event
 * path only marks tasks changed; a timer writes the changes in one transaction per batch, off the
 * event path, and deletes evicted rows, so the file holds at most max_tasks rows of capped size.
 * A crash loses at most the batch being written (SQLite's journal keeps the file consistent). A
 * file that cannot be read (truncated, corrupted, not a database) is moved aside, logged, and a
 * new one is built from the events that follow. The files are the service user's only (0600).
 */
export interface TaskPersistenceOptions {
  file: string;
  flushMs: number;
}

const SCHEMA_VERSION = 1;

/** Why a row was not restored (celery_autopilot_persisted_rows_skipped_total{reason}). */
export type SkipReason = 'not_json' | 'bad_field';

export class TaskPersistence {
  #db: Database.Database;
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;
  /** Rows restored at start, and batches written, for logs and tests. */
  restored = 0;
  batches = 0;
  rebuiltFrom: string | undefined;
  /** Rows left out at start, by reason. */
  readonly skipped = new Map<SkipReason, number>();

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
    // 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database file's mode.
    const file = this.options.file;
    if (![ensurePrivateFile(file), tightenIfExists(`${file}-wal`), tightenIfExists(`${file}-shm`)].every(Boolean))
      this.logger.warn({ file }, 'task persistence: the file is readable by other users and could not be made private (chmod 600 it)');
    const db = new Database(file);
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

  /**
   * Restores rows oldest first. A row is a task only if every field has its type and length (the
   * file may be old, foreign or edited by hand: one `runtime: "x"` would break every page that
   * lists it); any other row is skipped and counted by reason, and the first bad field is logged.
   */
  #load(db: Database.Database): void {
    const firstBad: string[] = [];
    for (const row of db.prepare('SELECT seq, record FROM tasks ORDER BY seq').iterate() as IterableIterator<{
      seq: number;
      record: unknown;
    }>) {
      this.#seq = Math.max(this.#seq, Number(row.seq) || 0);
      const parsed = parseRecord(row.record);
      if ('record' in parsed) {
        this.store.restore(parsed.record);
        this.restored++;
      } else {
        this.skipped.set(parsed.reason, (this.skipped.get(parsed.reason) ?? 0) + 1);
        if (firstBad.length < 5) firstBad.push(parsed.field ?? parsed.reason);
      }
    }
    if (this.skipped.size > 0)
      this.logger.warn(
        { skipped: Object.fromEntries(this.skipped), fields: firstBad },
        'task persistence: rows that are not tasks were skipped',
      );
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

/** Longest text a kept field can have (tasks.max_*_chars at most). */
const MAX_TEXT = 1024 * 1024;
/** Text fields and their longest length, as task-history.ts cuts them. */
const TEXT_FIELDS = {
  name: 512,
  args: MAX_TEXT,
  kwargs: MAX_TEXT,
  result: MAX_TEXT,
  exception: MAX_TEXT,
  traceback: MAX_TEXT,
  eta: 64,
  expires: 64,
  worker: 255,
  client: 255,
  exchange: 255,
  routing_key: 255,
  queue: 255,
  root_id: 255,
  parent_id: 255,
  rerun_of: 255,
  signum: 32,
} as const satisfies Partial<Record<keyof TaskHistory, number>>;
const NUMBER_FIELDS = [
  'timestamp',
  'sent',
  'received',
  'started',
  'succeeded',
  'failed',
  'retried',
  'revoked',
  'rejected',
  'retries',
  'runtime',
] as const satisfies ReadonlyArray<keyof TaskHistory>;
const BOOLEAN_FIELDS = ['terminated', 'expired'] as const satisfies ReadonlyArray<keyof TaskHistory>;

type Parsed = { record: TaskHistory } | { reason: SkipReason; field?: string };

/**
 * A stored row as a task record, built field by field (unknown fields are dropped; a missing
 * optional one is null), or why it is not one.
 */
export function parseRecord(text: unknown): Parsed {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(String(text)) as Record<string, unknown>;
  } catch {
    return { reason: 'not_json' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { reason: 'bad_field', field: 'record' };
  const bad = (field: string): Parsed => ({ reason: 'bad_field', field });
  if (typeof raw.uuid !== 'string' || raw.uuid.length === 0 || raw.uuid.length > 255) return bad('uuid');
  if (!(TASK_STATES as readonly unknown[]).includes(raw.state)) return bad('state');
  const record = newTask(raw.uuid);
  record.state = raw.state as TaskHistory['state'];
  const present = (v: unknown) => v !== undefined && v !== null;
  const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (present(raw.clock)) {
    if (!finite(raw.clock)) return bad('clock');
    record.clock = raw.clock;
  }
  for (const [field, max] of Object.entries(TEXT_FIELDS) as Array<[keyof typeof TEXT_FIELDS, number]>) {
    const v = raw[field];
    if (!present(v)) continue;
    if (typeof v !== 'string' || v.length > max) return bad(field);
    record[field] = v;
  }
  for (const field of NUMBER_FIELDS) {
    const v = raw[field];
    if (!present(v)) continue;
    if (!finite(v)) return bad(field);
    record[field] = v;
  }
  for (const field of BOOLEAN_FIELDS) {
    const v = raw[field];
    if (!present(v)) continue;
    if (typeof v !== 'boolean') return bad(field);
    record[field] = v;
  }
  return { record };
}
