import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CELERY_PYTHON } from '../support/celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import {
  ALERT_RULES_FILE,
  ALERTMANAGER_CONFIG_FILE,
  REPO_ROOT,
  alertRulesWith,
  freePort,
  startAlertmanager,
  type RunningAlertmanager,
} from '../support/prometheus.js';

/**
 * The shipped Prometheus rules, Alertmanager config, compose file and Dockerfile health check,
 * checked by the real tools (promtool, amtool, docker-compose, Alertmanager itself, node).
 */

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 10 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0;
        resolve({ code, stdout, stderr: stderr + (error && code === -1 ? String(error) : '') });
      },
    );
  });
}

const expectOk = (r: RunResult, what: string) =>
  expect({ what, code: r.code, output: r.code === 0 ? '' : r.stdout + r.stderr }).toEqual({ what, code: 0, output: '' });

interface AlertRule {
  alert?: string;
  labels?: Record<string, string>;
}
const alertRules = async (): Promise<AlertRule[]> =>
  (parseYaml(await readFile(ALERT_RULES_FILE, 'utf8')) as { groups: Array<{ rules: AlertRule[] }> }).groups
    .flatMap((g) => g.rules)
    .filter((r) => r.alert);

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'cap-assets-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('Prometheus alert rules (promtool)', () => {
  it('pass promtool check rules', async () => {
    expectOk(await run('promtool', ['check', 'rules', ALERT_RULES_FILE]), 'promtool check rules');
  });

  it('pass their unit tests, which make every alert fire once and stay silent once', async () => {
    const testFile = path.join(REPO_ROOT, 'alertmanager/celery-alerts.test.yml');
    expectOk(await run('promtool', ['test', 'rules', testFile]), 'promtool test rules');
    const tests = (
      parseYaml(await readFile(testFile, 'utf8')) as {
        tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
      }
    ).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of await alertRules()) {
      const cases = tests.filter((t) => t.alertname === alert);
      expect(
        cases.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert} has a case where it fires`,
      ).toBe(true);
      expect(
        cases.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert} has a case where it stays silent`,
      ).toBe(true);
    }
  });

  it('can be tightened for tests: CeleryQueueBacklog with threshold 3 and for 2s fires within seconds', async () => {
    const rulesFile = path.join(scratch, 'fast.rules.yml');
    await writeFile(rulesFile, await alertRulesWith({ CeleryQueueBacklog: { threshold: 3, for: '2s' } }));
    expectOk(await run('promtool', ['check', 'rules', rulesFile]), 'promtool check rules (fast variant)');
    const testFile = path.join(scratch, 'fast.test.yml');
    await writeFile(
      testFile,
      stringifyYaml({
        rule_files: [rulesFile],
        evaluation_interval: '1s',
        tests: [
          {
            interval: '1s',
            input_series: [
              { series: 'celery_queue_length{job="celery-autopilot", queue_name="work"}', values: '4x10' },
              { series: 'celery_active_worker_count{job="celery-autopilot", queue_name="work"}', values: '1x10' },
              { series: 'celery_queue_length{job="celery-autopilot", queue_name="calm"}', values: '3x10' },
              { series: 'celery_active_worker_count{job="celery-autopilot", queue_name="calm"}', values: '1x10' },
            ],
            alert_rule_test: [
              { eval_time: '1s', alertname: 'CeleryQueueBacklog', exp_alerts: [] },
              {
                eval_time: '3s',
                alertname: 'CeleryQueueBacklog',
                exp_alerts: [
                  {
                    exp_labels: { queue_name: 'work', severity: 'warning', autopilot_action: 'pool_grow' },
                    exp_annotations: {
                      summary: 'Celery queue work has a backlog of 4 messages',
                      description:
                        'More than 100 messages have waited in queue work for 5 minutes while workers consume it: they do not keep up.',
                      autopilot_grow_by: '1',
                    },
                  },
                ],
              },
            ],
          },
        ],
      }),
    );
    expectOk(await run('promtool', ['test', 'rules', testFile]), 'promtool test rules (fast variant)');
    await expect(alertRulesWith({ NoSuchAlert: { for: '1s' } })).rejects.toThrow('no such alert');
  });
});

