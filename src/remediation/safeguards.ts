import { prepareCommand } from '../control/commands.js';
import { CommandValidationError } from '../celery/validators.js';
import type { Alert } from './alertmanager.js';
import { applyBounds, rememberResize } from './bounds.js';
import type { Decision, DecisionOutcome, RemediationExecutor, RemediationOptions, SuppressReason } from './types.js';
import type { KillSwitch } from './kill-switch.js';
import { grownDeploymentKey, planScale, rememberScale, resolveDeployment, type KubernetesParts, type ScalePlan } from './deployments.js';
import { convertArguments, dangerOf, isWorkerAction, targetAllowed, type RemediationAction, type RemediationRule } from './rules.js';
import type { RemediationState } from './state.js';
import { stateKeys } from './state-keys.js';
import { render, TemplateError } from './template.js';
import { resolvePurgeQueue } from './queue-target.js';

/** One alert judged by one rule, as it passes through the safeguards. */
export interface Judgement {
  readonly alert: Alert;
  readonly rule: RemediationRule;
  readonly action: RemediationAction;
  /** The rule's arguments, templates not yet rendered. */
  readonly template: Record<string, unknown>;
  /** A resolved notification running the rule's on_resolved step (a shrink-back). */
  readonly resolvedStep: boolean;
  readonly decision: Decision;
  /** Rendered and converted once; set by the first step. */
  args: Record<string, unknown>;
  targets: string[];
  /** Workers whose bounds gave them their own arguments (a clamped n). */
  readonly perTarget: Map<string, Record<string, unknown>>;
  /** Pool size each bounded worker was counted at (see BoundsInput.counted). */
  readonly poolCounted: Map<string, number>;
  /** In-flight locks this decision holds; released once it is over, whatever the outcome. */
  readonly held: string[];
  /** The targets the action succeeded on, set by the act: what the steps' `record` remembers. */
  acted: string[];
  readonly dryRun: boolean;
  /** mode approve, not yet approved: the safeguards run, then a proposal is filed instead. */
  readonly proposing: boolean;
  /** The names of the safeguards passed so far (a proposal lists them). */
  readonly passed: string[];
  /** scale_deployment: what the bounds step planned for the Deployment. */
  scalePlan?: ScalePlan;
  /** Work left after the decision acted (scale_deployment's confirmation through Celery). */
  followUp?: () => Promise<void>;
}

/** What ends a decision; a step that lets it go on returns undefined. */
export interface Verdict {
  outcome: DecisionOutcome;
  reason?: Decision['reason'];
}

/** What the steps may use: the cluster, the shared state, the kill switch and the options. */
export interface SafeguardContext {
  readonly executor: RemediationExecutor;
  readonly state: RemediationState;
  readonly killSwitch: KillSwitch;
  readonly options: RemediationOptions;
  /** The Kubernetes API, for scale_deployment; undefined without credentials. */
  readonly kubernetes?: KubernetesParts | undefined;
}

/**
 * One named step. A step that keeps state keeps all of it here: `check` reads it, `record`
 * writes what the act changed, `release` gives back what `check` took, so a new stateful
 * safeguard is one entry in SAFEGUARDS and the engine knows none of its keys.
 */
export interface Safeguard {
  readonly name: string;
  check(j: Judgement, c: SafeguardContext): Promise<Verdict | undefined> | Verdict | undefined;
  /** After the act, in SAFEGUARDS order: what later decisions must know of it (`j.acted`). */
  record?(j: Judgement, c: SafeguardContext): Promise<void>;
  /** Once the decision is over, whatever its outcome (after its follow-up, if any). */
  release?(j: Judgement, c: SafeguardContext): Promise<void>;
}

const suppressed = (reason: SuppressReason): Verdict => ({ outcome: 'suppressed', reason });

function skip(j: Judgement, worker: string, reason: SuppressReason, detail?: string): void {
  j.decision.skipped.push({ worker, reason, ...(detail ? { detail } : {}) });
}

/** The key a firing alert's grow is remembered under, for its shrink-back. */
const grownKey = (j: Judgement, worker: string): string => stateKeys.grown(j.alert, j.rule.name, worker);

/**
 * The safeguards, in the order they apply (README "Remediation" lists them in this order). Each
 * one either lets the decision go on or ends it with a verdict; what they learnt (targets,
 * skipped workers, arguments) is on the decision the audit records. The order matters: nothing
 * before `kill_switch` talks to the broker or the shared state, and the idempotency key is
 * claimed last so that of two replicas (or two resends in flight) exactly one acts.
 */
