import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * The Celery metrics, with celery-exporter's exact names, types and label names (product
 * contract 1), so its dashboards and the celery-mixin alerts work unchanged. Values that are
 * state, not counts (worker up, queue lengths...), are computed at scrape time by the collectors
 * registered through `onCollect*`.
 */

export const TASK_COUNTERS = ['sent', 'received', 'started', 'succeeded', 'rejected', 'revoked', 'retried'] as const;
export type TaskCounter = (typeof TASK_COUNTERS)[number] | 'failed';

type TaskLabels = { name: string; hostname: string; queue_name: string };
type FailedLabels = TaskLabels & { exception: string };

export interface CeleryMetricsOptions {
  prefix: string;
  runtimeBuckets: number[];
  queueWaitBuckets: number[];
}

export interface WorkerSample {
  hostname: string;
  up: boolean;
  active: number;
}

export interface QueueSample {
  queue: string;
  length: number | null;
  consumers: number | null;
  workers: number;
  processes: number;
}

export class CeleryMetrics {
  readonly #counters: Record<Exclude<TaskCounter, 'failed'>, Counter<keyof TaskLabels>>;
  readonly #failed: Counter<keyof FailedLabels>;
  readonly #runtime: Histogram<keyof TaskLabels>;
  readonly #queueWait: Histogram<keyof TaskLabels>;
  readonly #workerUp: Gauge<'hostname'>;
  readonly #workerActive: Gauge<'hostname'>;
  readonly #queueLength: Gauge<'queue_name'>;
  readonly #consumers: Gauge<'queue_name'>;
  readonly #workersPerQueue: Gauge<'queue_name'>;
  readonly #processesPerQueue: Gauge<'queue_name'>;
  /** One frozen labels object per label combination: no allocation per event, and an index for purging. */
  readonly #taskLabels = new Map<string, TaskLabels>();
  readonly #failedLabels = new Map<string, FailedLabels>();
  #workers: () => WorkerSample[] = () => [];
  #queues: () => Promise<QueueSample[]> = async () => [];

  constructor(registry: Registry, options: CeleryMetricsOptions) {
    const p = options.prefix;
    const taskLabelNames = ['name', 'hostname', 'queue_name'] as const;
    const counter = (what: string, help: string) =>
      new Counter({ name: `${p}task_${what}_total`, help, labelNames: taskLabelNames, registers: [registry] });
    this.#counters = {
      sent: counter('sent', 'Sent when a task message is published.'),
      received: counter('received', 'Sent when the worker receives a task.'),
      started: counter('started', 'Sent just before the worker executes the task.'),
      succeeded: counter('succeeded', 'Sent if the task executed successfully.'),
      rejected: counter('rejected', 'The task was rejected by the worker, possibly to be re-queued or moved to a dead letter queue.'),
      revoked: counter('revoked', 'Sent if the task has been revoked.'),
      retried: counter('retried', 'Sent if the task failed, but will be retried in the future.'),
    };
    this.#failed = new Counter({
      name: `${p}task_failed_total`,
      help: 'Sent if the execution of the task failed.',
      labelNames: ['name', 'hostname', 'exception', 'queue_name'],
      registers: [registry],
    });
    this.#runtime = new Histogram({
      name: `${p}task_runtime`,
      help: 'Histogram of task runtime measurements.',
      labelNames: taskLabelNames,
      buckets: options.runtimeBuckets,
      registers: [registry],
    });
    this.#queueWait = new Histogram({
      name: `${p}task_queue_wait_time`,
      help: 'Histogram of task queue wait time measurements (task-started minus max(task-sent, eta)).',
      labelNames: taskLabelNames,
      buckets: options.queueWaitBuckets,
      registers: [registry],
    });
    // prom-client calls collect() with the metric as `this`; the closure needs ours.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    this.#workerUp = new Gauge({
      name: `${p}worker_up`,
      help: 'Indicates if a worker has recently sent a heartbeat.',
      labelNames: ['hostname'],
      registers: [registry],
      collect() {
        self.#collectWorkers();
      },
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
      async collect() {
        await self.#collectQueues();
      },
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
  }

  onCollectWorkers(fn: () => WorkerSample[]): void {
    this.#workers = fn;
  }

  onCollectQueues(fn: () => Promise<QueueSample[]>): void {
    this.#queues = fn;
  }

  #labels(name: string, hostname: string, queue: string): TaskLabels {
    const key = `${name}\u0000${hostname}\u0000${queue}`;
    let labels = this.#taskLabels.get(key);
    if (labels === undefined) {
      labels = Object.freeze({ name, hostname, queue_name: queue });
      this.#taskLabels.set(key, labels);
    }
    return labels;
  }

  countTask(kind: Exclude<TaskCounter, 'failed'>, name: string, hostname: string, queue: string): void {
    this.#counters[kind].inc(this.#labels(name, hostname, queue));
  }

  countFailed(name: string, hostname: string, queue: string, exception: string): void {
    const key = `${name}\u0000${hostname}\u0000${queue}\u0000${exception}`;
    let labels = this.#failedLabels.get(key);
    if (labels === undefined) {
      labels = Object.freeze({ name, hostname, queue_name: queue, exception });
      this.#failedLabels.set(key, labels);
    }
    this.#failed.inc(labels);
  }

  observeRuntime(name: string, hostname: string, queue: string, seconds: number): void {
    this.#runtime.observe(this.#labels(name, hostname, queue), seconds);
  }

  observeQueueWait(name: string, hostname: string, queue: string, seconds: number): void {
    this.#queueWait.observe(this.#labels(name, hostname, queue), seconds);
  }

  /** Drops every series of a worker that went away (after the purge period). */
  removeHostname(hostname: string): void {
    for (const [key, labels] of this.#taskLabels) {
      if (labels.hostname !== hostname) continue;
      for (const c of Object.values(this.#counters)) c.remove(labels);
      this.#runtime.remove(labels);
      this.#queueWait.remove(labels);
      this.#taskLabels.delete(key);
    }
    for (const [key, labels] of this.#failedLabels) {
      if (labels.hostname !== hostname) continue;
      this.#failed.remove(labels);
      this.#failedLabels.delete(key);
    }
    this.#workerUp.remove({ hostname });
    this.#workerActive.remove({ hostname });
  }

  /** Label combinations in use (one per task series family), for self-telemetry. */
  get taskSeries(): number {
    return this.#taskLabels.size + this.#failedLabels.size;
  }

  #collectWorkers(): void {
    this.#workerUp.reset();
    this.#workerActive.reset();
    for (const w of this.#workers()) {
      this.#workerUp.set({ hostname: w.hostname }, w.up ? 1 : 0);
      this.#workerActive.set({ hostname: w.hostname }, w.up ? w.active : 0);
    }
  }

  async #collectQueues(): Promise<void> {
    const samples = await this.#queues();
    for (const g of [this.#queueLength, this.#consumers, this.#workersPerQueue, this.#processesPerQueue]) g.reset();
    for (const q of samples) {
      const labels = { queue_name: q.queue };
      if (q.length !== null) this.#queueLength.set(labels, q.length);
      if (q.consumers !== null) this.#consumers.set(labels, q.consumers);
      this.#workersPerQueue.set(labels, q.workers);
      this.#processesPerQueue.set(labels, q.processes);
    }
  }
}
