import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { ruleSentence } from '../../src/console/rule-sentence.js';
import { compileRules } from '../../src/remediation/rules.js';

const FAULTS = readFileSync(new URL('../fixtures/remediation/faults.yml', import.meta.url), 'utf8');
const sentence = (name: string) => ruleSentence(compileRules(FAULTS, []).find((r) => r.name === name)!);

describe('remediation rules as sentences', () => {
  it.each([
    [
      'grow-on-backlog',
      'When TestBacklog fires, grow the pool of the workers consuming the queue in its queue_name label (n = {{ annotations.grow_by | default: 1 }}), up to 4 pool processes; at most once per 1 h per target.',
    ],
    [
      'grow-named-worker',
      'When HostBusy fires, grow the pool of the worker named in its hostname label (n = 1), up to 4 pool processes; at most 3 times per 1 h.',
    ],
    [
      'shrink-named-worker',
      expect.stringMatching(
        /^When HostIdle fires, shrink the pool of the worker named in its hostname label \(n = 1\), down to 1 pool process/,
      ),
    ],
  ])('%s reads: %s', (name, text) => {
    expect(sentence(name)).toEqual(text);
  });

  it('every rule of the fixture reads as a sentence, none as JSON', () => {
    for (const r of compileRules(FAULTS, [])) {
      const s = ruleSentence(r);
      expect(s).toMatch(/^When \S+/);
      expect(s).not.toMatch(/[{]"/);
    }
  });
});

describe('audit log after a restart', () => {
  it('the tail of the file is read back at start, oldest first, bad lines skipped, within the memory bound', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'audit-')), 'audit.jsonl');
    writeFileSync(file, '');
    for (let i = 0; i < 5; i++)
      appendFileSync(file, `${JSON.stringify({ time: `2027-01-01T00:00:0${i}.000Z`, kind: 'control', command: `c${i}` })}\n`);
    appendFileSync(file, '{"time": "2027-01-01T00:00:09.000Z", "kind": "control", "comm\n');
    appendFileSync(file, `${JSON.stringify({ time: '2027-01-01T00:00:10.000Z', kind: 'remediation', rule: 'grow' })}\n`);
    const after = new AuditLog(file, 4);
    expect(after.recent().map((r) => r.command ?? r.rule)).toEqual(['grow', 'c4', 'c3', 'c2']);
    expect(after.recent('remediation')).toHaveLength(1);
    const tiny = new AuditLog(file, 1000, Date.now, 150);
    expect(tiny.recent().map((r) => r.command ?? r.rule)).toEqual(['grow']);
  });
});
