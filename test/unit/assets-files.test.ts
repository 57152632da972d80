import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { prepareCommand } from '../../src/control/commands.js';
import { SCRAPE_JOB } from '../../src/metrics/self-metrics.js';
import { compileRules } from '../../src/remediation/rules.js';
import { render } from '../../src/remediation/template.js';
import { ALERT_RULES_FILE, ALERTMANAGER_CONFIG_FILE, REPO_ROOT } from '../support/prometheus.js';

/**
 * The shipped Dockerfile, docker-compose.yml and the files they wire together, checked for what
 * no tool here can run (there is no Docker engine): that every path one file names is the path
 * another file mounts, that the service would accept its configuration, and that the remediation
 * rules turn the shipped alerts into commands the control layer accepts.
 */

const read = (rel: string) => readFileSync(path.join(REPO_ROOT, rel), 'utf8');
// merge: docker-compose.yml shares the demo app's settings through a `<<:` merge key.
const yamlOf = <T>(rel: string) => parseYaml(read(rel), { merge: true }) as T;

/** The Alertmanager webhook path (README, Remediation section). */
const WEBHOOK_PATH = '/api/v1/alertmanager';

// ---- Dockerfile ----

interface Instruction {
  keyword: string;
  args: string;
}

/** Instructions in order: comments dropped, `\` continuations joined, keywords upper-cased. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    if (pending === '' && /^\s*(#|$)/.test(line)) continue;
    if (/\\\s*$/.test(line)) {
      pending += line.replace(/\\\s*$/, ' ');
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const m = /^(\w+)\s+(.*)$/s.exec(full);
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim() });
  }
  return out;
}

/** Stages, each starting at its FROM, with ARGs declared before the first FROM substituted. */
function stagesOf(instructions: Instruction[]): Array<{ image: string; name?: string; body: Instruction[] }> {
  const globalArgs = new Map<string, string>();
  const stages: Array<{ image: string; name?: string; body: Instruction[] }> = [];
  for (const i of instructions) {
    if (i.keyword === 'ARG' && stages.length === 0) {
      const [k, v] = i.args.split('=');
      globalArgs.set(k!, v ?? '');
    } else if (i.keyword === 'FROM') {
      const [image, as, name] = i.args.split(/\s+/);
      const resolved = image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a?: string, b?: string) => globalArgs.get((a ?? b)!) ?? '');
      stages.push({ image: resolved, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), body: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.body.push(i);
    }
  }
  return stages;
}

/**
 * .dockerignore: is this path excluded? A pattern matches exactly, a parent directory, or a `**`
 * suffix; a `!pattern` lets a path through again; as in Docker, the last matching line decides.
 */
function dockerIgnored(patterns: string[], file: string): boolean {
  const matches = (p: string) => {
    const clean = p.replace(/^\//, '').replace(/\/$/, '');
    if (clean.startsWith('**/')) return file.split('/').includes(clean.slice(3));
    if (clean.includes('*')) return new RegExp(`^${clean.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`).test(file);
    return file === clean || file.startsWith(clean + '/');
  };
  let ignored = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matches(p.slice(1))) ignored = false;
    } else if (matches(p)) ignored = true;
  }
  return ignored;
}

