import type { AuditLog } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import type { ActionMetrics } from '../metrics/remediation-metrics.js';
import type { Alert, Notification } from './alertmanager.js';
import { dangerOf, ruleMatches, type DangerousAction, type RemediationAction, type RemediationRule } from './rules.js';
import type { RemediationState } from './state.js';
import { render, TemplateError } from './template.js';
import { BrokerUnavailableError } from '../transport/transport.js';

/** What remediation needs from the rest of the service: live cluster view and control. */
export interface RemediationExecutor {
  brokerConnected(): boolean;
  /** Live workers currently consuming `queue`. */
  consumersOf(queue: string): string[];
  /** Live workers whose name matches the glob. */
  matching(pattern: string): string[];
  /**
   * Is this node name a live worker? Used for `worker_label` targets, whose names come from an
   * alert: a worker that is gone (or never was) gets no command and no reply timeout. Without
   * it, the label is trusted and bounds or the reply timeout find out.
   */
  isLive?(worker: string): boolean;
  /** Live pool figures per worker (stats), for bounds. Missing workers are absent from the map. */
  poolStats(workers: string[]): Promise<Map<string, { processes?: number; autoscaler?: { min: number; max: number } }>>;
  /** Sends the command to exactly these workers; never to an empty list. */
  run(action: RemediationAction, args: Record<string, unknown>, workers: string[]): Promise<TargetOutcome[]>;
}

export interface TargetOutcome {
  worker: string;
  status: 'ok' | 'error' | 'no_reply';
  message?: string;
}

export type SuppressReason =
  | 'duplicate'
  | 'cooldown'
  | 'bound'
  | 'cap'
  | 'kill_switch'
  | 'no_target'
  | 'in_flight'
  | 'not_allowed'
  | 'nothing_to_revert';
export type DecisionOutcome = 'acted' | 'failed' | 'no_reply' | 'dry_run' | 'suppressed';

export interface Decision {
  rule: string;
  action: RemediationAction;
  outcome: DecisionOutcome;
  reason?: SuppressReason | 'bad_arguments' | 'broker_unavailable' | 'error';
  alert: { fingerprint: string; startsAt: string; status: Alert['status']; labels: Record<string, string> };
  arguments?: Record<string, unknown>;
  targets: string[];
  skipped: Array<{ worker: string; reason: SuppressReason; detail?: string }>;
  results?: TargetOutcome[];
  /** Why a decision failed before any command was sent (outcome failed, reason error/broker_unavailable). */
  error?: string;
}

/** How long a grow or shrink counts as pending: longer than the pool's 5 s maintenance tick. */
const PENDING_RESIZE_MS = 10_000;

export interface RemediationOptions {
  dryRun: boolean;
  killSwitch: boolean;
  allowDangerous: readonly DangerousAction[];
  globalCap?: { count: number; windowSeconds: number };
  /** How long an alert instance is remembered for idempotency and shrink-back. */
  memorySeconds: number;
  /** Upper bound on one action's duration, for the in-flight lock. */
  inFlightSeconds: number;
  /** A shrink refused because every pool process is busy is tried again this often. */
  busyShrinkRetries: number;
  busyShrinkRetryMs: number;
}

interface Job {
  alert: Alert;
  rule: RemediationRule;
}

/**
 * Turns Alertmanager notifications into control actions, safely: each alert in `alerts[]` is
 * judged by each rule on its own labels; safeguards run in a fixed order (allow-list, targets,
 * kill switch, idempotency, cooldown, in-flight, bounds, caps, dry-run) and every decision is
 * audited and counted, failures included. Work runs after the webhook has been answered.
 */
export class Remediator {
  #rules: readonly RemediationRule[];
  #pending: Promise<void> = Promise.resolve();
  #jobs = 0;

  constructor(
    rules: readonly RemediationRule[],
    private readonly executor: RemediationExecutor,
    private readonly state: RemediationState,
    private readonly audit: AuditLog,
    private readonly metrics: ActionMetrics,
    private readonly logger: Logger,
    private readonly options: RemediationOptions,
  ) {
    this.#rules = rules;
    metrics.killSwitch.set(options.killSwitch ? 1 : 0);
  }

  get rules(): readonly RemediationRule[] {
    return this.#rules;
  }

  /** Atomic swap: jobs already planned keep the rules they were planned with. */
  replaceRules(rules: readonly RemediationRule[]): void {
    this.#rules = rules;
  }

  get killSwitch(): boolean {
    return this.options.killSwitch;
  }

