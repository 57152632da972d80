import type { ClusterSample } from '../metrics/celery-metrics.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { QueueCollector } from './queue-collector.js';

/**
 * What one scrape reports about workers and queues, read at one moment: worker liveness and who
 * consumes each queue are taken at the same `now`, before the broker is asked for depths; the
 * depth read (cached, with its timeout, shared by concurrent reads) is then joined to them and
 * nothing is read again after it returns. A worker that dies while the broker is slow to answer
 * is alive everywhere in that scrape and dead everywhere in the next, never half of each.
 */
export function sampleCluster(workers: WorkerRegistry, queues: QueueCollector, now: number): Promise<ClusterSample> {
  // Restored workers that have not spoken since get no series: the file is not a heartbeat.
  const workerSamples = [...workers.all()]
    .filter((w) => w.restored !== true)
    .map((w) => ({
      hostname: w.hostname,
      up: workers.isAlive(w, now),
      active: w.active ?? 0,
      ...(w.processes !== undefined ? { processes: w.processes } : {}),
    }));
  return queues.collect(now).then((queueSamples) => ({ workers: workerSamples, queues: queueSamples }));
}
