import { Gauge, type Registry } from 'prom-client';
import { familiesOf, type MetricFamily } from './families.js';
import { TaskSeriesStore, type CounterFamily } from './task-series.js';

/**
 * The Celery metrics, with celery-exporter's exact names, types and label names (product
 * contract 1), so its dashboards and the celery-mixin alerts work unchanged. Values that are
 * state, not counts (worker up, queue lengths...), are set at scrape time by `prepare()` from one
 * sample of the cluster (see there).
 */

export type { CounterFamily } from './task-series.js';

export interface CeleryMetricsOptions {
  prefix: string;
  runtimeBuckets: number[];
  queueWaitBuckets: number[];
  /**
   * Added to every series this service exposes. Applied here and only here: as prom-client
   * default labels of the registry (Celery gauges, our own metrics, Node's) and to the per-task
   * store, which renders outside prom-client.
   */
  staticLabels: Record<string, string>;
  maxTaskSeries: number;
  overflowValue: string;
}

export interface WorkerSample {
  hostname: string;
  up: boolean;
  active: number;
  /** Live pool processes from the last inspection; undefined: not inspected yet. */
  processes?: number;
}

export interface QueueSample {
  queue: string;
  length: number | null;
  consumers: number | null;
  workers: number;
  processes: number;
  /** Autoscaling signals (state/queue-flow.ts); null: not known, no series. */
  timeToDrain: number | null;
  processesNeeded: number | null;
  oldestMessageAge: number | null;
}

/** Workers and queues as one scrape reports them: read at one moment (exporter/scrape-sample.ts). */
export interface ClusterSample {
  workers: WorkerSample[];
  queues: QueueSample[];
}

export class CeleryMetrics {
  /** The per-task families live outside prom-client: see task-series.ts for why. */
  readonly taskSeries: TaskSeriesStore;
  readonly #workerUp: Gauge<'hostname'>;
  readonly #workerActive: Gauge<'hostname'>;
  readonly #queueLength: Gauge<'queue_name'>;
  readonly #consumers: Gauge<'queue_name'>;
  readonly #workersPerQueue: Gauge<'queue_name'>;
  readonly #processesPerQueue: Gauge<'queue_name'>;
  readonly #timeToDrain: Gauge<'queue_name'>;
  readonly #processesNeeded: Gauge<'queue_name'>;
  readonly #oldestAge: Gauge<'queue_name'>;
  readonly #emptyPools: Gauge;
  /** The worker and queue gauges in the registry, then the streamed per-task families. */
  readonly families: readonly MetricFamily[];
  /** Where `prepare()` reads the cluster from (exporter/scrape-sample.ts in the service). */
  readonly #sample: () => Promise<ClusterSample>;
  #preparing: Promise<void> | undefined;

