import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { ActionMetrics } from '../../src/metrics/remediation-metrics.js';
import type { Alert } from '../../src/remediation/alertmanager.js';
import { Oversight } from '../../src/remediation/oversight.js';
import { compileRules } from '../../src/remediation/rules.js';
import { MemoryState } from '../../src/remediation/state.js';
import type { Decision } from '../../src/remediation/types.js';

/** Verification across replicas: the resolved notification may reach the replica that did not act. */
describe('verify with several replicas', () => {
  const rules = compileRules(
    `rules:
  - name: grow
    match: { labels: { alertname: Backlog } }
    action: pool_grow
    arguments: { n: 1 }
    target: { queue_label: queue_name }
    bounds: { max_pool_processes: 4 }
    verify: { within_seconds: 2 }
`,
    [],
  );
  const alert: Alert = {
    status: 'firing',
    labels: { alertname: 'Backlog', queue_name: 'q' },
    annotations: {},
    startsAt: '2026-12-01T00:00:00Z',
    fingerprint: 'fp',
  };
  const decision = {
    rule: 'grow',
    action: 'pool_grow',
    outcome: 'acted',
    alert,
    targets: ['celery@a'],
    skipped: [],
  } as unknown as Decision;
  const replica = (state: MemoryState, audit: AuditLog) =>
    new Oversight(
      state,
      audit,
      new ActionMetrics(new Registry(), 'celery_autopilot_'),
      Date.now,
      60_000,
      async () => undefined,
      () => rules,
    );

  it('the acting replica learns from the shared state that the alert resolved on the other one: effective', async () => {
    const shared = new MemoryState();
    const auditA = new AuditLog(undefined);
    const a = replica(shared, auditA);
    const b = replica(shared, new AuditLog(undefined));
    a.verify(rules[0]!, decision, alert);
    b.resolved({ ...alert, status: 'resolved' });
    await new Promise((r) => setTimeout(r, 1200));
    expect(a.verdicts).toMatchObject([{ rule: 'grow', result: 'effective', via: 'resolved' }]);
    expect(auditA.recent('remediation', 1)[0]).toMatchObject({ event: 'verification', result: 'effective' });
    a.stop();
    b.stop();
  });

  it('nothing resolved and no drain figure: ineffective when the window ends, and the rule is held back for that alert', async () => {
    const shared = new MemoryState();
    const a = replica(shared, new AuditLog(undefined));
    a.verify(rules[0]!, decision, alert);
    await new Promise((r) => setTimeout(r, 2300));
    expect(a.verdicts).toMatchObject([{ result: 'ineffective', via: 'timeout' }]);
    expect(await shared.has('v1:ineffective:grow:fp')).toBe(true);
    a.stop();
  });
});
