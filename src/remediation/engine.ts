import type { AuditLog } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import type { ActionMetrics } from '../metrics/remediation-metrics.js';
import type { Alert, Notification } from './alertmanager.js';
import { LocalKillSwitch, type KillSwitch } from './kill-switch.js';
import { isWorkerAction, ruleMatches, type RemediationAction, type RemediationRule } from './rules.js';
import type { Decision, RemediationExecutor, RemediationOptions, TargetOutcome } from './types.js';
import { SAFEGUARDS, type Judgement, type SafeguardContext, type Verdict } from './safeguards.js';
import type { RemediationState } from './state.js';
import { BrokerUnavailableError } from '../transport/transport.js';
import { KubernetesApiError, KubernetesUnavailableError } from '../kubernetes/client.js';
import { actOnDeployment } from './deployment-act.js';
import { actOnQueue } from './queue-act.js';
import { Oversight } from './oversight.js';
import { ProposalError, type Proposal } from './proposals.js';
import type { KubernetesParts } from './deployments.js';

export type { Decision, RemediationExecutor, RemediationOptions, TargetOutcome } from './types.js';

export interface RemediationDeps {
  /** Shared by replicas (Redis); by default a local one starting at `options.killSwitch`. */
  killSwitch?: KillSwitch;
  /** Waits between busy-shrink retries; injected so tests need not wait. */
  sleep?: (ms: number) => Promise<void>;
  /** The Kubernetes API, for scale_deployment rules. */
  kubernetes?: KubernetesParts;
  /** A queue's time to drain now (s), for verify; undefined: verify waits for the resolved alert only. */
  timeToDrain?: (queue: string) => Promise<number | undefined>;
  now?: () => number;
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Job {
  alert: Alert;
  rule: RemediationRule;
  /** An approval of a proposal: who approved it (the rule's approve mode is then carried out). */
  approvedBy?: string;
}

/**
 * Turns Alertmanager notifications into control actions, safely: each alert in `alerts[]` is
 * judged by each rule on its own labels; the safeguards (safeguards.ts) run in their fixed order
 * and every decision is audited and counted, failures included. Work runs after the webhook has
 * been answered.
 */
export class Remediator {
  #rules: readonly RemediationRule[];
  #pending: Promise<void> = Promise.resolve();
  #jobs = 0;
  /** Decisions still confirming (scale_deployment), audited once they are done. */
  readonly #followUps = new Set<Promise<void>>();
  readonly #killSwitch: KillSwitch;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #context: SafeguardContext;
  /** Proposals (mode approve) and verification (verify). */
  readonly oversight: Oversight;

  constructor(
    rules: readonly RemediationRule[],
    private readonly executor: RemediationExecutor,
    state: RemediationState,
    private readonly audit: AuditLog,
    private readonly metrics: ActionMetrics,
    private readonly logger: Logger,
    private readonly options: RemediationOptions,
    deps: RemediationDeps = {},
  ) {
    this.#rules = rules;
    this.#killSwitch = deps.killSwitch ?? new LocalKillSwitch(options.killSwitch);
    this.#sleep = deps.sleep ?? realSleep;
    // The gauge shows the value this replica obeys, as soon as it learns it.
    this.#killSwitch.onChange((on) => metrics.killSwitch.set(on ? 1 : 0));
    this.#context = { executor, state, killSwitch: this.#killSwitch, options, kubernetes: deps.kubernetes };
    this.oversight = new Oversight(
      state,
      audit,
      metrics,
      deps.now ?? Date.now,
      options.proposalTtlMs ?? 1_800_000,
      deps.timeToDrain ?? (async () => undefined),
      () => this.#rules,
    );
  }

  get rules(): readonly RemediationRule[] {
    return this.#rules;
  }

  /** Atomic swap: jobs already planned keep the rules they were planned with. */
  replaceRules(rules: readonly RemediationRule[]): void {
    this.#rules = rules;
  }

  /** The kill switch value this replica obeys now. */
  get killSwitch(): boolean {
    return this.#killSwitch.engaged;
  }

  /** Sets it where it lives (for every replica, with shared state); rejects if it could not be stored. */
  async setKillSwitch(on: boolean): Promise<void> {
    await this.#killSwitch.set(on);
  }

  /**
   * Plans the work for one notification. Returns 'retry' (→ 503) when the broker is down and some
   * alert would lead to a command: nothing is recorded, so Alertmanager's retry starts clean and
   * no command is ever sent late. Otherwise the jobs are queued and run after the answer.
   */
  accept(notification: Notification): { status: 'accepted' | 'retry'; jobs: number } {
    const rules = this.#rules;
    const jobs: Job[] = [];
    for (const alert of notification.alerts) for (const rule of rules) if (ruleMatches(rule, alert)) jobs.push({ alert, rule });
    for (const alert of notification.alerts) if (alert.status === 'resolved') this.oversight.resolved(alert);
    const wouldAct = jobs.length > 0 && !this.#killSwitch.engaged && !this.options.dryRun && jobs.some((j) => !j.rule.dry_run);
    if (wouldAct && !this.executor.brokerConnected()) return { status: 'retry', jobs: 0 };
    if (notification.truncatedAlerts > 0) {
      this.logger.warn(
        { truncated: notification.truncatedAlerts },
        'Alertmanager truncated this notification; nothing is inferred from the missing alerts',
      );
    }
    this.#enqueue(jobs).catch(() => undefined); // each job catches its own errors
    return { status: 'accepted', jobs: jobs.length };
  }