  setKillSwitch(on: boolean): void {
    this.options.killSwitch = on;
    this.metrics.killSwitch.set(on ? 1 : 0);
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
    const wouldAct = jobs.length > 0 && !this.options.killSwitch && !this.options.dryRun && jobs.some((j) => !j.rule.dry_run);
    if (wouldAct && !this.executor.brokerConnected()) return { status: 'retry', jobs: 0 };
    if (notification.truncatedAlerts > 0) {
      this.logger.warn({ truncated: notification.truncatedAlerts }, 'Alertmanager truncated this notification; nothing is inferred from the missing alerts');
    }
    this.#jobs += jobs.length;
    this.#pending = this.#pending.then(async () => {
      for (const job of jobs) {
        try {
          await this.#decide(job);
        } catch (e) {
          this.logger.error({ err: (e as Error).message, rule: job.rule.name }, 'remediation job failed');
        } finally {
          this.#jobs--;
        }
      }
    });
    return { status: 'accepted', jobs: jobs.length };
  }

  /** Resolves when every accepted job has been decided (tests, graceful shutdown). */
  async idle(): Promise<void> {
    while (this.#jobs > 0) await this.#pending;
    await this.#pending;
  }

  async #decide({ alert, rule }: Job): Promise<Decision> {
    const resolvedStep = alert.status === 'resolved' && rule.match.status === 'firing' && rule.on_resolved;
    const step = resolvedStep ? rule.on_resolved! : { action: rule.action, arguments: rule.arguments };
    const decision: Decision = {
      rule: rule.name,
      action: step.action,
      outcome: 'suppressed',
      alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, status: alert.status, labels: { ...alert.labels } },
      targets: [],
      skipped: [],
    };
    let finished = false;
    const finish = (outcome: DecisionOutcome, reason?: Decision['reason']): Decision => {
      finished = true;
      decision.outcome = outcome;
      if (reason) decision.reason = reason;
      this.metrics.decisions.inc({ rule: rule.name, action: step.action, outcome });
      if (outcome === 'suppressed' && reason) this.metrics.suppressed.inc({ rule: rule.name, action: step.action, reason });
      this.audit.write({ kind: 'remediation', ...decision });
      return decision;
    };

    try {
      return await this.#judge(alert, rule, step, Boolean(resolvedStep), decision, finish);
    } catch (e) {
      // A stats request that could not be sent, a name the control layer refuses...: still one
      // audited, counted decision, never a silent gap.
      if (finished) throw e;
      decision.error = (e as Error).message;
      return finish('failed', e instanceof BrokerUnavailableError ? 'broker_unavailable' : 'error');
    }
  }

  async #judge(
    alert: Alert,
    rule: RemediationRule,
    step: { action: RemediationAction; arguments: Record<string, unknown> },
    resolvedStep: boolean,
    decision: Decision,
    finish: (outcome: DecisionOutcome, reason?: Decision['reason']) => Decision,
  ): Promise<Decision> {
    let args: Record<string, unknown>;
    try {
      args = render(step.arguments, alert) as Record<string, unknown>;
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      decision.skipped.push({ worker: '*', reason: 'no_target', detail: e.message });
      return finish('failed', 'bad_arguments');
    }
    decision.arguments = args;
    const danger = dangerOf(step.action, args);
    if (danger && !this.options.allowDangerous.includes(danger)) return finish('suppressed', 'not_allowed');

    let targets = this.#targets(rule, alert, decision);
    if (targets.length === 0) return finish('suppressed', 'no_target');
    // After the targets, so the audit shows the command that would have gone to whom; before
    // anything that talks to the broker (bounds read stats), so nothing at all is sent.
    if (this.options.killSwitch) {
      decision.targets = targets;
      return finish('suppressed', 'kill_switch');
    }

    const idem = `idem:${alert.fingerprint}:${alert.startsAt}:${alert.status}:${rule.name}:${step.action}`;
    if (await this.state.has(idem)) {
      decision.targets = targets;
      return finish('suppressed', 'duplicate');
    }

    const skip = (worker: string, reason: SuppressReason, detail?: string) => decision.skipped.push({ worker, reason, ...(detail ? { detail } : {}) });
    const kept: string[] = [];
    for (const worker of targets) {
      if (await this.state.has(`cooldown:${rule.name}:${step.action}:${worker}`)) skip(worker, 'cooldown');
      else kept.push(worker);
    }
    targets = kept;

    const held: string[] = [];
    const releaseHeld = () => Promise.all(held.map((w) => this.state.release(`inflight:${w}`)));
    try {
      const free: string[] = [];
      for (const worker of targets) {
        if (await this.state.claim(`inflight:${worker}`, this.options.inFlightSeconds * 1000)) {
          held.push(worker);
          free.push(worker);
        } else skip(worker, 'in_flight');
      }
      targets = free;

      const memoryKey = (worker: string) => `grown:${alert.fingerprint}:${alert.startsAt}:${rule.name}:${worker}`;
      const perTargetArgs = new Map<string, Record<string, unknown>>();
      if (targets.length > 0) targets = await this.#applyBounds(rule, step.action, args, targets, perTargetArgs, skip, resolvedStep ? memoryKey : undefined);

      if (targets.length === 0) {
        decision.targets = [];
        return finish('suppressed', decision.skipped[0]?.reason ?? 'no_target');
      }
      decision.targets = targets;

      const dryRun = this.options.dryRun || rule.dry_run;
      if (!dryRun) {
        if (rule.max_actions && (await this.state.count(`cap:${rule.name}`, rule.max_actions.window_seconds * 1000)) > rule.max_actions.count) {
          return finish('suppressed', 'cap');
        }
        const g = this.options.globalCap;
        if (g && (await this.state.count('cap:*', g.windowSeconds * 1000)) > g.count) return finish('suppressed', 'cap');
      }
      // Claimed last and atomically, so of two replicas (or two resends in flight) one acts.
      if (!(await this.state.claim(dryRun ? `dry-${idem}` : idem, this.options.memorySeconds * 1000))) return finish('suppressed', 'duplicate');
      if (dryRun) return finish('dry_run');

      const results: TargetOutcome[] = [];
      // Workers whose bounds gave them their own arguments (e.g. a clamped n) get their own command.
      const groups = new Map<string, { args: Record<string, unknown>; workers: string[] }>();
      for (const worker of targets) {
        const a = perTargetArgs.get(worker) ?? args;
        const key = JSON.stringify(a);
        const g = groups.get(key) ?? { args: a, workers: [] };
        g.workers.push(worker);
        groups.set(key, g);
      }
      if (!this.executor.brokerConnected()) return finish('failed', 'broker_unavailable');
      for (const g of groups.values()) results.push(...(await this.#send(step.action, g.args, g.workers)));
      decision.results = results;
      for (const r of results) {
        if (r.status !== 'ok') continue;
        // Per action: a shrink-back on resolve is not held up by the cooldown of the grow it undoes.
        if (rule.cooldown_seconds > 0) await this.state.claim(`cooldown:${rule.name}:${step.action}:${r.worker}`, rule.cooldown_seconds * 1000);
        const n = perTargetArgs.get(r.worker)?.n ?? args.n;
        if ((step.action === 'pool_grow' || step.action === 'pool_shrink') && typeof n === 'number') {
          // Pool processes change on the pool's next maintenance tick (up to ~5 s), so `stats`
          // lags: until then the bounds count this change as already made.
          // (The worker's in-flight lock is still held: nobody else updates this key meanwhile.)
          const key = `pending:${step.action}:${r.worker}`;
          await this.state.put(key, String(Number((await this.state.get(key)) ?? '0') + n), PENDING_RESIZE_MS);
        }
        if (!resolvedStep && step.action === 'pool_grow' && typeof n === 'number') {
          await this.state.put(memoryKey(r.worker), String(n), this.options.memorySeconds * 1000);
        }
        if (resolvedStep && step.action === 'pool_shrink') await this.state.release(memoryKey(r.worker));
      }
      if (results.some((r) => r.status === 'error')) return finish('failed');
      if (results.some((r) => r.status === 'no_reply')) return finish('no_reply');
      return finish('acted');
    } finally {
      await releaseHeld();
    }
  }

  /**
   * Sends one command to these workers. A pool_shrink that a worker refuses only because every
   * pool process is busy right now (billiard's "Can't shrink pool. All processes busy!") is
   * tried again a few times, for that worker alone: the refusal is an answer, not a lost reply,
   * and a resolved alert is not resent by Alertmanager, so giving up would leave the pool grown.
   */
  async #send(action: RemediationAction, args: Record<string, unknown>, workers: string[]): Promise<TargetOutcome[]> {
    const attempt = async (names: string[]): Promise<TargetOutcome[]> => {
      try {
        return await this.executor.run(action, args, names);
      } catch (e) {
        return names.map((worker) => ({ worker, status: 'error' as const, message: (e as Error).message }));
      }
    };
    let outcomes = await attempt(workers);
    for (let retry = 1; action === 'pool_shrink' && retry <= this.options.busyShrinkRetries; retry++) {
      const busy = outcomes.filter((o) => o.status === 'error' && /all processes busy/i.test(o.message ?? ''));
      if (busy.length === 0 || !this.executor.brokerConnected()) break;
      await new Promise((resolve) => setTimeout(resolve, this.options.busyShrinkRetryMs));
      const again = await attempt(busy.map((o) => o.worker));
      outcomes = [...outcomes.filter((o) => !busy.includes(o)), ...again];
    }
    return outcomes;
  }

  #targets(rule: RemediationRule, alert: Alert, decision: Decision): string[] {
    const t = rule.target;
    let names: string[] = [];
    if (t.worker_label) {
      const v = alert.labels[t.worker_label];
      names = v ? [v] : [];
      if (v && this.executor.isLive && !this.executor.isLive(v)) {
        decision.skipped.push({ worker: v, reason: 'no_target', detail: 'not a live worker' });
        names = [];
      }
    } else if (t.queue_label) {
      const q = alert.labels[t.queue_label];
      names = q ? this.executor.consumersOf(q) : [];
    } else if (t.pattern) {
      names = this.executor.matching(t.pattern);
    }
    return [...new Set(names)].sort();
  }

  /**
   * Bounds from live stats: grow never past the ceiling (n is clamped to what is left), shrink
   * never below the floor, autoscale only with min ≤ max ≤ ceiling; on resolve, shrink back at
   * most what this alert grew. Workers that cannot take the action are skipped with 'bound'.
   */
  async #applyBounds(
    rule: RemediationRule,
    action: RemediationAction,
    args: Record<string, unknown>,
    targets: string[],
    perTarget: Map<string, Record<string, unknown>>,
    skip: (worker: string, reason: SuppressReason, detail?: string) => void,
    shrinkBackKey: ((worker: string) => string) | undefined,
  ): Promise<string[]> {
    if (action !== 'pool_grow' && action !== 'pool_shrink' && action !== 'autoscale') return targets;
    const b = rule.bounds;
    if (action === 'autoscale') {
      const max = Number(args.max);
      const min = Number(args.min);
      if (!(Number.isInteger(max) && Number.isInteger(min) && min >= 0 && min <= max && max <= (b.max_autoscale ?? Infinity))) {
        for (const w of targets) skip(w, 'bound', `autoscale needs 0 ≤ min ≤ max ≤ ${b.max_autoscale}, got min=${args.min} max=${args.max}`);
        return [];
      }
      return targets;
    }
    const n = Number(args.n ?? 1);
    if (!Number.isInteger(n) || n < 1) {
      for (const w of targets) skip(w, 'bound', `n must be a positive integer, got ${String(args.n)}`);
      return [];
    }
    const stats = await this.executor.poolStats(targets);
    const kept: string[] = [];
    for (const worker of targets) {
      const s = stats.get(worker);
      if (!s || s.processes === undefined) {
        skip(worker, 'bound', 'no live pool size (worker did not answer stats, or its pool cannot be resized)');
        continue;
      }
      let allowed: number;
      const pending = async (a: 'pool_grow' | 'pool_shrink') => Number((await this.state.get(`pending:${a}:${worker}`)) ?? '0');
      if (action === 'pool_grow') {
        const recent = await pending('pool_grow');
        const counted = s.processes + recent;
        allowed = Math.min(n, (b.max_pool_processes ?? 0) - counted);
        if (allowed < 1) {
          skip(worker, 'bound', `already at ${counted} processes${recent > 0 ? ` (${recent} from a grow not in stats yet)` : ''} (ceiling ${b.max_pool_processes})`);
          continue;
        }
      } else {
        allowed = Math.min(n, s.processes - (await pending('pool_shrink')) - b.min_pool_processes);
        if (shrinkBackKey) {
          const grown = Number((await this.state.get(shrinkBackKey(worker))) ?? '0');
          if (grown < 1) {
            skip(worker, 'nothing_to_revert', 'this alert did not grow this worker');
            continue;
          }
          allowed = Math.min(allowed, grown);
        }
        if (allowed < 1) {
          skip(worker, 'bound', `already at ${s.processes} processes (floor ${b.min_pool_processes})`);
          continue;
        }
      }
      if (allowed !== n) perTarget.set(worker, { ...args, n: allowed });
      kept.push(worker);
    }
    return kept;
  }
}