describe('Dockerfile of celery-autopilot', () => {
  const instructions = parseDockerfile(read('Dockerfile'));
  const stages = stagesOf(instructions);
  const final = stages.at(-1)!;
  const inFinal = (keyword: string) => final.body.filter((i) => i.keyword === keyword);
  const ignore = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it('is multi-stage on a current Node LTS slim or alpine image, pinned to a major version', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.image).toMatch(/^node:(22|24)(\.\d+)*-(bookworm-slim|trixie-slim|slim|alpine(\d+(\.\d+)*)?)$/);
  });

  it('installs production dependencies only with npm ci --omit=dev, and ships them with dist/', () => {
    const prod = stages.find((s) => s.body.some((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args) && /--omit=dev\b/.test(i.args)));
    expect(prod?.name, 'a named stage runs npm ci --omit=dev').toBeDefined();
    const copies = inFinal('COPY').map((i) => i.args);
    expect(copies).toContainEqual(expect.stringMatching(new RegExp(`^--from=${prod!.name}\\s+\\S*node_modules\\s`)));
    expect(copies).toContainEqual(expect.stringMatching(/^--from=\S+\s+\S*\/dist\s/));
    // No dev dependencies in the image that runs.
    expect(inFinal('RUN').filter((i) => /\bnpm (ci|install)\b/.test(i.args))).toEqual([]);
  });

  it('runs as a non-root user, exposes 9818 and starts dist/main.js with the flags of npm start', () => {
    const user = inFinal('USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const order = final.body.map((i) => i.keyword);
    expect(order.lastIndexOf('USER')).toBeLessThan(order.indexOf('ENTRYPOINT'));
    expect(inFinal('EXPOSE').map((i) => i.args)).toContain('9818');
    const entrypoint = JSON.parse(inFinal('ENTRYPOINT').at(-1)!.args) as string[];
    const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start;
    expect(entrypoint.join(' ')).toBe(start);
  });

  it('has a HEALTHCHECK on /-/healthy with node fetch, no curl or wget', () => {
    const check = inFinal('HEALTHCHECK');
    expect(check).toHaveLength(1);
    const args = check[0]!.args;
    expect(args).toMatch(/\bCMD\s+\["node", "-e", /);
    expect(args).toContain('/-/healthy');
    expect(args).toContain('fetch(');
    expect(args).not.toMatch(/\b(curl|wget)\b/);
  });

  it('copies only files that exist and that .dockerignore lets through', () => {
    for (const s of stages) {
      for (const c of s.body.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from='))) {
        const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
        for (const src of parts.slice(0, -1)) {
          expect(existsSync(path.join(REPO_ROOT, src)), `${src} exists`).toBe(true);
          expect(dockerIgnored(ignore, src), `${src} is not excluded by .dockerignore`).toBe(false);
        }
      }
    }
    for (const heavy of ['node_modules', '.git', 'dist', 'test']) expect(dockerIgnored(ignore, heavy), `${heavy} excluded`).toBe(true);
    // `npm run build` in the build stage runs tsc and then the script that copies the console's
    // browser files into dist/: that script must be in the stage, and nothing else of scripts/.
    const build = stages.find((s) => s.body.some((i) => i.keyword === 'RUN' && /\bnpm run build\b/.test(i.args)))!;
    const buildScript = (JSON.parse(read('package.json')) as { scripts: { build: string } }).scripts.build;
    const copied = build.body.filter((i) => i.keyword === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const needed of buildScript.match(/scripts\/\S+/g) ?? []) expect(copied).toContain(needed);
    expect(dockerIgnored(ignore, 'scripts/check-size.mjs')).toBe(true);
    expect(instructions.filter((i) => i.keyword === 'ADD')).toEqual([]);
    expect(read('Dockerfile')).not.toMatch(/:latest\b/);
  });

  it('gives the demo app image a pinned base and a non-root user too', () => {
    const demo = stagesOf(parseDockerfile(read('docker/demo/Dockerfile')));
    expect(demo.at(-1)!.image).toMatch(/^python:3\.\d+-slim/);
    expect(
      demo
        .at(-1)!
        .body.filter((i) => i.keyword === 'USER')
        .at(-1)?.args,
    ).toMatch(/^(?!root|0)\w+/);
  });
});

// ---- docker-compose.yml and what it wires together ----

interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test: string[] };
}

