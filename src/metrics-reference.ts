import { loadConfig } from './config/load.js';
import { silentLogger } from './log.js';
import type { TelemetryOwner } from './modules/module.js';
import { Service } from './service.js';
import { BrokerUnavailableError, type BrokerTransport } from './transport/transport.js';

/** A transport that never connects: a service built to list its telemetry is never started. */
const NO_BROKER: BrokerTransport = {
  kind: 'amqp',
  start: () => undefined,
  isConnected: () => false,
  broadcast: () => Promise.reject(new BrokerUnavailableError()),
  queueDepths: (queues) => Promise.resolve(queues.map((name) => ({ name, messages: null, consumers: null }))),
  purgeQueue: () => Promise.reject(new BrokerUnavailableError()),
  close: () => Promise.resolve(),
};

/**
 * The service as the default configuration builds it (plus `argv`), every module constructed and
 * nothing started: its `telemetry` names who registered each family /metrics exposes.
 */
export function serviceWithoutBroker(argv: string[] = []): Service {
  // Throws ConfigError on a bad flag; no config only for --help or --version.
  const { config } = loadConfig({ argv, env: {}, readFile: () => '' });
  if (!config) throw new Error('--help and --version build no service');
  return new Service(config, { logger: silentLogger(), transport: () => NO_BROKER });
}

/** What each owner's section opens with: where it is built and what its families are about. */
const OWNER_NOTES: Readonly<Record<string, string>> = {
  exporter:
    "`modules/exporter.ts`. The Celery metrics keep celery-exporter's names, types and labels; the `celery_task_*` families are streamed from the per-task series store after the registry (`streamed`). Then the exporter's own telemetry, and Node's process metrics (prom-client's defaults) under their standard names.",
  control: '`modules/control.ts`. Every control command goes through its one client, HTTP or remediation alike.',
  remediation:
    '`modules/remediation.ts`. Registered whether or not remediation is enabled: the rules file can be reloaded (checked) either way.',
  persistence: '`persistence/`, built in `service.ts` because the exporter, tasks and console share it (`tasks.persist`).',
};

const cell = (text: string): string => text.replace(/\|/g, '\\|');
const code = (names: readonly string[]): string => (names.length === 0 ? '—' : names.map((n) => `\`${n}\``).join(', '));

/** docs/metrics.md: each owner's families as /metrics exposes them with the default prefixes. */
export function metricsMarkdown(owners: readonly TelemetryOwner[]): string {
  const listed = owners.filter((o) => o.telemetry.length > 0);
  const silent = owners.filter((o) => o.telemetry.length === 0).map((o) => o.name);
  const out = [
    '# Metrics',
    '',
    "<!-- Generated from each module's telemetry by `npm run docs:metrics`; a unit test fails when it is stale. Edit the family where it is defined (src/metrics/), not this file. -->",
    '',
    'Every family `GET /metrics` exposes, grouped by the module that registers it. Names carry the',
    'default prefixes: `celery_` (`metrics.prefix`) on the Celery metrics, `celery_autopilot_`',
    "(`metrics.self_prefix`) on the service's own; Node's process metrics keep their standard names.",
    '`metrics.static_labels` are added to every series and are not listed; the `_bucket` series of a',
    'histogram also carry `le`. What the figures mean and how to read them: README',
    '[Metrics](../README.md#metrics).',
    '',
    `Modules: ${listed.map((o) => `[${o.name}](#${o.name})`).join(' · ')}${silent.length > 0 ? ` (${silent.join(', ')}: none)` : ''}`,
  ];
  for (const owner of listed) {
    out.push('', `## ${owner.name}`, '');
    const note = OWNER_NOTES[owner.name];
    if (note) out.push(note, '');
    out.push('| family | type | labels | help |', '| --- | --- | --- | --- |');
    for (const f of owner.telemetry) {
      out.push(`| \`${f.name}\` | ${f.type}${f.streamed ? ', streamed' : ''} | ${code(f.labels)} | ${cell(f.help)} |`);
    }
  }
  return `${out.join('\n')}\n`;
}
