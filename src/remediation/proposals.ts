import { randomBytes } from 'node:crypto';
import type { Alert } from './alertmanager.js';
import type { Decision } from './types.js';

/**
 * Approve first: a rule with `mode: approve` runs every safeguard and then, instead of acting,
 * files a proposal saying what would happen (targets, before → after, the safeguards passed).
 * An operator approves it (every safeguard runs again at that moment, then it acts) or rejects
 * it; unanswered, it expires. Kept in memory by the replica that proposed it, bounded.
 */

export type ProposalStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'resolved';

export interface Proposal {
  readonly id: string;
  status: ProposalStatus;
  readonly rule: string;
  readonly action: Decision['action'];
  readonly alert: Alert;
  readonly arguments: Record<string, unknown> | undefined;
  readonly targets: string[];
  /** Before → after: the Deployment's replicas, or each worker's pool size. */
  readonly change: Array<{ target: string; before: number; after: number }>;
  readonly safeguardsPassed: string[];
  readonly createdAt: string;
  readonly expiresAt: string;
  /** Who approved or rejected it, and the decision an approval led to. */
  decidedBy?: string;
  decidedAt?: string;
  decision?: Pick<Decision, 'outcome' | 'reason' | 'error'>;
}

/** What an approval has to go on: the proposal is no longer pending. */
export class ProposalError extends Error {
  constructor(
    readonly status: 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

export class ProposalBook {
  readonly #proposals = new Map<string, Proposal>();

  constructor(
    private readonly now: () => number,
    private readonly ttlMs: number,
    private readonly max = 500,
  ) {}

  /** Files a proposal for a decision that passed every safeguard. */
  add(decision: Decision, alert: Alert, passed: string[], change: Proposal['change']): Proposal {
    this.#expire();
    const at = this.now();
    const p: Proposal = {
      id: randomBytes(9).toString('base64url'),
      status: 'pending',
      rule: decision.rule,
      action: decision.action,
      alert,
      arguments: decision.arguments,
      targets: [...decision.targets],
      change,
      safeguardsPassed: passed,
      createdAt: new Date(at).toISOString(),
      expiresAt: new Date(at + this.ttlMs).toISOString(),
    };
    this.#proposals.set(p.id, p);
    // Oldest answered ones go first; pending ones only when nothing else is left to drop.
    for (const [id, old] of this.#proposals) {
      if (this.#proposals.size <= this.max) break;
      if (old.status !== 'pending' || this.#proposals.size > this.max * 2) this.#proposals.delete(id);
    }
    return p;
  }

  /** Newest first. */
  list(): Proposal[] {
    this.#expire();
    return [...this.#proposals.values()].reverse();
  }

  /** Takes a pending proposal for an answer; 404 unknown, 409 no longer pending (expired included). */
  take(id: string): Proposal {
    this.#expire();
    const p = this.#proposals.get(id);
    if (!p) throw new ProposalError(404, `no proposal ${id} (proposals live on the replica that made them)`);
    if (p.status !== 'pending') throw new ProposalError(409, `proposal ${id} is ${p.status}${p.decidedBy ? ` (by ${p.decidedBy})` : ''}`);
    return p;
  }

  answer(p: Proposal, status: 'approved' | 'rejected', by: string): void {
    p.status = status;
    p.decidedBy = by;
    p.decidedAt = new Date(this.now()).toISOString();
  }

  /** A resolved notification: pending proposals for that alert instance have nothing left to fix. */
  resolved(alert: Pick<Alert, 'fingerprint' | 'startsAt'>): void {
    for (const p of this.#proposals.values())
      if (p.status === 'pending' && p.alert.fingerprint === alert.fingerprint && p.alert.startsAt === alert.startsAt) p.status = 'resolved';
  }

  /** Is an unanswered proposal for this alert instance and rule already filed (Alertmanager resends)? */
  pendingFor(rule: string, alert: Pick<Alert, 'fingerprint' | 'startsAt'>): boolean {
    this.#expire();
    for (const p of this.#proposals.values())
      if (p.status === 'pending' && p.rule === rule && p.alert.fingerprint === alert.fingerprint && p.alert.startsAt === alert.startsAt)
        return true;
    return false;
  }

  #expire(): void {
    const now = this.now();
    for (const p of this.#proposals.values()) if (p.status === 'pending' && Date.parse(p.expiresAt) <= now) p.status = 'expired';
  }
}