  /** Runs jobs after those already queued, one at a time; resolves with their decisions. */
  #enqueue(jobs: Job[]): Promise<Array<Decision | undefined>> {
    this.#jobs += jobs.length;
    const run = this.#pending.then(async () => {
      const out: Array<Decision | undefined> = [];
      for (const job of jobs) {
        try {
          out.push(await this.#decide(job));
        } catch (e) {
          this.logger.error({ err: (e as Error).message, rule: job.rule.name }, 'remediation job failed');
          out.push(undefined);
        } finally {
          this.#jobs--;
        }
      }
      return out;
    });
    this.#pending = run.then(() => undefined);
    return run;
  }

  /**
   * An operator approves a proposal: every safeguard runs again now, then it acts (or the
   * decision says why not). Throws ProposalError (unknown, or no longer pending).
   */
  async approve(id: string, by: string): Promise<{ proposal: Proposal; decision: Decision | undefined }> {
    const proposal = this.oversight.proposals.take(id);
    const rule = this.#rules.find((r) => r.name === proposal.rule);
    if (!rule) throw new ProposalError(409, `rule ${proposal.rule} is no longer in the rules file`);
    this.oversight.proposals.answer(proposal, 'approved', by);
    const [decision] = await this.#enqueue([{ alert: proposal.alert, rule, approvedBy: by }]);
    if (decision)
      proposal.decision = {
        outcome: decision.outcome,
        ...(decision.reason ? { reason: decision.reason } : {}),
        ...(decision.error ? { error: decision.error } : {}),
      };
    return { proposal, decision };
  }

  reject(id: string, by: string): Proposal {
    const proposal = this.oversight.proposals.take(id);
    this.oversight.proposals.answer(proposal, 'rejected', by);
    return proposal;
  }

  /** Resolves when every accepted job has been decided (tests, graceful shutdown). */
  async idle(): Promise<void> {
    while (this.#jobs > 0) await this.#pending;
    await this.#pending;
    while (this.#followUps.size > 0) await Promise.all([...this.#followUps]);
  }

  async #decide(job: Job): Promise<Decision> {
    const { alert, approvedBy } = job;
    // After an ineffective action, the rule's escalation runs for this alert instead.
    const escalated = await this.oversight.escalation(job.rule, alert).catch(() => undefined);
    const rule = escalated ?? job.rule;
    const resolvedStep = Boolean(alert.status === 'resolved' && rule.match.status === 'firing' && rule.on_resolved);
    const step = resolvedStep ? rule.on_resolved! : { action: rule.action, arguments: rule.arguments };
    const decision: Decision = {
      rule: rule.name,
      action: step.action,
      outcome: 'suppressed',
      alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, status: alert.status, labels: { ...alert.labels } },
      targets: [],
      skipped: [],
      ...(escalated ? { escalated_from: job.rule.name } : {}),
      ...(approvedBy ? { approved_by: approvedBy } : {}),
    };
    const j: Judgement = {
      alert,
      rule,
      action: step.action,
      template: step.arguments,
      resolvedStep,
      decision,
      args: {},
      targets: [],
      perTarget: new Map(),
      poolCounted: new Map(),
      held: [],
      acted: [],
      dryRun: this.options.dryRun || rule.dry_run,
      proposing: rule.mode === 'approve' && approvedBy === undefined,
      passed: [],
    };
    let verdict: Verdict;
    try {
      verdict = await this.#judge(j);
    } catch (e) {
      // A stats request that could not be sent, a name the control layer refuses, the shared
      // state unreachable, the Kubernetes API refusing...: still one audited, counted decision.
      decision.error = (e as Error).message;
      verdict = { outcome: 'failed', reason: failureReason(e) };
    }
    const followUp = verdict.outcome === 'acted' ? j.followUp : undefined;
    if (followUp) {
      // Confirmation takes a while (pods start): the queue of decisions goes on meanwhile, this
      // one keeps its in-flight lock and is audited once confirmed or given up on.
      const done: Promise<void> = followUp()
        .catch((e: Error) => this.logger.warn({ err: e.message, rule: rule.name }, 'scale confirmation failed'))
        .then(() => this.#release(j))
        .then(() => {
          this.#finish(decision, verdict);
          this.oversight.verify(rule, decision, alert);
        })
        .finally(() => this.#followUps.delete(done));
      this.#followUps.add(done);
      return decision;
    }
    await this.#release(j);
    if (verdict.outcome === 'proposed') this.oversight.propose(j);
    this.#finish(decision, verdict);
    this.oversight.verify(rule, decision, alert);
    return decision;
  }

  /** What the safeguards took for this decision (in-flight locks) goes back, whatever the outcome. */
  async #release(j: Judgement): Promise<void> {
    for (const safeguard of SAFEGUARDS) {
      await safeguard
        .release?.(j, this.#context)
        .catch((e: Error) =>
          this.logger.warn({ err: e.message, rule: j.rule.name, safeguard: safeguard.name }, 'not released; it expires on its own'),
        );
    }
  }

  /** The safeguards in their order; the first verdict ends it, and past them all the command is sent. */
  async #judge(j: Judgement): Promise<Verdict> {
    for (const safeguard of SAFEGUARDS) {
      const verdict = await safeguard.check(j, this.#context);
      if (verdict) return verdict;
      j.passed.push(safeguard.name);
    }
    return this.#act(j);
  }

  #finish(decision: Decision, { outcome, reason }: Verdict): Decision {
    decision.outcome = outcome;
    if (reason) decision.reason = reason;
    this.metrics.decisions.inc({ rule: decision.rule, action: decision.action, outcome });
    if (outcome === 'suppressed' && reason) this.metrics.suppressed.inc({ rule: decision.rule, action: decision.action, reason });
    this.audit.write({ kind: 'remediation', ...decision });
    return decision;
  }

  /** Acts, then each safeguard records what it must remember of the act for later decisions. */
  async #act(j: Judgement): Promise<Verdict> {
    const verdict = isWorkerAction(j.action)
      ? await this.#command(j)
      : j.action === 'purge_queue'
        ? await actOnQueue(j, this.#context)
        : await actOnDeployment(j, { ...this.#context, sleep: this.#sleep });
    for (const safeguard of SAFEGUARDS) await safeguard.record?.(j, this.#context);
    return verdict;
  }

  /** Sends the command, grouped by arguments; the workers it succeeded on are `j.acted`. */
  async #command(j: Judgement): Promise<Verdict> {
    const { action, args, decision } = j;
    // Workers whose bounds gave them their own arguments (e.g. a clamped n) get their own command.
    const groups = new Map<string, { args: Record<string, unknown>; workers: string[] }>();
    for (const worker of j.targets) {
      const a = j.perTarget.get(worker) ?? args;
      const key = JSON.stringify(a);
      const g = groups.get(key) ?? { args: a, workers: [] };
      g.workers.push(worker);
      groups.set(key, g);
    }
    if (!this.executor.brokerConnected()) return { outcome: 'failed', reason: 'broker_unavailable' };
    const results: TargetOutcome[] = [];
    for (const g of groups.values()) results.push(...(await this.#send(action, g.args, g.workers, j.rule.bounds.min_pool_processes)));
    decision.results = results;
    j.acted = results.filter((r) => r.status === 'ok').map((r) => r.worker);
    if (results.some((r) => r.status === 'error')) return { outcome: 'failed' };
    if (results.some((r) => r.status === 'no_reply')) return { outcome: 'no_reply' };
    return { outcome: 'acted' };
  }

  /**
   * Sends one command to these workers. A pool_shrink that a worker refuses only because every
   * pool process is busy right now (kind pool_busy) is tried again a few times, for that worker
   * alone: the refusal is an answer, not a lost reply, and a resolved alert is not resent by
   * Alertmanager, so giving up would leave the pool grown.
   */
  async #send(action: RemediationAction, args: Record<string, unknown>, workers: string[], keep: number): Promise<TargetOutcome[]> {
    const attempt = async (names: string[]): Promise<TargetOutcome[]> => {
      try {
        return await this.executor.run(action, args, names, action === 'pool_shrink' ? keep : undefined);
      } catch (e) {
        return names.map((worker) => ({ worker, status: 'error' as const, message: (e as Error).message }));
      }
    };
    let outcomes = await attempt(workers);
    for (let retry = 1; action === 'pool_shrink' && retry <= this.options.busyShrinkRetries; retry++) {
      const busy = outcomes.filter((o) => o.status === 'error' && o.kind === 'pool_busy');
      if (busy.length === 0 || !this.executor.brokerConnected()) break;
      await this.#sleep(this.options.busyShrinkRetryMs);
      const again = await attempt(busy.map((o) => o.worker));
      outcomes = [...outcomes.filter((o) => !busy.includes(o)), ...again];
    }
    return outcomes;
  }
}

function failureReason(e: unknown): Decision['reason'] {
  if (e instanceof BrokerUnavailableError) return 'broker_unavailable';
  if (e instanceof KubernetesApiError || e instanceof KubernetesUnavailableError) return 'kubernetes';
  return 'error';
}
