import type { AuditLog } from '../audit/audit-log.js';
import type { ActionMetrics } from '../metrics/remediation-metrics.js';
import type { Alert } from './alertmanager.js';
import { ProposalBook, type Proposal } from './proposals.js';
import type { RemediationRule } from './rules.js';
import type { Judgement } from './safeguards.js';
import type { RemediationState } from './state.js';
import { stateKeys } from './state-keys.js';
import type { Decision } from './types.js';
import { Verifier, type Verdict as Verification } from './verification.js';

/**
 * People watching what the autopilot does: proposals of rules in `mode: approve` (proposals.ts)
 * and the verification of acted decisions (verification.ts), with what follows from a verdict —
 * the audit record, `remediation_verifications_total{rule,result}`, and for an ineffective one the
 * memory that keeps the rule from repeating it on that alert (verify.block_seconds).
 */
export class Oversight {
  readonly proposals: ProposalBook;
  readonly #verifier: Verifier;
  /** Recent verdicts, newest last (the console and the API read them). */
  readonly verdicts: Verification[] = [];

  constructor(
    private readonly state: RemediationState,
    private readonly audit: AuditLog,
    private readonly metrics: ActionMetrics,
    now: () => number,
    proposalTtlMs: number,
    timeToDrain: (queue: string) => Promise<number | undefined>,
    private readonly rules: () => readonly RemediationRule[],
  ) {
    this.proposals = new ProposalBook(now, proposalTtlMs);
    this.#verifier = new Verifier(
      now,
      timeToDrain,
      (v) => this.#verdict(v),
      (alert) => this.state.has(stateKeys.resolved(alert)),
    );
  }

  /** A decision that passed every safeguard in approve mode: filed, with what it would change. */
  propose(j: Judgement): Proposal {
    const change: Proposal['change'] = [];
    const d = j.decision.deployment;
    if (d) change.push({ target: `${d.namespace}/${d.name}`, before: d.before, after: d.after });
    for (const [worker, counted] of j.poolCounted) {
      const n = Number((j.perTarget.get(worker) ?? j.args).n ?? 0);
      change.push({ target: worker, before: counted, after: j.action === 'pool_shrink' ? counted - n : counted + n });
    }
    const p = this.proposals.add(j.decision, j.alert, [...j.passed], change);
    j.decision.proposal = p.id;
    return p;
  }

  /** An acted decision of a rule with `verify`: watched for its effect. */
  verify(rule: RemediationRule, decision: Decision, alert: Alert): void {
    if (!rule.verify || decision.outcome !== 'acted' || alert.status !== 'firing') return;
    const queue = alert.labels[rule.target.queue_label ?? 'queue_name'] || undefined;
    this.#verifier.start(
      {
        rule: rule.name,
        action: decision.action,
        alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, labels: alert.labels },
        queue,
      },
      rule.verify.within_seconds,
    );
  }

  /** A resolved notification: its pending proposals have nothing left to fix, its verifications succeed. */
  resolved(alert: Alert): void {
    this.proposals.resolved(alert);
    this.#verifier.resolved(alert);
    // For the replica that acted, if it is not this one (state shared in Redis).
    this.state.put(stateKeys.resolved(alert), '1', 86_400_000).catch(() => undefined);
  }

  /**
   * The rule to run for this alert: after an ineffective action of a rule with
   * verify.escalate_to, the escalation rule instead (undefined: the rule itself).
   */
  async escalation(rule: RemediationRule, alert: Alert): Promise<RemediationRule | undefined> {
    const to = rule.verify?.escalate_to;
    if (to === undefined || alert.status !== 'firing') return undefined;
    if (!(await this.state.has(stateKeys.ineffective(rule.name, alert.fingerprint)))) return undefined;
    return this.rules().find((r) => r.name === to);
  }

  get pendingVerifications(): number {
    return this.#verifier.pending;
  }

  stop(): void {
    this.#verifier.stop();
  }

  #verdict(v: Verification): void {
    this.verdicts.push(v);
    if (this.verdicts.length > 200) this.verdicts.shift();
    this.metrics.verifications.inc({ rule: v.rule, result: v.result });
    this.audit.write({ kind: 'remediation', event: 'verification', ...v });
    const rule = this.rules().find((r) => r.name === v.rule);
    if (v.result === 'ineffective' && rule?.verify) {
      void this.state.put(stateKeys.ineffective(v.rule, v.alert.fingerprint), '1', rule.verify.block_seconds * 1000).catch(() => undefined);
    }
  }
}
