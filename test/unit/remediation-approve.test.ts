import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { silentLogger } from '../../src/log.js';
import { ActionMetrics } from '../../src/metrics/remediation-metrics.js';
import type { Alert } from '../../src/remediation/alertmanager.js';
import { Remediator, type RemediationExecutor } from '../../src/remediation/engine.js';
import { ProposalError } from '../../src/remediation/proposals.js';
import { compileRules } from '../../src/remediation/rules.js';
import { MemoryState } from '../../src/remediation/state.js';

/** Approve first, pure logic: answers, expiry, and the safeguards run again at approval. */
describe('proposals (mode: approve)', () => {
  const rules = `
rules:
  - name: grow
    match: { labels: { alertname: Backlog } }
    action: pool_grow
    arguments: { n: 1 }
    target: { queue_label: queue_name }
    bounds: { max_pool_processes: 4 }
    mode: approve
`;
  const setup = () => {
    let now = 1_800_000_000_000;
    const sent: string[][] = [];
    const executor: RemediationExecutor = {
      brokerConnected: () => true,
      consumersOf: () => ['celery@a'],
      matching: () => [],
      poolStats: async (workers) => new Map(workers.map((w) => [w, { processes: 2 }])),
      run: async (_action, _args, workers) => {
        sent.push(workers);
        return workers.map((worker) => ({ worker, status: 'ok' as const }));
      },
    };
    const audit = new AuditLog(undefined);
    const remediator = new Remediator(
      compileRules(rules, []),
      executor,
      new MemoryState(() => now),
      audit,
      new ActionMetrics(new Registry(), 'celery_autopilot_'),
      silentLogger(),
      {
        dryRun: false,
        killSwitch: false,
        allowDangerous: [],
        memorySeconds: 3600,
        inFlightSeconds: 60,
        busyShrinkRetries: 0,
        busyShrinkRetryMs: 1,
        proposalTtlMs: 60_000,
      },
      { now: () => now },
    );
    let n = 0;
    const fire = async (extra: Partial<Alert> = {}) => {
      remediator.accept({
        version: '4',
        truncatedAlerts: 0,
        malformedAlerts: 0,
        alerts: [
          {
            status: 'firing',
            labels: { alertname: 'Backlog', queue_name: 'q' },
            annotations: {},
            startsAt: `2026-12-01T00:00:0${n++}Z`,
            fingerprint: 'fp',
            ...extra,
          },
        ],
      });
      await remediator.idle();
      return remediator.oversight.proposals.list()[0]!;
    };
    return { remediator, sent, fire, audit, advance: (ms: number) => (now += ms) };
  };

  it('files what would happen and sends nothing; a rejection is final', async () => {
    const { remediator, sent, fire } = setup();
    const p = await fire();
    expect(p).toMatchObject({ status: 'pending', targets: ['celery@a'], change: [{ target: 'celery@a', before: 2, after: 3 }] });
    expect(sent).toEqual([]);
    expect(remediator.reject(p.id, 'token:ops')).toMatchObject({ status: 'rejected', decidedBy: 'token:ops' });
    await expect(remediator.approve(p.id, 'token:ops')).rejects.toThrow(ProposalError);
    await expect(remediator.approve('nope', 'token:ops')).rejects.toMatchObject({ status: 404 });
    expect(sent).toEqual([]);
  });

  it('expires unanswered; the alert resolving closes it', async () => {
    const { remediator, fire, advance } = setup();
    const p = await fire();
    advance(61_000);
    expect(remediator.oversight.proposals.list()[0]!.status).toBe('expired');
    await expect(remediator.approve(p.id, 'token:ops')).rejects.toMatchObject({ status: 409 });
    const q = await fire();
    remediator.accept({ version: '4', truncatedAlerts: 0, malformedAlerts: 0, alerts: [{ ...q.alert, status: 'resolved' }] });
    await remediator.idle();
    expect(remediator.oversight.proposals.list().find((x) => x.id === q.id)!.status).toBe('resolved');
  });

  it('approval runs every safeguard again at that moment: with the kill switch on meanwhile, nothing is sent', async () => {
    const { remediator, sent, fire, audit } = setup();
    const p = await fire();
    await remediator.setKillSwitch(true);
    const { decision } = await remediator.approve(p.id, 'token:ops');
    expect(decision).toMatchObject({ outcome: 'suppressed', reason: 'kill_switch', approved_by: 'token:ops' });
    expect(sent).toEqual([]);
    await remediator.setKillSwitch(false);
    const p2 = await fire();
    const second = await remediator.approve(p2.id, 'token:ops');
    expect(second.decision).toMatchObject({ outcome: 'acted', approved_by: 'token:ops' });
    expect(sent).toEqual([['celery@a']]);
    expect(audit.recent('remediation', 1)[0]).toMatchObject({ outcome: 'acted', approved_by: 'token:ops' });
  });
});
