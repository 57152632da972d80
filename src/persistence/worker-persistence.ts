import type Database from 'better-sqlite3';
import type { WorkerInfo, WorkerSnapshot } from '../control/worker-snapshot.js';
import type { Logger } from '../log.js';
import type { SavedWorker, WorkerRecord, WorkerRegistry } from '../state/workers.js';
import type { SkipReason } from './task-persistence.js';

/**
 * Flower's --persistent for worker state: in the same SQLite file as the task history (a second
 * table, one row per worker), what the registry knew of each worker (console list: heartbeat,
 * processed/active, pool, queues, software) and its last inspect replies (/api/workers). A timer
 * compares the workers with what was last written and writes the differences in one transaction,
 * off the event path; workers the registry and the snapshot forgot are deleted, and at most
 * maxWorkers rows (cardinality.max_hostnames), the most recently seen, are kept.
 *
 * Restored workers are known but not alive: liveness stays with real heartbeats (see
 * WorkerRegistry.restore and WorkerSnapshot.restore).
 */
export interface WorkerPersistenceOptions {
  flushMs: number;
  maxWorkers: number;
}

const CREATE_TABLE = 'CREATE TABLE IF NOT EXISTS workers (hostname TEXT PRIMARY KEY, record TEXT NOT NULL)';

interface WorkerRow {
  worker?: SavedWorker;
  inspect?: WorkerInfo;
}

export class WorkerPersistence {
  /** What each row holds now, as a cheap change key (the inspect replies by their timestamp). */
  readonly #written = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  restored = 0;
  batches = 0;
  /** Rows left out at start, by reason. */
  readonly skipped = new Map<SkipReason, number>();

  constructor(
    private readonly db: Database.Database,
    private readonly registry: WorkerRegistry,
    private readonly snapshot: WorkerSnapshot,
    private readonly options: WorkerPersistenceOptions,
    private readonly logger: Logger,
  ) {
    try {
      db.exec(CREATE_TABLE);
      this.#load();
    } catch (e) {
      // A table of another shape (an older or foreign file): worker state is rebuilt from
      // heartbeats; the task history in the same file is kept.
      this.logger.error({ err: (e as Error).message }, 'worker persistence table unreadable: starting a new one');
      this.#written.clear();
      db.exec(`DROP TABLE IF EXISTS workers; ${CREATE_TABLE}`);
    }
  }

  /** Restores the most recently seen workers first, up to the bound; rows that do not parse are skipped. */
  #load(): void {
    const rows: Array<{ hostname: string; row: WorkerRow; seen: number }> = [];
    for (const r of this.db.prepare('SELECT hostname, record FROM workers').iterate() as IterableIterator<{
      hostname: string;
      record: string;
    }>) {
      const row = parseRow(r.hostname, r.record);
      if (row) rows.push({ hostname: r.hostname, row, seen: lastSeen(row) });
      else {
        const reason: SkipReason = isJson(r.record) ? 'bad_field' : 'not_json';
        this.skipped.set(reason, (this.skipped.get(reason) ?? 0) + 1);
      }
      // Every row on file is known written: one no longer kept (forgotten, over the bound,
      // unreadable) is deleted by the first batch.
      this.#written.set(r.hostname, '');
    }
    rows.sort((a, b) => b.seen - a.seen);
    for (const { hostname, row } of rows.slice(0, this.options.maxWorkers)) {
      if (row.worker) this.registry.restore(row.worker);
      if (row.inspect) this.snapshot.restore(hostname, row.inspect);
      this.restored++;
    }
    if (this.skipped.size > 0)
      this.logger.warn({ skipped: Object.fromEntries(this.skipped) }, 'worker persistence: rows that are not workers were skipped');
  }

  start(): void {
    if (this.restored > 0) this.logger.info({ restored: this.restored }, 'worker state restored (down until they heartbeat)');
    this.#timer = setInterval(() => this.flush(), this.options.flushMs);
    this.#timer.unref();
  }

  /** Writes the workers that changed since the last batch and deletes the forgotten, in one transaction. */
  flush(): void {
    const current = this.#rows();
    const upserts: Array<[string, string, string]> = [];
    for (const [hostname, { row, key }] of current) {
      if (this.#written.get(hostname) !== key) upserts.push([hostname, JSON.stringify(row), key]);
    }
    const removed = [...this.#written.keys()].filter((h) => !current.has(h));
    if (upserts.length === 0 && removed.length === 0) return;
    const upsert = this.db.prepare(
      'INSERT INTO workers (hostname, record) VALUES (?, ?) ON CONFLICT (hostname) DO UPDATE SET record = excluded.record',
    );
    const remove = this.db.prepare('DELETE FROM workers WHERE hostname = ?');
    try {
      this.db.transaction(() => {
        for (const h of removed) remove.run(h);
        for (const [h, record] of upserts) upsert.run(h, record);
      })();
      this.batches++;
      for (const h of removed) this.#written.delete(h);
      for (const [h, , key] of upserts) this.#written.set(h, key);
    } catch (e) {
      // Like the task history: a convenience that must not stop the service.
      this.logger.warn({ err: (e as Error).message, lost: upserts.length }, 'worker persistence: batch not written');
    }
  }

  /** Every worker the registry or the snapshot knows, bounded to the most recently seen. */
  #rows(): Map<string, { row: WorkerRow; key: string }> {
    const rows = new Map<string, WorkerRow>();
    for (const w of this.registry.all()) rows.set(w.hostname, { worker: saved(w) });
    for (const [hostname, info] of this.snapshot.all()) rows.set(hostname, { ...rows.get(hostname), inspect: info });
    const kept = [...rows].sort((a, b) => lastSeen(b[1]) - lastSeen(a[1])).slice(0, this.options.maxWorkers);
    return new Map(kept.map(([h, row]) => [h, { row, key: JSON.stringify([row.worker ?? null, row.inspect?.timestamp ?? null]) }]));
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.flush();
  }
}

