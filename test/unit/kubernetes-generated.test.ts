import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'scripts/generate-kubernetes.mjs');

/** Runs the generator; resolves with its exit code and stderr. */
async function generator(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(process.execPath, [SCRIPT, ...args], { timeout: 20_000 });
    return { code: 0, stderr };
  } catch (e) {
    const err = e as { code?: number; stderr?: string };
    return { code: err.code ?? 1, stderr: err.stderr ?? '' };
  }
}

describe('deploy/kubernetes generated objects', () => {
  it('the PrometheusRule and the dashboard ConfigMap match their sources (scripts/generate-kubernetes.mjs --check)', async () => {
    const { code, stderr } = await generator('--check');
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('the PrometheusRule holds exactly the groups of alertmanager/celery-alerts.rules.yml', async () => {
    const rules = parseYaml(await readFile(path.join(ROOT, 'alertmanager/celery-alerts.rules.yml'), 'utf8')) as { groups: unknown };
    const object = parseYaml(await readFile(path.join(ROOT, 'deploy/kubernetes/base/prometheusrule.yaml'), 'utf8')) as {
      kind: string;
      spec: { groups: unknown };
    };
    expect(object.kind).toBe('PrometheusRule');
    expect(object.spec.groups).toEqual(rules.groups);
  });

  it('the dashboard ConfigMap carries the Grafana sidecar label and the dashboard itself', async () => {
    const dashboard = JSON.parse(await readFile(path.join(ROOT, 'grafana/dashboards/celery-autopilot.json'), 'utf8')) as unknown;
    const object = parseYaml(await readFile(path.join(ROOT, 'deploy/kubernetes/base/grafana-dashboard.yaml'), 'utf8')) as {
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(object.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(object.data['celery-autopilot.json']!)).toEqual(dashboard);
  });

  describe('drift is caught', () => {
    let scratch: string;
    beforeAll(async () => {
      scratch = await mkdtemp(path.join(tmpdir(), 'cap-k8s-gen-'));
      for (const dir of ['alertmanager', 'grafana', 'deploy']) await cp(path.join(ROOT, dir), path.join(scratch, dir), { recursive: true });
    });
    afterAll(() => rm(scratch, { recursive: true, force: true }));

    it('an alert changed without regenerating fails --check, naming the file; regenerating fixes it', async () => {
      const file = path.join(scratch, 'alertmanager/celery-alerts.rules.yml');
      await writeFile(file, (await readFile(file, 'utf8')).replace('for: 5m', 'for: 7m'));
      const stale = await generator('--check', '--root', scratch);
      expect(stale.code).toBe(1);
      expect(stale.stderr).toContain('deploy/kubernetes/base/prometheusrule.yaml');
      expect(stale.stderr).not.toContain('grafana-dashboard.yaml');
      expect((await generator('--root', scratch)).code).toBe(0);
      expect(await generator('--check', '--root', scratch)).toEqual({ code: 0, stderr: '' });
      expect(await readFile(path.join(scratch, 'deploy/kubernetes/base/prometheusrule.yaml'), 'utf8')).toContain('for: 7m');
    });

    it('a dashboard edit fails --check too', async () => {
      const file = path.join(scratch, 'grafana/dashboards/celery-autopilot.json');
      const doc = JSON.parse(await readFile(file, 'utf8')) as { title: string };
      doc.title += ' (edited)';
      await writeFile(file, JSON.stringify(doc));
      const stale = await generator('--check', '--root', scratch);
      expect(stale.code).toBe(1);
      expect(stale.stderr).toContain('deploy/kubernetes/base/grafana-dashboard.yaml');
    });
  });
});