describe('Alertmanager config (amtool and a real Alertmanager)', () => {
  it('passes amtool check-config', async () => {
    expectOk(await run('amtool', ['check-config', ALERTMANAGER_CONFIG_FILE]), 'amtool check-config');
  });

  it('routes every actionable alert to celery-autopilot and on to people, the rest to people only', async () => {
    for (const a of await alertRules()) {
      const labels = Object.entries({ alertname: a.alert!, ...a.labels }).map(([k, v]) => `${k}=${v}`);
      const r = await run('amtool', ['config', 'routes', 'test', `--config.file=${ALERTMANAGER_CONFIG_FILE}`, ...labels]);
      expectOk(r, `amtool config routes test ${a.alert}`);
      const expected = a.labels?.autopilot_action === 'none' ? 'oncall' : 'celery-autopilot,oncall';
      expect(r.stdout.trim(), a.alert).toBe(expected);
    }
  });

  describe('a real Alertmanager with the shipped config', () => {
    let alertmanager: RunningAlertmanager;
    let server: Server;
    const received: Array<{
      url: string;
      authorization: string | undefined;
      body: { version: string; status: string; alerts: Array<{ status: string; labels: Record<string, string> }> };
    }> = [];
    const token = 'assets-test-token-0123456789abcdef';

    beforeAll(async () => {
      server = createServer((req: IncomingMessage, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString('utf8')));
        req.on('end', () => {
          received.push({
            url: req.url ?? '',
            authorization: req.headers.authorization,
            body: JSON.parse(body) as (typeof received)[number]['body'],
          });
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        });
      });
      const port = await freePort();
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      // The shipped config, pointed at this test's receiver and token file; nothing else changes.
      const tokenFile = path.join(scratch, 'webhook-token');
      await writeFile(tokenFile, `${token}\n`);
      const config = parseYaml(await readFile(ALERTMANAGER_CONFIG_FILE, 'utf8')) as {
        receivers: Array<{ webhook_configs?: Array<{ url: string; http_config: { authorization: { credentials_file: string } } }> }>;
      };
      const hook = config.receivers.find((r) => r.webhook_configs)!.webhook_configs![0]!;
      const shipped = new URL(hook.url);
      hook.url = `http://127.0.0.1:${port}${shipped.pathname}`;
      hook.http_config.authorization.credentials_file = tokenFile;
      alertmanager = await startAlertmanager({ config: stringifyYaml(config) });
    });

    afterAll(async () => {
      await alertmanager?.stop();
      await new Promise((r) => server?.close(r));
    });

    it('posts an actionable alert to the webhook path with the bearer token from the file, payload version 4', async () => {
      const now = new Date().toISOString();
      await alertmanager.postAlerts([
        {
          labels: { alertname: 'CeleryQueueBacklog', queue_name: 'images', severity: 'warning', autopilot_action: 'pool_grow' },
          annotations: { autopilot_grow_by: '1' },
          startsAt: now,
        },
        {
          labels: { alertname: 'CeleryWorkerDown', hostname: 'celery@gone', severity: 'warning', autopilot_action: 'none' },
          startsAt: now,
        },
      ]);
      const delivery = await waitFor(
        'a webhook delivery',
        () => received[0],
        30_000,
        200,
        () => alertmanager.logs(),
      );
      expect(delivery.url).toBe('/api/v1/alertmanager');
      expect(delivery.authorization).toBe(`Bearer ${token}`);
      expect(delivery.body.version).toBe('4');
      expect(delivery.body.alerts.map((a) => [a.status, a.labels.alertname, a.labels.queue_name])).toEqual([
        ['firing', 'CeleryQueueBacklog', 'images'],
      ]);
      // The alert with autopilot_action="none" never goes to the webhook (amtool above proves the
      // route; here every delivery that did arrive is the actionable one).
      expect(received.flatMap((r) => r.body.alerts.map((a) => a.labels.alertname)).filter((n) => n !== 'CeleryQueueBacklog')).toEqual([]);
    });
  });
});

