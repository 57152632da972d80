import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/exporter.js';

/** The real entry point, run from source the way `node dist/main.js` runs the build. */
const MAIN = ['--import', 'tsx', path.resolve('src/main.ts')];

function run(args: string[]) {
  return spawnSync(process.execPath, [...MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('the celery-autopilot command', () => {
  it('--check-config accepts a valid configuration and the shipped remediation rules', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-cli-'));
    writeFileSync(path.join(dir, 'token'), 'a-long-enough-webhook-token\n');
    const config = path.join(dir, 'config.yaml');
    writeFileSync(
      config,
      `remediation:\n  enabled: true\n  rules_file: ${path.resolve('alertmanager/remediation-rules.yml')}\n  webhook: { bearer_token_file: ${path.join(dir, 'token')} }\n`,
    );
    const r = run(['--config', config, '--check-config']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^configuration OK \(broker amqp:\/\/guest:\*\*\*@localhost:5672\/\/, \d+ remediation rules\)/);
    expect(r.status).toBe(0);
  });

  it('--check-config rejects bad values with every problem and exit status 2, printing no secret', () => {
    const r = run(['--check-config', '--port', 'nope', '--broker-url', 'redis://:hunter2@h/x', '--remediation-enabled', 'true']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--port: "nope" is not a number');
    expect(r.stderr).toContain('remediation.rules_file: remediation is enabled but no rules file is given');
    expect(r.stderr).not.toContain('hunter2');
  });

  it('--check-config needs Kubernetes credentials for rules that scale Deployments, and reads a kubeconfig', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-cli-'));
    const rules = path.join(dir, 'rules.yml');
    writeFileSync(
      rules,
      'rules: [{ name: s, match: {}, action: scale_deployment, arguments: { by: 1 }, target: { deployment: w, namespace: celery }, bounds: { min_replicas: 1, max_replicas: 3 } }]\n',
    );
    const args = [
      '--check-config',
      '--remediation-enabled',
      'true',
      '--remediation-rules-file',
      rules,
      '--remediation-webhook-bearer-token',
      'a-long-enough-webhook-token',
    ];
    const outside = spawnSync(process.execPath, [...MAIN, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KUBERNETES_'))),
    });
    expect(outside.status).toBe(2);
    expect(outside.stderr).toContain('set kubernetes.kubeconfig');
    const kubeconfig = path.join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      'clusters: [{ name: c, cluster: { server: "https://127.0.0.1:6443" } }]\nusers: [{ name: u, user: { token: t } }]\ncontexts: [{ name: x, context: { cluster: c, user: u } }]\ncurrent-context: x\n',
    );
    const ok = run([...args, '--kubernetes-kubeconfig', kubeconfig]);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
  });

  it('--check-config reports an invalid rules file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-cli-'));
    const rules = path.join(dir, 'rules.yml');
    writeFileSync(rules, 'rules: [{ name: a, match: {}, action: shutdown, target: { worker_label: hostname } }]\n');
    const r = run([
      '--check-config',
      '--remediation-enabled',
      'true',
      '--remediation-rules-file',
      rules,
      '--remediation-webhook-bearer-token',
      'a-long-enough-webhook-token',
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('shutdown is disabled (enable it in remediation.allow_dangerous_actions)');
  });

  it('--help lists every flag', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('--broker-transport-options-global-keyprefix');
    expect(r.stdout).toContain('--cardinality-max-task-series');
  });

  it('names at start the scrape job the shipped alert rules select, and stops gracefully on SIGTERM with status 0', async () => {
    const child = spawn(process.execPath, [...MAIN, '--port', '0', '--listen-address', '127.0.0.1', '--log-level', 'info'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor('listening', () => (log.includes('celery-autopilot listening') ? true : undefined), 30_000);
    const lines = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { alert_rules_selector?: string; msg: string });
    const rulesLine = lines.find((l) => l.alert_rules_selector !== undefined);
    expect(rulesLine?.alert_rules_selector).toBe('{job="celery-autopilot"}');
    expect(rulesLine?.msg).toContain('scrape this service under that job name');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).toContain('shutting down');
  });
});
