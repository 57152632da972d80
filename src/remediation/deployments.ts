import { KUBE_NAME, KUBE_NAMESPACE, type KubernetesConfig } from '../config/kubernetes-schema.js';
import { KubernetesApiError, type KubernetesClient, type PodInfo, type Scale } from '../kubernetes/client.js';
import type { RemediationRule } from './rules.js';
import type { RemediationState } from './state.js';
import { stateKeys } from './state-keys.js';
import { render, TemplateError } from './template.js';
import type { Alert } from './alertmanager.js';
import type { DeploymentChange, RemediationExecutor, SuppressReason } from './types.js';

/**
 * scale_deployment: a worker Deployment's replicas through the Kubernetes scale subresource,
 * within the rule's bounds. Targets are "namespace/name". Before a scale-down the pods that will
 * go stop consuming the queue (cancel_consumer), so no task is taken and then killed; after a
 * scale-up the new pods' workers are watched until they come online and consume it.
 */

export interface KubernetesParts {
  readonly client: KubernetesClient;
  readonly config: KubernetesConfig;
  /** Where a target without a namespace lives (the service account's or the context's namespace). */
  readonly defaultNamespace: string | undefined;
}

export type Resolved = { targets: string[] } | { error: string };

/** The Deployment a rule names (templates rendered from the alert), or the one its queue maps to. */
export function resolveDeployment(rule: RemediationRule, alert: Alert, k8s: KubernetesParts | undefined): Resolved {
  if (!k8s) return { error: 'scale_deployment needs Kubernetes credentials (kubernetes.kubeconfig, or run in a pod)' };
  const t = rule.target;
  let namespace: unknown;
  let name: unknown;
  try {
    if (t.deployment !== undefined) {
      name = render(t.deployment, alert);
      namespace = t.namespace !== undefined ? render(t.namespace, alert) : k8s.defaultNamespace;
    } else if (t.queue_label !== undefined) {
      const queue = alert.labels[t.queue_label];
      const mapped = queue !== undefined ? k8s.config.queue_deployments[queue] : undefined;
      if (mapped === undefined) return { targets: [] };
      [namespace, name] = mapped.split('/');
    }
  } catch (e) {
    if (e instanceof TemplateError) return { error: e.message };
    throw e;
  }
  // A label chose these names: they must be names, or nothing is asked of the API server.
  if (typeof name !== 'string' || !KUBE_NAME.test(name)) return { error: `not a Deployment name: ${JSON.stringify(name)}` };
  if (typeof namespace !== 'string' || !KUBE_NAMESPACE.test(namespace))
    return { error: `not a namespace: ${JSON.stringify(namespace ?? null)} (set target.namespace)` };
  return { targets: [`${namespace}/${name}`] };
}

export const splitTarget = (target: string): [string, string] => target.split('/') as [string, string];

/** What one decision will do to its Deployment; planned by the bounds step, carried out by act. */
export interface ScalePlan {
  namespace: string;
  name: string;
  /** The count wanted from a current count, within the bounds; undefined: nothing to do. */
  decide: (current: number) => number | undefined;
  change: DeploymentChange;
}

/**
 * The bounds step for a Deployment: refused when an HPA or a KEDA ScaledObject owns it (they
 * would overwrite the change at their next sync); otherwise the replica count wanted, clamped to
 * [min_replicas, max_replicas], and on a resolved alert at most what that alert added.
 */
export async function planScale(
  k8s: KubernetesParts,
  state: RemediationState,
  input: { rule: RemediationRule; args: Record<string, unknown>; target: string; shrinkBackKey: string | undefined },
): Promise<ScalePlan | { reason: SuppressReason; detail: string }> {
  const [namespace, name] = splitTarget(input.target);
  const owners = await k8s.client.scaleOwners(namespace, name);
  if (owners.length > 0) {
    return {
      reason: 'autoscaler_owned',
      detail:
        `${owners.join(', ')} scales ${input.target} and would overwrite this change: ` +
        'change its minReplicas/maxReplicas instead, or let KEDA scale on celery-autopilot’s signals (deploy/kubernetes/overlays/keda) and remove this rule',
    };
  }
  const { min_replicas: min = 0, max_replicas: max = 0 } = input.rule.bounds;
  const { by, replicas } = input.args;
  const whole = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
  if (!(whole(by) && by !== 0) && !(whole(replicas) && replicas >= 0))
    return { reason: 'bound', detail: `by must be a non-zero integer or replicas a count, got ${JSON.stringify(input.args)}` };
  // A resolved alert gives back at most what it added.
  const grown = input.shrinkBackKey ? Number((await state.get(input.shrinkBackKey)) ?? '0') : undefined;
  if (grown !== undefined && grown < 1) return { reason: 'nothing_to_revert', detail: 'this alert did not scale this Deployment up' };
  const decide = (current: number): number | undefined => {
    let want = whole(replicas) ? replicas : current + (by as number);
    if (grown !== undefined) want = Math.max(want, current - grown);
    want = Math.min(max, Math.max(min, want));
    return want === current ? undefined : want;
  };
  const scale = await k8s.client.getScale(namespace, name);
  const want = decide(scale.replicas);
  const change: DeploymentChange = { namespace, name, before: scale.replicas, after: want ?? scale.replicas };
  if (want === undefined) return { reason: 'bound', detail: `already at ${scale.replicas} replicas (bounds ${min}–${max})` };
  return { namespace, name, decide, change };
}