describe('docker-compose.yml and the demo stack files', () => {
  it('is valid for docker-compose (Debian 1.29, no Docker engine needed for `config`)', async () => {
    const which = await run('sh', ['-c', 'command -v docker-compose']);
    expect(which.code, 'docker-compose is installed (scripts/prereqs.sh: apt-get install docker-compose)').toBe(0);
    const env = { ...process.env };
    delete env.DOCKER_HOST;
    expectOk(await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '--quiet'], { env }), 'docker-compose config');
    const services = (await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '--services'], { env })).stdout
      .trim()
      .split('\n')
      .sort();
    expect(services).toEqual([
      'alertmanager',
      'celery-autopilot',
      'grafana',
      'loadgen',
      'prometheus',
      'rabbitmq',
      'redis',
      'worker-default',
      'worker-images',
    ]);
  });

  it("has a Prometheus config that promtool accepts, with the shipped rules in place of the container's rule path", async () => {
    const config = parseYaml(await readFile(path.join(REPO_ROOT, 'docker/prometheus.yml'), 'utf8')) as { rule_files: string[] };
    expect(config.rule_files).toEqual(['/etc/prometheus/rules/*.yml']);
    config.rule_files = [ALERT_RULES_FILE];
    const file = path.join(scratch, 'prometheus.yml');
    await writeFile(file, stringifyYaml(config));
    const r = await run('promtool', ['check', 'config', file]);
    expectOk(r, 'promtool check config');
    expect(r.stdout + r.stderr).toContain('SUCCESS: 11 rules found');
  });

  it('has a demo Celery app that imports under Celery 5 and a load generator that compiles', async () => {
    const demo = path.join(REPO_ROOT, 'docker/demo');
    const env = { ...process.env, PYTHONPATH: demo, PYTHONDONTWRITEBYTECODE: '1' };
    const r = await run(
      CELERY_PYTHON,
      ['-c', 'import app, loadgen; print(",".join(sorted(t for t in app.app.tasks if t.startswith("tasks."))))'],
      { cwd: demo, env },
    );
    expectOk(r, 'import demo app');
    expect(r.stdout.trim()).toBe('tasks.add,tasks.build_report,tasks.resize_image,tasks.send_email,tasks.sync_inventory');
  });
});

describe('Dockerfile HEALTHCHECK command', () => {
  let exporter: RunningExporter;
  let script: string;

  beforeAll(async () => {
    const dockerfile = await readFile(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
    const line = dockerfile
      .replace(/\\\n/g, ' ')
      .split('\n')
      .find((l) => l.startsWith('HEALTHCHECK'))!;
    const cmd = JSON.parse(line.slice(line.indexOf('['))) as string[];
    expect(cmd.slice(0, 2)).toEqual(['node', '-e']);
    script = cmd[2]!;
    // Liveness does not depend on the broker: nothing listens on port 1.
    exporter = await startExporter(['--broker-url', 'amqp://guest:guest@127.0.0.1:1//']);
  });

  afterAll(async () => {
    await exporter?.stop();
  });

  it('exits 0 against a live celery-autopilot (even with its broker down) and 1 when nothing answers', async () => {
    const port = new URL(exporter.url).port;
    const env = (p: string) => ({ ...process.env, CELERY_AUTOPILOT_PORT: p });
    expect((await run(process.execPath, ['-e', script], { env: env(port), timeoutMs: 20_000 })).code).toBe(0);
    expect((await run(process.execPath, ['-e', script], { env: env(String(await freePort())), timeoutMs: 20_000 })).code).toBe(1);
  });
});
