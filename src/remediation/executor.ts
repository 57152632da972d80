import type { ControlClient } from '../control/client.js';
import { parseStats } from '../celery/worker-replies.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { BrokerTransport } from '../transport/transport.js';
import type { RemediationExecutor, TargetOutcome } from './types.js';
import { globMatch } from '../glob.js';
import type { RemediationAction } from './rules.js';

/** A purge is one broker operation; past this the decision fails and the queue is as the broker left it. */
const PURGE_TIMEOUT_MS = 10_000;

/**
 * Remediation's view of the cluster and its hands: targets come from the live worker registry
 * (queues from `active_queues`), bounds from a fresh `stats`, and commands go through the same
 * validated control client as the HTTP API, always with an explicit destination.
 */
export class ClusterExecutor implements RemediationExecutor {
  constructor(
    private readonly transport: BrokerTransport,
    private readonly control: ControlClient,
    private readonly workers: WorkerRegistry,
  ) {}

  brokerConnected(): boolean {
    return this.transport.isConnected();
  }

  consumersOf(queue: string): string[] {
    return this.workers.consumersOf(queue).map((w) => w.hostname);
  }

  isLive(worker: string): boolean {
    return this.workers.alive().some((w) => w.hostname === worker);
  }

  matching(pattern: string): string[] {
    return this.workers
      .alive()
      .map((w) => w.hostname)
      .filter((name) => globMatch(pattern, name));
  }

  async poolStats(workers: string[]): Promise<Map<string, { processes?: number; autoscaler?: { min: number; max: number } }>> {
    const result = await this.control.run('stats', {}, { workers });
    const out = new Map<string, { processes?: number; autoscaler?: { min: number; max: number } }>();
    for (const r of result.results) {
      if (r.status !== 'ok') continue;
      const stats = parseStats(r.reply);
      // pool_grow/pool_shrink are refused by autoscaling workers: their size is the autoscaler's.
      const processes = stats?.autoscaler ? undefined : stats?.concurrency;
      out.set(r.worker, {
        ...(processes !== undefined ? { processes } : {}),
        ...(stats?.autoscaler ? { autoscaler: stats.autoscaler } : {}),
      });
    }
    return out;
  }

  async purgeQueue(queue: string): Promise<number> {
    return this.transport.purgeQueue(queue, PURGE_TIMEOUT_MS);
  }

  async run(action: RemediationAction, args: Record<string, unknown>, workers: string[], keepProcesses?: number): Promise<TargetOutcome[]> {
    if (workers.length === 0) return [];
    const result = await this.control.run(action, args, { workers }, keepProcesses !== undefined ? { keepProcesses } : {});
    return result.results.map((r) => ({
      worker: r.worker,
      status: r.status === 'ok' || r.status === 'sent' ? 'ok' : r.status === 'error' ? 'error' : 'no_reply',
      ...(r.message ? { message: r.message } : {}),
      ...(r.kind ? { kind: r.kind } : {}),
    }));
  }
}