/** The pods a ReplicaSet removes first when it scales down by `n`: not ready ones, then the newest. */
export function leavingPods(pods: readonly PodInfo[], n: number): PodInfo[] {
  return pods
    .filter((p) => !p.terminating)
    .sort((a, b) => Number(a.ready) - Number(b.ready) || b.createdAt - a.createdAt)
    .slice(0, Math.max(0, n));
}

export const workerOf = (config: KubernetesConfig, pod: string): string => config.worker_hostname.replaceAll('{pod}', pod);

/**
 * Carries the plan out: on a scale-down, the leaving pods' workers first stop consuming `queue`;
 * then the scale is written (a 409 re-reads and re-decides on the fresh object). Returns the
 * change as made; 401/403/404/422 throw KubernetesApiError (never retried).
 */
export async function applyScale(
  k8s: KubernetesParts,
  executor: RemediationExecutor,
  plan: ScalePlan,
  queue: string | undefined,
  sleep: (ms: number) => Promise<void>,
): Promise<{ change: DeploymentChange; scale: Scale | undefined }> {
  const { namespace, name, change } = plan;
  if (change.after < change.before && queue !== undefined) {
    const pods = await podsOf(k8s, namespace, name);
    const leaving = leavingPods(pods, change.before - change.after).map((p) => workerOf(k8s.config, p.name));
    change.cancelled = leaving.length > 0 ? await executor.run('cancel_consumer', { queue }, leaving) : [];
    // Celery answers cancel_consumer before its consumer loop has cancelled: wait (briefly) until
    // active_queues (re-read after every consumer change) shows the leaving workers off the queue.
    const answered = change.cancelled.filter((r) => r.status === 'ok').map((r) => r.worker);
    for (let waited = 0; waited < CANCEL_WAIT_MS; waited += 200) {
      const still = new Set(executor.consumersOf(queue));
      if (!answered.some((w) => still.has(w))) break;
      await sleep(200);
    }
  }
  const { before, after, conflicts } = await k8s.client.rescale(namespace, name, (s) => plan.decide(s.replicas));
  change.before = before.replicas;
  change.after = after?.replicas ?? before.replicas;
  if (conflicts > 0) change.conflicts = conflicts;
  return { change, scale: after };
}

/** Longest wait for leaving workers to show they stopped consuming, before the count drops anyway. */
const CANCEL_WAIT_MS = 10_000;

export async function podsOf(k8s: KubernetesParts, namespace: string, name: string): Promise<PodInfo[]> {
  const deployment = await k8s.client.getDeployment(namespace, name);
  return k8s.client.listPods(namespace, deployment.selector);
}

/**
 * Confirmation through Celery itself: polls the Deployment's pods until `change.after` of them
 * have a live worker (consuming `queue` when known), recording when each came online; a
 * scale-down is confirmed once the leaving workers are gone. Gives up after `timeoutMs`.
 */
export async function confirmThroughCelery(
  k8s: KubernetesParts,
  executor: RemediationExecutor,
  change: DeploymentChange,
  queue: string | undefined,
  timeoutMs: number,
  sleep: (ms: number) => Promise<void>,
): Promise<void> {
  const started = Date.now();
  const online = new Map<string, string>();
  const deadline = started + timeoutMs;
  for (;;) {
    let pods: PodInfo[] = [];
    try {
      pods = (await podsOf(k8s, change.namespace, change.name)).filter((p) => !p.terminating);
    } catch (e) {
      if (!(e instanceof KubernetesApiError)) throw e;
    }
    const live = new Set(queue !== undefined ? executor.consumersOf(queue) : pods.map((p) => workerOf(k8s.config, p.name)));
    for (const p of pods) {
      const worker = workerOf(k8s.config, p.name);
      const up = queue !== undefined ? live.has(worker) : (executor.isLive?.(worker) ?? false);
      if (up && !online.has(worker)) online.set(worker, new Date().toISOString());
    }
    const serving = pods.filter((p) => online.has(workerOf(k8s.config, p.name))).length;
    const done = pods.length === change.after && serving === change.after;
    if (done || Date.now() >= deadline) {
      change.confirmation = {
        confirmed: done,
        ...(queue !== undefined ? { queue } : {}),
        workers: [...online].map(([worker, at]) => ({ worker, online_at: at })),
        seconds: Math.round((Date.now() - started) / 100) / 10,
      };
      return;
    }
    await sleep(500);
  }
}

/**
 * The bounds' memory of a scale that acted: what a firing alert added to a Deployment, for its
 * shrink-back on resolve (which gives back at most that); a shrink-back that shrank forgets it.
 */
export async function rememberScale(
  state: RemediationState,
  key: string,
  change: DeploymentChange,
  { resolvedStep, ttlMs }: { resolvedStep: boolean; ttlMs: number },
): Promise<void> {
  if (resolvedStep) {
    if (change.after < change.before) await state.release(key);
    return;
  }
  const added = change.after - change.before;
  if (added <= 0) return;
  const before = Number((await state.get(key)) ?? '0');
  await state.put(key, String(before + added), ttlMs);
}

export const grownDeploymentKey = (alert: Alert, rule: string, target: string): string =>
  stateKeys.grown(alert, rule, `deployment:${target}`);