function saved(w: WorkerRecord): SavedWorker {
  const lastHeartbeatAt = w.lastHeartbeatAt ?? w.heartbeatBeforeRestartAt;
  return {
    hostname: w.hostname,
    freq: w.freq,
    ...(lastHeartbeatAt !== undefined ? { lastHeartbeatAt } : {}),
    ...(w.goneSince !== undefined ? { goneSince: w.goneSince } : {}),
    ...pick(w, ['active', 'processed', 'loadavg', 'swVersion', 'pid', 'queues', 'processes']),
  };
}

function pick<K extends keyof WorkerRecord>(w: WorkerRecord, keys: K[]): Partial<Pick<WorkerRecord, K>> {
  const out: Partial<Pick<WorkerRecord, K>> = {};
  for (const k of keys) if (w[k] !== undefined) out[k] = w[k];
  return out;
}

/** Local ms of the last sign of life a row records, to keep the most recent within the bound. */
function lastSeen(row: WorkerRow): number {
  return Math.max(row.worker?.lastHeartbeatAt ?? 0, (row.inspect?.timestamp ?? 0) * 1000);
}

const isJson = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** A row is restored only if its fields have the types the registry and the snapshot use. */
export function parseRow(hostname: string, text: string): WorkerRow | undefined {
  let raw: { worker?: Record<string, unknown>; inspect?: Record<string, unknown> };
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const out: WorkerRow = {};
  const w = raw.worker;
  if (w !== undefined) {
    if (typeof w !== 'object' || w === null || w.hostname !== hostname || !isNum(w.freq) || w.freq <= 0) return undefined;
    const s: SavedWorker = { hostname, freq: w.freq };
    for (const k of ['lastHeartbeatAt', 'goneSince', 'active', 'processed', 'pid', 'processes'] as const) if (isNum(w[k])) s[k] = w[k];
    if (typeof w.swVersion === 'string') s.swVersion = w.swVersion;
    if (isStrings(w.queues)) s.queues = w.queues;
    if (Array.isArray(w.loadavg) && w.loadavg.every(isNum)) s.loadavg = w.loadavg;
    out.worker = s;
  }
  const i = raw.inspect;
  if (i !== undefined) {
    if (typeof i !== 'object' || i === null || Array.isArray(i) || !isNum(i.timestamp)) return undefined;
    out.inspect = i as WorkerInfo;
  }
  return out.worker || out.inspect ? out : undefined;
}
