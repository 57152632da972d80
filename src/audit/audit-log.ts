import { closeSync, createWriteStream, fstatSync, openSync, readSync, type WriteStream } from 'node:fs';
import { ensurePrivateFile } from '../private-file.js';

/** What an audit record is about; the API's `kind` and the console's `audit` filter take these. */
export const AUDIT_KINDS = ['control', 'remediation', 'admin'] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/** One audit record: who did (or decided) what, to which workers, and what came of it. */
export interface AuditEntry {
  readonly kind: AuditKind;
  readonly [field: string]: unknown;
}

export interface AuditRecord extends AuditEntry {
  readonly time: string;
}

/** Default bound on the records kept in memory, by their size as JSON. */
export const DEFAULT_AUDIT_MEMORY_BYTES = 4 * 1024 * 1024;

/**
 * An append-only JSON-lines audit log (a file, or stdout with "-"), plus the most recent records
 * in memory for the API, bounded by count and by their size as JSON: a remediation decision
 * carries the alert's full labels, which whoever writes the series chooses. The file keeps every
 * record. Secrets never reach it: callers pass principals and results, not credentials.
 */
export class AuditLog {
  readonly #recent: AuditRecord[] = [];
  readonly #sizes: number[] = [];
  #bytes = 0;
  readonly #stream: WriteStream | NodeJS.WritableStream | undefined;

  /** As `audit:` configures it ('' keeps it in memory only, '-' writes to stdout). */
  static fromConfig(a: { file: string; keep: number; keep_bytes: number }): AuditLog {
    return new AuditLog(a.file === '' ? undefined : a.file, a.keep, Date.now, a.keep_bytes);
  }

  constructor(
    target: string | undefined,
    private readonly keep = 1000,
    private readonly now: () => number = Date.now,
    private readonly maxBytes = DEFAULT_AUDIT_MEMORY_BYTES,
  ) {
    if (target === '-') this.#stream = process.stdout;
    else if (target) {
      // Who did what to which task: the service user's only (0600), like tasks.persist. One that
      // another user owns stays as it is (the audit must not stop the service).
      ensurePrivateFile(target);
      for (const [record, size] of readTail(target, maxBytes)) this.#remember(record, size);
      this.#stream = createWriteStream(target, { flags: 'a' });
    }
  }

  write(entry: AuditEntry): AuditRecord {
    const record: AuditRecord = { time: new Date(this.now()).toISOString(), ...entry };
    const line = JSON.stringify(record);
    this.#remember(record, Buffer.byteLength(line));
    this.#stream?.write(line + '\n');
    return record;
  }

  #remember(record: AuditRecord, size: number): void {
    this.#recent.push(record);
    this.#sizes.push(size);
    this.#bytes += size;
    // The newest record always stays (its size is bounded by the request body limits).
    let drop = Math.max(0, this.#recent.length - this.keep);
    let bytes = this.#bytes;
    for (let i = 0; i < drop; i++) bytes -= this.#sizes[i]!;
    while (bytes > this.maxBytes && drop < this.#recent.length - 1) bytes -= this.#sizes[drop++]!;
    if (drop > 0) {
      this.#recent.splice(0, drop);
      this.#sizes.splice(0, drop);
      this.#bytes = bytes;
    }
  }

  /** Newest first. */
  recent(kind?: AuditKind, limit = 100): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (let i = this.#recent.length - 1; i >= 0 && out.length < limit; i--) {
      const r = this.#recent[i]!;
      if (!kind || r.kind === kind) out.push(r);
    }
    return out;
  }

  /** What the records kept in memory weigh, as JSON (for tests and self-telemetry). */
  get memoryBytes(): number {
    return this.#bytes;
  }

  async close(): Promise<void> {
    const s = this.#stream;
    if (s && s !== process.stdout && 'end' in s) await new Promise<void>((resolve) => (s as WriteStream).end(() => resolve()));
  }
}

/**
 * The records at the end of an existing audit file (at most `maxBytes` of it), oldest first, so
 * the console and /api/v1/audit show what happened before a restart. A line cut by the start of
 * the window, or not a record (a crash mid-write), is skipped; a file that cannot be read gives none.
 */
export function readTail(file: string, maxBytes: number): Array<[AuditRecord, number]> {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    readSync(fd, buf, 0, buf.length, start);
    const lines = buf.toString('utf8').split('\n');
    if (start > 0) lines.shift();
    const out: Array<[AuditRecord, number]> = [];
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as Partial<AuditRecord>;
        if (
          r &&
          typeof r === 'object' &&
          typeof r.time === 'string' &&
          (r.kind === 'control' || r.kind === 'remediation' || r.kind === 'admin')
        )
          out.push([r as AuditRecord, Buffer.byteLength(line)]);
      } catch {
        // Not a record: skipped.
      }
    }
    return out;
  } catch {
    return [];
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