export const SAFEGUARDS: readonly Safeguard[] = [
  {
    name: 'arguments',
    check(j) {
      try {
        j.args = convertArguments(j.action, render(j.template, j.alert) as Record<string, unknown>);
      } catch (e) {
        if (!(e instanceof TemplateError)) throw e;
        skip(j, '*', 'no_target', e.message);
        return { outcome: 'failed', reason: 'bad_arguments' };
      }
      j.decision.arguments = j.args;
      return undefined;
    },
  },
  {
    name: 'allow_list',
    check(j, c) {
      const danger = dangerOf(j.action, j.args);
      return danger && !c.options.allowDangerous.includes(danger) ? suppressed('not_allowed') : undefined;
    },
  },
  {
    name: 'targets',
    check(j, c) {
      if (j.action === 'purge_queue') {
        const found = resolvePurgeQueue(j.rule.target.queue, j.alert);
        if ('error' in found) {
          j.decision.error = found.error;
          return { outcome: 'failed', reason: 'bad_arguments' };
        }
        j.targets = [found.queue];
        return undefined;
      }
      if (!isWorkerAction(j.action)) {
        const found = resolveDeployment(j.rule, j.alert, c.kubernetes);
        if ('error' in found) {
          j.decision.error = found.error;
          return { outcome: 'failed', reason: 'bad_arguments' };
        }
        j.targets = found.targets;
        return j.targets.length > 0 ? undefined : suppressed('no_target');
      }
      const resolved = resolveTargets(j, c.executor);
      j.targets = resolved.filter((worker) => targetAllowed(j.rule, worker));
      for (const worker of resolved) if (!j.targets.includes(worker)) skip(j, worker, 'not_allowed', 'outside target.allow');
      if (j.targets.length > 0) return undefined;
      return suppressed(resolved.length > 0 ? 'not_allowed' : 'no_target');
    },
  },
  {
    // After the targets, so the audit shows the command that would have gone to whom; before
    // anything that talks to the broker (bounds read stats), so nothing at all is sent.
    name: 'kill_switch',
    async check(j, c) {
      j.decision.targets = j.targets;
      return (await c.killSwitch.read()) ? suppressed('kill_switch') : undefined;
    },
  },
  {
    name: 'idempotency',
    async check(j, c) {
      return (await c.state.has(stateKeys.idempotency(j.alert, j.rule.name, j.action, false))) ? suppressed('duplicate') : undefined;
    },
  },
  {
    // After an ineffective action (verify), the rule does not repeat it for that alert.
    name: 'effect',
    async check(j, c) {
      if (j.resolvedStep || !j.rule.verify || !(await c.state.has(stateKeys.ineffective(j.rule.name, j.alert.fingerprint))))
        return undefined;
      skip(j, '*', 'ineffective', `its last ${j.action} for this alert did not help within ${j.rule.verify.within_seconds} s`);
      return suppressed('ineffective');
    },
  },
  {
    name: 'cooldown',
    async check(j, c) {
      const kept: string[] = [];
      for (const worker of j.targets) {
        if (await c.state.has(stateKeys.cooldown(j.rule.name, j.action, worker, j.resolvedStep))) skip(j, worker, 'cooldown');
        else kept.push(worker);
      }
      j.targets = kept;
      return undefined;
    },
    // Per action: a shrink-back on resolve is not held up by the cooldown of the grow it undoes.
    async record(j, c) {
      if (j.rule.cooldown_seconds <= 0) return;
      for (const worker of j.acted)
        await c.state.claim(stateKeys.cooldown(j.rule.name, j.action, worker, j.resolvedStep), j.rule.cooldown_seconds * 1000);
    },
  },
  {
    name: 'in_flight',
    async check(j, c) {
      const free: string[] = [];
      for (const worker of j.targets) {
        if (await c.state.claim(stateKeys.inFlight(worker), c.options.inFlightSeconds * 1000)) {
          j.held.push(worker);
          free.push(worker);
        } else skip(j, worker, 'in_flight');
      }
      j.targets = free;
      return undefined;
    },
    async release(j, c) {
      await Promise.all(j.held.map((worker) => c.state.release(stateKeys.inFlight(worker))));
    },
  },
  {
    name: 'bounds',
    async check(j, c) {
      if (j.action === 'purge_queue') {
        // No bounds: a purge empties the queue, and allow_dangerous_actions is what guards it.
        j.decision.targets = j.targets;
        return j.targets.length === 0 ? suppressed(j.decision.skipped[0]?.reason ?? 'no_target') : undefined;
      }
      if (!isWorkerAction(j.action)) return deploymentBounds(j, c);
      if (j.targets.length > 0) {
        j.targets = await applyBounds(c.executor, c.state, {
          rule: j.rule,
          action: j.action,
          args: j.args,
          targets: j.targets,
          perTarget: j.perTarget,
          counted: j.poolCounted,
          skip: (worker, reason, detail) => skip(j, worker, reason, detail),
          shrinkBackKey: j.resolvedStep ? (worker) => grownKey(j, worker) : undefined,
        });
      }
      j.decision.targets = j.targets;
      return j.targets.length === 0 ? suppressed(j.decision.skipped[0]?.reason ?? 'no_target') : undefined;
    },
    // What the bounds count next time: a resize not in stats yet, what a firing alert grew.
    async record(j, c) {
      if (!isWorkerAction(j.action)) {
        const target = j.acted[0];
        if (target !== undefined && j.decision.deployment)
          await rememberScale(c.state, grownDeploymentKey(j.alert, j.rule.name, target), j.decision.deployment, {
            resolvedStep: j.resolvedStep,
            ttlMs: c.options.memorySeconds * 1000,
          });
        return;
      }
      await rememberResize(c.state, {
        action: j.action,
        args: j.args,
        perTarget: j.perTarget,
        counted: j.poolCounted,
        acted: j.acted,
        grownKey: (worker) => grownKey(j, worker),
        resolvedStep: j.resolvedStep,
        pendingMs: c.options.pendingResizeMs ?? 10_000,
        memoryMs: c.options.memorySeconds * 1000,
      });
    },
  },
  {
    // The command's own validator, the same one the HTTP API runs: what a label rendered into
    // the arguments is refused here, before anything is claimed or sent.
    name: 'command',
    check(j) {
      if (!isWorkerAction(j.action)) return undefined; // not a Celery command: its bounds checked the arguments
      try {
        for (const worker of j.targets) prepareCommand(j.action, j.perTarget.get(worker) ?? j.args);
      } catch (e) {
        if (!(e instanceof CommandValidationError)) throw e;
        j.decision.error = e.message;
        return { outcome: 'failed', reason: 'bad_arguments' };
      }
      return undefined;
    },
  },
  {
    name: 'caps',
    async check(j, c) {
      if (j.dryRun || j.proposing) return undefined; // counted when approved

      const cap = j.rule.max_actions;
      if (cap && (await c.state.count(stateKeys.ruleCap(j.rule.name), cap.window_seconds * 1000)) > cap.count) return suppressed('cap');
      const g = c.options.globalCap;
      if (g && (await c.state.count(stateKeys.globalCap, g.windowSeconds * 1000)) > g.count) return suppressed('cap');
      return undefined;
    },
  },
  {
    name: 'claim',
    async check(j, c) {
      const key = j.proposing
        ? stateKeys.proposal(j.alert, j.rule.name, j.action)
        : stateKeys.idempotency(j.alert, j.rule.name, j.action, j.dryRun);
      return (await c.state.claim(key, c.options.memorySeconds * 1000)) ? undefined : suppressed('duplicate');
    },
  },
  {
    name: 'dry_run',
    check: (j) => (j.dryRun ? { outcome: 'dry_run' } : j.proposing ? { outcome: 'proposed' } : undefined),
  },
];

