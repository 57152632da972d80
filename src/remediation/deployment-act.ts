import { applyScale, confirmThroughCelery } from './deployments.js';
import type { Judgement, SafeguardContext, Verdict } from './safeguards.js';

/**
 * The act of a scale_deployment decision: cancel_consumer on the pods that go (scale-down), the
 * conditional scale write, then the confirmation through Celery as the decision's follow-up.
 * What later decisions must know of it (cooldown, what this alert added) the safeguards record.
 */
export async function actOnDeployment(j: Judgement, c: SafeguardContext & { sleep: (ms: number) => Promise<void> }): Promise<Verdict> {
  const k8s = c.kubernetes!;
  const target = j.targets[0]!;
  const queue = j.alert.labels[j.rule.target.queue_label ?? 'queue_name'] || undefined;
  const { change } = await applyScale(k8s, c.executor, j.scalePlan!, queue, c.sleep);
  j.decision.deployment = change;
  j.acted = [target];
  if (change.after !== change.before)
    j.followUp = () => confirmThroughCelery(k8s, c.executor, change, queue, c.options.confirmMs ?? 120_000, c.sleep);
  // A leaving worker that did not answer cancel_consumer still stops warmly on SIGTERM: the
  // scale stands, and its answer is on the decision.
  return { outcome: 'acted' };
}
