import type { Clock } from '../clock.js';
import type { Config } from '../config/load.js';
import type { QueueSample } from '../metrics/celery-metrics.js';
import type { TaskSeriesStore } from '../metrics/task-series.js';
import type { BrokerStatus } from '../transport/broker-status.js';
import { ClusterHistory, type ClusterReading } from '../state/cluster-history.js';
import type { InFlightTasks } from '../state/in-flight-tasks.js';
import type { WorkerRegistry } from '../state/workers.js';

/** The parts of the service one reading is taken from (Service hands itself in). */
export interface SamplerParts {
  readonly config: Config;
  readonly clock: Clock;
  readonly status: BrokerStatus;
  readonly workers: WorkerRegistry;
  readonly inFlight: InFlightTasks;
  readonly celeryMetrics: { readonly taskSeries: TaskSeriesStore };
  readonly queues: { collect(now?: number): Promise<QueueSample[]> };
}

/** One hour at 10 s: what the overview charts show. */
export const HISTORY_STEP_MS = 10_000;
export const HISTORY_POINTS = 360;

/**
 * Takes one reading of the cluster every step and keeps it in the history the console draws.
 * Queue depths come through the queue collector's cache (shared with scrapes; with its timeout,
 * so a broker outage only leaves gaps); everything else is read from memory.
 */
export class ClusterSampler {
  readonly history: ClusterHistory;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(private readonly parts: SamplerParts) {
    const c = parts.config.cardinality;
    this.history = new ClusterHistory({
      stepMs: HISTORY_STEP_MS,
      points: HISTORY_POINTS,
      maxQueues: c.max_queues,
      maxWorkers: c.max_hostnames,
    });
  }

  start(): void {
    // A reading that fails leaves a gap in the charts, which is how they show it.
    const tick = (): void => {
      this.sample().catch(() => undefined);
    };
    tick();
    this.#timer = setInterval(tick, HISTORY_STEP_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  /** The queues as the queues page shows them: depth plus what workers hold. */
  open(): Map<string, { reserved: number; running: number }> {
    return this.parts.inFlight.openByQueue(this.parts.config.metrics.default_queue_name);
  }

  /** One reading now; a reading still waiting for the broker makes the next tick skip. Never throws. */
  async sample(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const { status, workers, clock } = this.parts;
      const now = clock.nowMs();
      const alive = workers.alive(now);
      const depths: QueueSample[] = status.connected ? await this.parts.queues.collect(now).catch(() => []) : [];
      const open = this.open();
      const totals = this.parts.celeryMetrics.taskSeries.totalsByHostname();
      const names = new Set([...depths.map((q) => q.queue), ...open.keys()]);
      const reading: ClusterReading = {
        brokerUp: status.connected,
        workersUp: alive.length,
        processes: alive.reduce((n, w) => n + (w.processes ?? 0), 0),
        succeeded: 0,
        failed: 0,
        retried: 0,
        queues: [...names].map((queue) => ({
          queue,
          depth: depths.find((d) => d.queue === queue)?.length ?? null,
          reserved: open.get(queue)?.reserved ?? 0,
        })),
        workers: [...totals].map(([hostname, t]) => ({ hostname, ...t })),
      };
      for (const t of totals.values()) {
        reading.succeeded += t.succeeded;
        reading.failed += t.failed;
        reading.retried += t.retried;
      }
      this.history.record(reading, clock.nowMs());
    } finally {
      this.#busy = false;
    }
  }
}
