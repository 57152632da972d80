import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { silentLogger } from '../../src/log.js';
import { ActionMetrics } from '../../src/metrics/remediation-metrics.js';
import type { Alert } from '../../src/remediation/alertmanager.js';
import { Remediator, type RemediationExecutor, type RemediationOptions } from '../../src/remediation/engine.js';
import { compileRules, loadConfiguredRules, RulesError } from '../../src/remediation/rules.js';
import { MemoryState } from '../../src/remediation/state.js';
import { ruleSentence } from '../../src/console/rule-sentence.js';
import { rulesProblems } from '../support/rules.js';

const PURGE = `
rules:
  - name: drop-poison
    match: { labels: { alertname: PoisonQueue } }
    action: purge_queue
    target: { queue: "{{ labels.queue_name }}" }
`;

describe('purge_queue rules at load', () => {
  it('is refused without allow_dangerous_actions, by the loader that --check-config and the start both use', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'purge-rules-')), 'rules.yml');
    writeFileSync(file, PURGE);
    const load = (allow: Array<'purge_queue'>) => loadConfiguredRules({ rules_file: file, allow_dangerous_actions: allow });
    expect(() => load([])).toThrow(RulesError);
    expect(() => load([])).toThrow(
      `${file}: rules.0 (drop-poison): purge_queue is disabled (enable it in remediation.allow_dangerous_actions)`,
    );
    expect(load(['purge_queue']).map((r) => r.action)).toEqual(['purge_queue']);
  });

  it('reads as a sentence on the console that says messages are lost', () => {
    expect(ruleSentence(compileRules(PURGE, ['purge_queue'])[0]!)).toBe(
      'When PoisonQueue fires, purge (every message lost) the queue {{ labels.queue_name }}; at most once per 5 min per target.',
    );
  });

  it('needs a queue target that is a queue name or a template, no arguments, no on_resolved', () => {
    expect(
      rulesProblems(PURGE.replace('target: { queue: "{{ labels.queue_name }}" }', 'target: { queue: "a b" }'), ['purge_queue']),
    ).toEqual(['r.yml: rules.0 (drop-poison): target.queue: must be a queue name (letters, digits, _ . : -)']);
    expect(
      rulesProblems(PURGE.replace('target: { queue: "{{ labels.queue_name }}" }', 'target: { queue_label: queue_name }'), ['purge_queue']),
    ).toEqual(['r.yml: rules.0 (drop-poison): purge_queue needs target.queue (a queue name or "{{ labels.queue_name }}")']);
    expect(
      rulesProblems(`${PURGE}    arguments: { n: 1 }\n    on_resolved: { action: pool_grow, arguments: { n: 1 } }\n`, ['purge_queue']),
    ).toEqual([
      'r.yml: rules.0 (drop-poison): purge_queue takes no arguments (its queue is target.queue)',
      'r.yml: rules.0 (drop-poison): a purge_queue rule has no on_resolved step',
    ]);
  });
});

class FakeBroker implements RemediationExecutor {
  connected = true;
  depth = new Map<string, number>([['poison', 5]]);
  purged: string[] = [];
  brokerConnected = () => this.connected;
  consumersOf = () => [];
  matching = () => [];
  poolStats = async () => new Map();
  run = async () => {
    throw new Error('purge_queue sends no control command');
  };
  purgeQueue = async (queue: string) => {
    this.purged.push(queue);
    const n = this.depth.get(queue) ?? 0;
    this.depth.set(queue, 0);
    return n;
  };
}

function setup(options: Partial<RemediationOptions> = {}) {
  const broker = new FakeBroker();
  const audit = new AuditLog(undefined);
  const remediator = new Remediator(
    compileRules(PURGE, ['purge_queue']),
    broker,
    new MemoryState(() => 1_800_000_000_000),
    audit,
    new ActionMetrics(new Registry(), 'celery_autopilot_'),
    silentLogger(),
    {
      dryRun: false,
      killSwitch: false,
      allowDangerous: ['purge_queue'],
      memorySeconds: 86_400,
      inFlightSeconds: 60,
      busyShrinkRetries: 0,
      busyShrinkRetryMs: 1,
      ...options,
    },
  );
  const post = async (queue: string) => {
    const alert: Alert = {
      status: 'firing',
      labels: { alertname: 'PoisonQueue', queue_name: queue },
      annotations: {},
      startsAt: '2026-12-07T00:00:00Z',
      fingerprint: `fp-${queue}`,
    };
    remediator.accept({ version: '4', truncatedAlerts: 0, malformedAlerts: 0, alerts: [alert] });
    await remediator.idle();
    return audit.recent('remediation')[0];
  };
  return { broker, post };
}

describe('purge_queue decisions', () => {
  it("purges the alert's queue once and audits the count removed", async () => {
    const { broker, post } = setup();
    expect(await post('poison')).toMatchObject({
      action: 'purge_queue',
      outcome: 'acted',
      targets: ['poison'],
      purged: { queue: 'poison', removed: 5 },
    });
    expect(await post('poison')).toMatchObject({ outcome: 'suppressed', reason: 'duplicate' });
    expect(broker.purged).toEqual(['poison']);
  });

  it('refuses a label that is not a queue name before the broker sees it', async () => {
    const { broker, post } = setup();
    expect(await post('a b')).toMatchObject({
      outcome: 'failed',
      reason: 'bad_arguments',
      error: 'target.queue: must be a queue name (letters, digits, _ . : -)',
    });
    expect(broker.purged).toEqual([]);
  });

  it('honours dry run, the kill switch, and a config that no longer allows it', async () => {
    for (const [options, expected] of [
      [{ dryRun: true }, { outcome: 'dry_run' }],
      [{ killSwitch: true }, { outcome: 'suppressed', reason: 'kill_switch' }],
      [{ allowDangerous: [] }, { outcome: 'suppressed', reason: 'not_allowed' }],
    ] as const) {
      const { broker, post } = setup(options);
      expect(await post('poison')).toMatchObject(expected);
      expect(broker.purged).toEqual([]);
      expect(broker.depth.get('poison')).toBe(5);
    }
  });

  it('fails, purging nothing, when the broker is down', async () => {
    const { broker, post } = setup();
    broker.connected = false;
    const decision = await post('poison');
    // The webhook is answered 503 (Alertmanager retries) and nothing is recorded.
    expect(decision).toBeUndefined();
    expect(broker.purged).toEqual([]);
  });
});
