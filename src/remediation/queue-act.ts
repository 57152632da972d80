import type { Judgement, SafeguardContext, Verdict } from './safeguards.js';

/**
 * The act of a purge_queue decision: one purge of the queue the targets step resolved. The count
 * removed goes on the decision, so the audit says how many messages were lost. A broker that is
 * down or a purge that fails throws, and the engine records a failed decision: nothing half-done
 * is reported as done.
 */
export async function actOnQueue(j: Judgement, c: SafeguardContext): Promise<Verdict> {
  const queue = j.targets[0]!;
  if (!c.executor.brokerConnected()) return { outcome: 'failed', reason: 'broker_unavailable' };
  if (!c.executor.purgeQueue) {
    j.decision.error = 'this executor cannot purge queues';
    return { outcome: 'failed', reason: 'error' };
  }
  const removed = await c.executor.purgeQueue(queue);
  j.decision.purged = { queue, removed };
  j.acted = [queue];
  return { outcome: 'acted' };
}