describe('docker-compose.yml', () => {
  const compose = yamlOf<{ services: Record<string, Service>; volumes?: Record<string, unknown> }>('docker-compose.yml');
  const services = compose.services;
  /** container path → repo-relative source, for bind mounts. */
  const mounts = (name: string): Map<string, string> =>
    new Map(
      (services[name]!.volumes ?? [])
        .filter((v) => v.startsWith('./'))
        .map((v) => {
          const [src, dst] = v.split(':');
          return [dst!, src!.slice(2)];
        }),
    );
  const flag = (name: string, key: string): string | undefined => {
    const cmd = services[name]!.command;
    const args = Array.isArray(cmd) ? cmd : (cmd ?? '').split(/\s+/);
    for (let i = 0; i < args.length; i++) {
      if (args[i] === key) return args[i + 1];
      if (args[i]!.startsWith(`${key}=`)) return args[i]!.slice(key.length + 1);
    }
    return undefined;
  };

  it('runs the whole loop: brokers, demo workers and load, celery-autopilot, Prometheus, Alertmanager, Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'alertmanager',
        'celery-autopilot',
        'grafana',
        'loadgen',
        'prometheus',
        'rabbitmq',
        'redis',
        'worker-default',
        'worker-images',
      ].sort(),
    );
    for (const [name, s] of Object.entries(services)) {
      if (s.image) expect(s.image, `${name} image pinned`).toMatch(/:(?!latest$)[\w.-]+$/);
      else expect(s.build, `${name} builds`).toBeDefined();
    }
    for (const w of ['worker-default', 'worker-images']) {
      const cmd = services[w]!.command as string[];
      expect(cmd.slice(0, 4), w).toEqual(['celery', '-A', 'app', 'worker']);
      expect(cmd, `${w} sends task events`).toContain('-E');
    }
  });

  it('mounts only files and directories that exist', () => {
    for (const name of Object.keys(services)) {
      for (const [dst, src] of mounts(name)) expect(existsSync(path.join(REPO_ROOT, src)), `${name}: ${src} → ${dst}`).toBe(true);
    }
  });

  it('builds celery-autopilot from this repo and gives it a configuration the service accepts', () => {
    const s = services['celery-autopilot']!;
    expect(s.build).toBe('.');
    expect(s.ports).toContain('127.0.0.1:9818:9818');
    const configPath = flag('celery-autopilot', '--config')!;
    const configSrc = mounts('celery-autopilot').get(configPath);
    expect(configSrc, `${configPath} is mounted`).toBeDefined();
    // The service's own loader, with the compose environment: unknown keys or flags would fail here.
    const { config } = loadConfig({ argv: ['--config', path.join(REPO_ROOT, configSrc!)], env: s.environment ?? {} });
    expect(config!.broker.display).toContain('rabbitmq:5672');
    expect(config!.remediation.enabled).toBe(true);
    expect(mounts('celery-autopilot').get(config!.remediation.rules_file!)).toBe('alertmanager/remediation-rules.yml');
    // celery-autopilot and Alertmanager read the same token file.
    const tokenFile = config!.remediation.webhook.bearer_token_file!;
    const amConfig = yamlOf<{
      receivers: Array<{
        name: string;
        webhook_configs?: Array<{
          url: string;
          send_resolved?: boolean;
          http_config?: { authorization?: { type?: string; credentials_file?: string } };
        }>;
      }>;
    }>('alertmanager/alertmanager.yml');
    const hook = amConfig.receivers.find((r) => r.webhook_configs)!.webhook_configs![0]!;
    expect(mounts('celery-autopilot').get(tokenFile)).toBe(mounts('alertmanager').get(hook.http_config!.authorization!.credentials_file!));
    expect(hook.http_config!.authorization!.type ?? 'Bearer').toBe('Bearer');
    expect(hook.send_resolved).toBe(true);
    const url = new URL(hook.url);
    expect({ host: url.hostname, port: url.port, path: url.pathname }).toEqual({
      host: 'celery-autopilot',
      port: '9818',
      path: WEBHOOK_PATH,
    });
  });

  it('has Prometheus scrape celery-autopilot with the job name the alerts expect, load the rules, and alert to Alertmanager', () => {
    const configPath = flag('prometheus', '--config.file')!;
    const src = mounts('prometheus').get(configPath)!;
    const prom = yamlOf<{
      rule_files: string[];
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    }>(src);
    const job = prom.scrape_configs.find((j) => j.static_configs.some((c) => c.targets.includes('celery-autopilot:9818')));
    expect(read('alertmanager/celery-alerts.rules.yml')).toContain(`up{job="${job?.job_name}"}`);
    const rulesMount = [...mounts('prometheus')].find(([, s]) => s === 'alertmanager/celery-alerts.rules.yml')?.[0];
    expect(rulesMount).toBeDefined();
    const globs = prom.rule_files.map((g) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`));
    expect(
      globs.some((g) => g.test(rulesMount!)),
      `${rulesMount} matches rule_files`,
    ).toBe(true);
    expect(prom.alerting.alertmanagers[0]!.static_configs[0]!.targets).toEqual(['alertmanager:9093']);
    expect(mounts('alertmanager').get(flag('alertmanager', '--config.file')!)).toBe('alertmanager/alertmanager.yml');
  });

  it('provisions Grafana with the Prometheus data source and the shipped dashboard, no clicks needed', () => {
    const m = mounts('grafana');
    const provisioning = (kind: string) => [...m].find(([dst]) => dst === `/etc/grafana/provisioning/${kind}`)?.[1];
    const ds = yamlOf<{ datasources: Array<{ type: string; url: string; isDefault?: boolean }> }>(
      `${provisioning('datasources')}/prometheus.yml`,
    );
    expect(ds.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090', isDefault: true })]);
    const providers = yamlOf<{ providers: Array<{ type: string; options: { path: string } }> }>(
      `${provisioning('dashboards')}/celery-autopilot.yml`,
    ).providers;
    const dashboardsSrc = m.get(providers[0]!.options.path);
    expect(dashboardsSrc).toBe('grafana/dashboards');
    expect(existsSync(path.join(REPO_ROOT, dashboardsSrc!, 'celery-autopilot.json'))).toBe(true);
    const home = services.grafana!.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(home).toBe(`${providers[0]!.options.path}/celery-autopilot.json`);
  });

  it('waits for healthy brokers before starting what connects to them', () => {
    for (const broker of ['rabbitmq', 'redis']) expect(services[broker]!.healthcheck?.test.length, broker).toBeGreaterThan(0);
    for (const name of ['worker-default', 'worker-images', 'loadgen', 'celery-autopilot']) {
      expect((services[name]!.depends_on as Record<string, { condition: string }>).rabbitmq, name).toEqual({
        condition: 'service_healthy',
      });
    }
  });
});

// ---- remediation rules through the service's own parser and command validators ----

describe('one scrape job name for the exporter', () => {
  // The shipped rules select job="celery-autopilot": a Prometheus that scrapes the exporter under
  // another name loads them, passes promtool and never fires.
  it('every job matcher of the alert rules is the documented scrape job, and its absence is an alert', () => {
    // Comments aside: the header shows how to rename the job with sed.
    const rules = read('alertmanager/celery-alerts.rules.yml').replace(/^\s*#.*$/gm, '');
    const matchers = [...rules.matchAll(/\bjob\s*(=~?|!=)\s*"([^"]*)"/g)].map((m) => `${m[1]}"${m[2]}"`);
    expect(matchers.length).toBeGreaterThan(10);
    expect(new Set(matchers)).toEqual(new Set([`="${SCRAPE_JOB}"`]));
    expect(rules).toContain(`expr: absent(up{job="${SCRAPE_JOB}"})`);
  });

  it.each(['README.md', 'docs/assets.md', 'docs/security.md', 'CONTRIBUTING.md', 'docker/prometheus.yml'])(
    '%s scrapes celery-autopilot only as that job',
    (file) => {
      const text = read(file);
      const jobs = [...text.matchAll(/job_name:\s*['"]?([\w.-]+)/g)].map((m) => m[1]);
      const exporterJobs = file === 'docker/prometheus.yml' ? jobs.filter((j) => j !== 'prometheus' && j !== 'alertmanager') : jobs;
      for (const job of exporterJobs) expect(job, file).toBe(SCRAPE_JOB);
      for (const m of text.matchAll(/\bjob="([^"$]*)"/g)) expect(m[1], file).toBe(SCRAPE_JOB);
    },
  );
});

describe('remediation rules file', () => {
  interface AlertRule {
    alert?: string;
    expr: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  }
  const alerts = yamlOf<{ groups: Array<{ rules: AlertRule[] }> }>(path.relative(REPO_ROOT, ALERT_RULES_FILE))
    .groups.flatMap((g) => g.rules)
    .filter((r) => r.alert);
  const rules = compileRules(read('alertmanager/remediation-rules.yml'), [], 'alertmanager/remediation-rules.yml');

  it("passes the service's rules validation with no dangerous action enabled", () => {
    expect(rules.map((r) => r.name)).toEqual(['grow-workers-on-backlog', 'add-consumer-on-orphaned-queue', 'rate-limit-failing-task']);
  });

  it('renders, for every shipped alert a rule matches, arguments the control layer accepts', () => {
    /** An alert as Alertmanager would post it: the rule's labels, values for the labels its expression keeps. */
    const sample: Record<string, string> = { queue_name: 'images', hostname: 'celery@worker-1', name: 'tasks.resize_image' };
    let checked = 0;
    for (const a of alerts) {
      const kept = [...a.expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
      const labels: Record<string, string> = {
        alertname: a.alert!,
        ...Object.fromEntries(kept.filter((k) => sample[k]).map((k) => [k, sample[k]!])),
        ...a.labels,
      };
      // Only the plain annotations: the others are Go templates Prometheus expands.
      const annotations = Object.fromEntries(Object.entries(a.annotations ?? {}).filter(([, v]) => !v.includes('{{')));
      for (const status of ['firing', 'resolved'] as const) {
        const alert = { status, labels, annotations, startsAt: '2026-01-01T00:00:00Z', fingerprint: 'f' };
        for (const r of rules.filter(
          (r) =>
            Object.entries(r.match.labels).every(([k, v]) => labels[k] === v) && r.regexes.every(([k, re]) => re.test(labels[k] ?? '')),
        )) {
          const step = status === 'firing' ? r : r.on_resolved;
          if (!step) continue;
          const args = render(step.arguments, alert) as Record<string, unknown>;
          expect(() => prepareCommand(step.action, args), `${r.name} on ${status} ${a.alert}: ${JSON.stringify(args)}`).not.toThrow();
          checked++;
        }
      }
    }
    // grow (CeleryQueueBacklog, CeleryQueueWaitHigh) and shrink back, add_consumer, rate limit and lift.
    expect(checked).toBe(7);
  });

  it('is the file the Alertmanager route sends to: every actionable alert reaches the webhook receiver', () => {
    const am = yamlOf<{ route: { routes: Array<{ receiver: string; matchers?: string[]; continue?: boolean }> } }>(
      path.relative(REPO_ROOT, ALERTMANAGER_CONFIG_FILE),
    );
    const webhookRoute = am.route.routes.find((r) => r.receiver === 'celery-autopilot')!;
    expect(webhookRoute.matchers).toEqual(['autopilot_action=~".+"', 'autopilot_action!="none"']);
    expect(webhookRoute.continue).toBe(true);
    for (const r of rules) {
      const hinted = alerts.filter((a) => a.labels?.autopilot_action === r.action);
      expect(hinted.length, `an alert hints ${r.action}`).toBeGreaterThan(0);
    }
  });
});
