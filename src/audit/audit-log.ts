import { createWriteStream, type WriteStream } from 'node:fs';

/** One audit record: who did (or decided) what, to which workers, and what came of it. */
export interface AuditEntry {
  readonly kind: 'control' | 'remediation' | 'admin';
  readonly [field: string]: unknown;
}

export interface AuditRecord extends AuditEntry {
  readonly time: string;
}

/**
 * An append-only JSON-lines audit log (a file, or stdout with "-"), plus the most recent records
 * in memory for the API. Secrets never reach it: callers pass principals and results, not
 * credentials.
 */
export class AuditLog {
  readonly #recent: AuditRecord[] = [];
  readonly #stream: WriteStream | NodeJS.WritableStream | undefined;

  constructor(
    target: string | undefined,
    private readonly keep = 1000,
    private readonly now: () => number = Date.now,
  ) {
    if (target === '-') this.#stream = process.stdout;
    else if (target) this.#stream = createWriteStream(target, { flags: 'a' });
  }

  write(entry: AuditEntry): AuditRecord {
    const record: AuditRecord = { time: new Date(this.now()).toISOString(), ...entry };
    this.#recent.push(record);
    if (this.#recent.length > this.keep) this.#recent.splice(0, this.#recent.length - this.keep);
    this.#stream?.write(JSON.stringify(record) + '\n');
    return record;
  }

  /** Newest first. */
  recent(kind?: AuditEntry['kind'], limit = 100): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (let i = this.#recent.length - 1; i >= 0 && out.length < limit; i--) {
      const r = this.#recent[i]!;
      if (!kind || r.kind === kind) out.push(r);
    }
    return out;
  }

  async close(): Promise<void> {
    const s = this.#stream;
    if (s && s !== process.stdout && 'end' in s) await new Promise<void>((resolve) => (s as WriteStream).end(() => resolve()));
  }
}
