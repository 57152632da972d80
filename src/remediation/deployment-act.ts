import { applyScale, confirmThroughCelery, grownDeploymentKey, rememberGrowth } from './deployments.js';
import type { Judgement, SafeguardContext, Verdict } from './safeguards.js';
import { stateKeys } from './state-keys.js';

/**
 * The act of a scale_deployment decision: cancel_consumer on the pods that go (scale-down), the
 * conditional scale write, the cooldown and what this alert added (for its shrink-back), then
 * the confirmation through Celery as the decision's follow-up.
 */
export async function actOnDeployment(j: Judgement, c: SafeguardContext & { sleep: (ms: number) => Promise<void> }): Promise<Verdict> {
  const k8s = c.kubernetes!;
  const target = j.targets[0]!;
  const queue = j.alert.labels[j.rule.target.queue_label ?? 'queue_name'] || undefined;
  const { change } = await applyScale(k8s, c.executor, j.scalePlan!, queue, c.sleep);
  j.decision.deployment = change;
  if (j.rule.cooldown_seconds > 0)
    await c.state.claim(stateKeys.cooldown(j.rule.name, j.action, target, j.resolvedStep), j.rule.cooldown_seconds * 1000);
  const key = grownDeploymentKey(j.alert, j.rule.name, target);
  if (!j.resolvedStep) await rememberGrowth(c.state, key, change, c.options.memorySeconds * 1000);
  else if (change.after < change.before) await c.state.release(key);
  if (change.after !== change.before)
    j.followUp = () => confirmThroughCelery(k8s, c.executor, change, queue, c.options.confirmMs ?? 120_000, c.sleep);
  // A leaving worker that did not answer cancel_consumer still stops warmly on SIGTERM: the
  // scale stands, and its answer is on the decision.
  return { outcome: 'acted' };
}