  constructor(
    registry: Registry,
    options: CeleryMetricsOptions,
    sample: () => Promise<ClusterSample> = async () => ({ workers: [], queues: [] }),
  ) {
    this.#sample = sample;
    const p = options.prefix;
    registry.setDefaultLabels(options.staticLabels);
    this.taskSeries = new TaskSeriesStore({
      prefix: p,
      runtimeBuckets: options.runtimeBuckets,
      queueWaitBuckets: options.queueWaitBuckets,
      staticLabels: options.staticLabels,
      maxSeries: options.maxTaskSeries,
      overflowValue: options.overflowValue,
    });
    this.#workerUp = new Gauge({
      name: `${p}worker_up`,
      help: 'Indicates if a worker has recently sent a heartbeat.',
      labelNames: ['hostname'],
      registers: [registry],
    });
    this.#workerActive = new Gauge({
      name: `${p}worker_tasks_active`,
      help: 'The number of tasks the worker is currently processing.',
      labelNames: ['hostname'],
      registers: [registry],
    });
    this.#queueLength = new Gauge({
      name: `${p}queue_length`,
      help: 'The number of messages in the broker queue.',
      labelNames: ['queue_name'],
      registers: [registry],
    });
    this.#consumers = new Gauge({
      name: `${p}active_consumer_count`,
      help: 'The number of active consumers in the broker queue.',
      labelNames: ['queue_name'],
      registers: [registry],
    });
    this.#workersPerQueue = new Gauge({
      name: `${p}active_worker_count`,
      help: 'The number of active workers consuming the broker queue.',
      labelNames: ['queue_name'],
      registers: [registry],
    });
    this.#processesPerQueue = new Gauge({
      name: `${p}active_process_count`,
      help: 'The number of active processes consuming the broker queue.',
      labelNames: ['queue_name'],
      registers: [registry],
    });
    // Our own signals for autoscalers (README "Metrics" has the formulas), not celery-exporter's.
    this.#timeToDrain = new Gauge({
      name: `${p}queue_time_to_drain_seconds`,
      help: 'Estimated seconds until the queue is empty: its length divided by its completion rate over the last metrics.rate_window_seconds (+Inf: a backlog and no completion).',
      labelNames: ['queue_name'],
      registers: [registry],
    });
    this.#processesNeeded = new Gauge({
      name: `${p}queue_processes_needed`,
      help: "Pool processes the queue's arrival rate needs (Little's law: arrivals per second × mean runtime, over metrics.rate_window_seconds).",
      labelNames: ['queue_name'],
      registers: [registry],
    });
    this.#oldestAge = new Gauge({
      name: `${p}queue_oldest_message_age_seconds`,
      help: 'Seconds since the oldest waiting message was sent (Redis, for messages whose task-sent was seen).',
      labelNames: ['queue_name'],
      registers: [registry],
    });
    // A worker UP with no pool process takes messages off its queues and runs none of them;
    // nothing else shows it (celery_worker_up says 1), so it is counted on its own.
    this.#emptyPools = new Gauge({
      name: `${p}workers_pool_empty`,
      help: 'Workers that are up but have 0 pool processes (their last stats listed none): they run no task.',
      registers: [registry],
    });
    this.families = [...familiesOf([...this.#gauges(), this.#emptyPools]), ...this.taskSeries.families];
  }

  /** The per-worker and per-queue gauges, set afresh from each sample. */
  #gauges(): Gauge<string>[] {
    return [
      this.#workerUp,
      this.#workerActive,
      this.#queueLength,
      this.#consumers,
      this.#workersPerQueue,
      this.#processesPerQueue,
      this.#timeToDrain,
      this.#processesNeeded,
      this.#oldestAge,
    ];
  }

  /**
   * Sets every worker and queue gauge from one sample; awaited before the registry renders. No
   * family has a collect() of its own: prom-client renders families concurrently (Promise.all
   * over each family's get()), so a family filled by another family's async collect() is read
   * before that collect finishes, and showed the previous scrape next to a fresh `worker_up`
   * (one scrape, two moments). All of them (the autoscaling signals too) are set together, synchronously, from one reading. Scrapes that arrive
   * while a sample is being taken share it: one broker read, the same figures.
   */
  prepare(): Promise<void> {
    if (this.#preparing === undefined) {
      const preparing = (async () => this.#apply(await this.#sample()))().finally(() => {
        this.#preparing = undefined;
      });
      this.#preparing = preparing;
    }
    return this.#preparing;
  }

  countTask(kind: CounterFamily, name: string, hostname: string, queue: string): void {
    this.taskSeries.count(kind, name, hostname, queue);
  }

  countFailed(name: string, hostname: string, queue: string, exception: string): void {
    this.taskSeries.countFailed(name, hostname, queue, exception);
  }

  observeRuntime(name: string, hostname: string, queue: string, seconds: number): void {
    this.taskSeries.observeRuntime(name, hostname, queue, seconds);
  }

  observeQueueWait(name: string, hostname: string, queue: string, seconds: number): void {
    this.taskSeries.observeQueueWait(name, hostname, queue, seconds);
  }

  /** Drops every series of a worker that went away (after the purge period). */
  removeHostname(hostname: string): void {
    this.taskSeries.removeHostname(hostname);
    this.#workerUp.remove({ hostname });
    this.#workerActive.remove({ hostname });
  }

  #apply(sample: ClusterSample): void {
    for (const g of this.#gauges()) g.reset();
    this.#emptyPools.set(sample.workers.filter((w) => w.up && w.processes === 0).length);
    for (const w of sample.workers) {
      this.#workerUp.set({ hostname: w.hostname }, w.up ? 1 : 0);
      this.#workerActive.set({ hostname: w.hostname }, w.up ? w.active : 0);
    }
    for (const q of sample.queues) {
      const labels = { queue_name: q.queue };
      if (q.length !== null) this.#queueLength.set(labels, q.length);
      if (q.consumers !== null) this.#consumers.set(labels, q.consumers);
      this.#workersPerQueue.set(labels, q.workers);
      this.#processesPerQueue.set(labels, q.processes);
      if (q.timeToDrain !== null) this.#timeToDrain.set(labels, q.timeToDrain);
      if (q.processesNeeded !== null) this.#processesNeeded.set(labels, q.processesNeeded);
      if (q.oldestMessageAge !== null) this.#oldestAge.set(labels, q.oldestMessageAge);
    }
  }
}