/** Bounds for scale_deployment (deployments.ts planScale): one Deployment, refused if an autoscaler owns it. */
async function deploymentBounds(j: Judgement, c: SafeguardContext): Promise<Verdict | undefined> {
  const target = j.targets[0];
  if (target === undefined || !c.kubernetes) return suppressed(j.decision.skipped[0]?.reason ?? 'no_target');
  const shrinkBackKey = j.resolvedStep ? grownDeploymentKey(j.alert, j.rule.name, target) : undefined;
  const plan = await planScale(c.kubernetes, c.state, { rule: j.rule, args: j.args, target, shrinkBackKey });
  if ('reason' in plan) {
    skip(j, target, plan.reason, plan.detail);
    j.targets = [];
    j.decision.targets = [];
    return suppressed(plan.reason);
  }
  j.scalePlan = plan;
  j.decision.deployment = plan.change;
  j.decision.targets = j.targets;
  return undefined;
}

function resolveTargets(j: Judgement, executor: RemediationExecutor): string[] {
  const t = j.rule.target;
  let names: string[] = [];
  if (t.worker_label) {
    const v = j.alert.labels[t.worker_label];
    names = v ? [v] : [];
    if (v && executor.isLive && !executor.isLive(v)) {
      skip(j, v, 'no_target', 'not a live worker');
      names = [];
    }
  } else if (t.queue_label) {
    const q = j.alert.labels[t.queue_label];
    names = q ? executor.consumersOf(q) : [];
  } else if (t.pattern) {
    names = executor.matching(t.pattern);
  }
  return [...new Set(names)].sort();
}
