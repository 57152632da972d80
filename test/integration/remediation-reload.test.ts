import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';

const rule = (name: string) =>
  `rules:\n  - name: ${name}\n    match: { labels: { alertname: X } }\n    action: pool_shrink\n    target: { worker_label: hostname }\n    dry_run: true\n`;
const INVALID = 'rules:\n  - name: broken\n    match: {}\n    action: shutdown\n    target: { worker_label: hostname }\n';

/** Rules reload: validated whole, swapped atomically, the old rules kept when the new are bad. */
describe('remediation rules reload', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-reload-'));
  const rulesFile = path.join(dir, 'rules.yml');
  const admin = randomBytes(24).toString('hex');
  const operator = randomBytes(24).toString('hex');
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  const configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    stringify({
      broker_url: 'amqp://guest:guest@127.0.0.1:1//', // never reached: reload needs no broker
      audit: { file: '' },
      auth: {
        tokens: [
          { name: 'admin', sha256: sha(admin), role: 'admin' },
          { name: 'op', sha256: sha(operator), role: 'operator' },
        ],
      },
      remediation: { enabled: true, rules_file: rulesFile, webhook: { bearer_token: 'a-long-enough-webhook-token' } },
    }),
  );
  const running: RunningExporter[] = [];
  const as = (token: string) => ({ authorization: `Bearer ${token}` });
  const ruleNames = async (url: string) =>
    (
      (await (await fetch(`${url}/api/v1/remediation/rules`, { headers: as(admin) })).json()) as { rules: Array<{ name: string }> }
    ).rules.map((r) => r.name);

  afterAll(async () => {
    await Promise.allSettled(running.map((e) => e.stop()));
  });

  it('POST /api/v1/remediation/reload swaps in valid rules, keeps the old ones on invalid rules, and needs admin', async () => {
    writeFileSync(rulesFile, rule('first'));
    const e = await startExporter(['--config', configFile]);
    running.push(e);
    expect(await ruleNames(e.url)).toEqual(['first']);

    writeFileSync(rulesFile, rule('second'));
    expect((await fetch(`${e.url}/api/v1/remediation/reload`, { method: 'POST', headers: as(operator) })).status).toBe(403);
    expect(await ruleNames(e.url)).toEqual(['first']);
    const ok = await fetch(`${e.url}/api/v1/remediation/reload`, { method: 'POST', headers: as(admin) });
    expect([ok.status, await ok.json()]).toEqual([200, { rules: 1 }]);
    expect(await ruleNames(e.url)).toEqual(['second']);

    writeFileSync(rulesFile, INVALID);
    const bad = await fetch(`${e.url}/api/v1/remediation/reload`, { method: 'POST', headers: as(admin) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { problems: string[] }).problems.join('\n')).toContain('shutdown is disabled');
    expect(await ruleNames(e.url)).toEqual(['second']);
    expect(e.service.audit.recent('admin').map((r) => r.action)).toEqual(['reload_rules']);
  });

  it('SIGHUP reloads the rules of a running process; invalid rules leave it running with the old ones', async () => {
    writeFileSync(rulesFile, rule('before_hup'));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.resolve('src/main.ts'), '--config', configFile, '--port', '0', '--listen-address', '127.0.0.1'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const port = await waitFor('listening', () => /"port":(\d+)[^}]*"msg":"celery-autopilot listening/.exec(log)?.[1], 30_000);
      const url = `http://127.0.0.1:${port}`;
      expect(await ruleNames(url)).toEqual(['before_hup']);
      writeFileSync(rulesFile, rule('after_hup'));
      child.kill('SIGHUP');
      await waitFor('the reloaded rules', async () => ((await ruleNames(url)).includes('after_hup') ? true : undefined), 10_000);
      writeFileSync(rulesFile, INVALID);
      child.kill('SIGHUP');
      await waitFor('the refusal logged', () => (log.includes('remediation rules not reloaded') ? true : undefined), 10_000);
      expect(await ruleNames(url)).toEqual(['after_hup']);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
    }
  });
});
