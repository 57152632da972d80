import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { ensurePrivateFile } from '../../src/private-file.js';

const dirs: string[] = [];
const tmp = (name: string) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'private-file-'));
  dirs.push(dir);
  return path.join(dir, name);
};
const mode = (f: string) => (statSync(f).mode & 0o777).toString(8);
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('private files (tasks.persist, the audit log)', () => {
  it('creates a missing file 0600 whatever the umask, and tightens an existing one without touching its content', () => {
    const previous = process.umask(0o022);
    try {
      const fresh = tmp('fresh');
      expect(ensurePrivateFile(fresh)).toBe(true);
      expect(mode(fresh)).toBe('600');
      const old = tmp('old');
      writeFileSync(old, 'kept\n');
      chmodSync(old, 0o644);
      expect(ensurePrivateFile(old)).toBe(true);
      expect([mode(old), readFileSync(old, 'utf8')]).toEqual(['600', 'kept\n']);
    } finally {
      process.umask(previous);
    }
  });

  it('the audit log file is 0600', async () => {
    const file = tmp('audit.jsonl');
    const audit = new AuditLog(file);
    audit.write({ kind: 'admin', action: 'test' });
    await audit.close();
    expect(mode(file)).toBe('600');
    expect(readFileSync(file, 'utf8')).toContain('"action":"test"');
  });
});
