import type { Registry } from 'prom-client';
import type { Auth } from '../auth/index.js';
import type { TaskEvent } from '../celery/events.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/load.js';
import { EventProcessor } from '../exporter/event-processor.js';
import { QueueCollector } from '../exporter/queue-collector.js';
import { sampleCluster } from '../exporter/scrape-sample.js';
import { TaskEventsWatch } from '../exporter/task-events-watch.js';
import { wakeUpWorkers, WorkerInspector } from '../exporter/worker-inspector.js';
import { exporterRoutes } from '../http/exporter-routes.js';
import type { Logger } from '../log.js';
import { CeleryMetrics } from '../metrics/celery-metrics.js';
import { SelfMetrics, type SelfTelemetrySource } from '../metrics/self-metrics.js';
import { InFlightTasks } from '../state/in-flight-tasks.js';
import { QueueFlow } from '../state/queue-flow.js';
import { WorkerRegistry } from '../state/workers.js';
import { brokerStatusObserver, type BrokerStatus } from '../transport/broker-status.js';
import { createTransport } from '../transport/index.js';
import type { BrokerTransport, TransportObserver } from '../transport/transport.js';
import type { FeatureModule } from './module.js';

export interface ExporterModuleParts {
  registry: Registry;
  /** Who may read /metrics (`auth.protect_metrics`), who sees the broker's error on /-/ready. */
  auth: Auth;
  clock: Clock;
  logger: Logger;
  /** Tests may hand in a transport; by default the broker URL chooses one. */
  transport?: (observer: TransportObserver) => BrokerTransport;
  /** Every decoded task event (the task store's history), before the metrics' dedupe. */
  observeTasks?: (event: TaskEvent) => void;
}

export interface ExporterModule extends FeatureModule {
  readonly status: BrokerStatus;
  readonly transport: BrokerTransport;
  readonly workers: WorkerRegistry;
  readonly inFlight: InFlightTasks;
  /** Arrivals, completions and runtimes per queue: the autoscaling signals' rates. */
  readonly flow: QueueFlow;
  readonly processor: EventProcessor;
  readonly celeryMetrics: CeleryMetrics;
  readonly queues: QueueCollector;
  /** Re-reads a worker's figures after a pool or consumer change (the control module's hook). */
  inspectionChanged(worker: string): void;
  readonly pendingInspections: number;
  readonly scrapesInFlight: number;
  /** /metrics as a sequence of chunks: the prom-client registry, then the per-task families. */
  metricsChunks(): AsyncGenerator<string>;
  isReady(): boolean;
  /** Consumes events; starts the inspector, the task-events watch and the purge sweeper. */
  start(): void;
  /** Stops the timers (inspector, task-events watch, sweeper); the transport stays open. */
  stop(): void;
  /** Closes the broker connections: last, once every feature that sends through them has stopped. */
  close(): Promise<void>;
}

type Pipeline = Pick<ExporterModule, 'status' | 'transport' | 'workers' | 'inFlight' | 'flow' | 'processor' | 'celeryMetrics' | 'queues'>;

/** The event path in dependency order: state, metrics (sampled at scrape time), transport, queue depths, processor. */
function pipeline(config: Config, parts: ExporterModuleParts): Pipeline {
  const { registry, clock, logger } = parts;
  const m = config.metrics;
  const c = config.cardinality;
  const status: BrokerStatus = { connected: false, subscribed: false, reconnects: 0 };
  const workers = new WorkerRegistry(clock, {
    ...(m.worker_timeout_seconds !== undefined ? { workerTimeoutSeconds: m.worker_timeout_seconds } : {}),
    purgeAfterSeconds: m.purge_offline_worker_seconds,
  });
  const inFlight = new InFlightTasks(c.max_tracked_tasks);
  const flow = new QueueFlow(() => clock.nowMs(), m.rate_window_seconds, c.max_queues);
  const celeryMetrics = new CeleryMetrics(
    registry,
    {
      prefix: m.prefix,
      runtimeBuckets: [...m.runtime_buckets],
      queueWaitBuckets: [...m.queue_wait_buckets],
      staticLabels: m.static_labels,
      maxTaskSeries: c.max_task_series,
      overflowValue: c.overflow_value,
    },
    () => sampleCluster(workers, queues, clock.nowMs()),
  );
  const transport = (parts.transport ?? ((o) => createTransport(config, o, logger)))(
    brokerStatusObserver(status, logger, config.broker.display, () => clock.nowMs()),
  );
  const depths = {
    configuredQueues: m.queues,
    timeoutMs: m.queue_length_timeout_seconds * 1000,
    cacheMs: m.queue_length_cache_seconds * 1000,
    retentionMs: m.queue_retention_seconds * 1000,
    maxQueues: c.max_queues,
  };
  const signals = { flow, sentSeenAt: (id: string) => inFlight.get(id)?.sentSeenAt };
  const queues = new QueueCollector(transport, workers, clock, depths, signals);
  const processing = {
    defaultQueue: m.default_queue_name,
    taskSentHostname: c.task_sent_hostname,
    maxTaskNames: c.max_task_names,
    maxHostnames: c.max_hostnames,
    maxQueues: c.max_queues,
    overflowValue: c.overflow_value,
  };
  const processor = new EventProcessor(clock, workers, inFlight, celeryMetrics, processing, flow, {
    whenSubscribed: () => {
      status.subscribed = true;
      wakeUpWorkers(transport, logger);
    },
    whenQueueRouted: (queue) => queues.learn(queue),
    ...(parts.observeTasks ? { observeTasks: parts.observeTasks } : {}),
  });
  return { status, transport, workers, inFlight, flow, processor, celeryMetrics, queues };
}

/**
 * The exporter pipeline: transport → event processor → state → metrics, with the worker
 * inspector, the task-events watch and the purge sweeper. Its routes are /metrics and /-/ready
 * (http/exporter-routes.ts); its telemetry is CeleryMetrics (the per-task families streamed after
 * the registry) and SelfMetrics (the process's too), read from the pipeline at scrape time.
 */
export function createExporterModule(config: Config, parts: ExporterModuleParts): ExporterModule {
  const { registry, clock, logger } = parts;
  const p = pipeline(config, parts);
  const { status, transport, workers, processor, celeryMetrics } = p;
  const isReady = (): boolean => status.connected && status.subscribed;
  const taskEventsWatch = new TaskEventsWatch(transport, workers, clock, logger, {
    enableEvents: config.events.enable_events,
    intervalSeconds: config.events.enable_events_interval_seconds,
  });
  const selfMetrics = new SelfMetrics(
    registry,
    config.metrics.self_prefix,
    selfTelemetrySource(p, isReady, () => taskEventsWatch.silentWorkers),
  );
  const inspector = new WorkerInspector(
    transport,
    workers,
    clock,
    logger,
    { intervalSeconds: config.metrics.inspect_interval_seconds, timeoutMs: 1000 },
    (outcome) => selfMetrics.inspectRequests.inc({ outcome }),
  );
  let sweeper: NodeJS.Timeout | undefined;
  let scrapesInFlight = 0;
  async function* metricsChunks(): AsyncGenerator<string> {
    scrapesInFlight++;
    try {
      const started = performance.now();
      await celeryMetrics.prepare();
      selfMetrics.collect();
      yield await registry.metrics();
      yield* celeryMetrics.taskSeries.render();
      selfMetrics.scrapeDuration.set((performance.now() - started) / 1000);
    } finally {
      scrapesInFlight--;
    }
  }
  const routes = exporterRoutes({
    auth: parts.auth,
    metrics: { contentType: registry.contentType, chunks: metricsChunks },
    readiness: () => ({ ready: isReady(), broker: { ...status } }),
  });

  return {
    name: 'exporter',
    telemetry: [...celeryMetrics.families, ...selfMetrics.families],
    routers: { routes: [routes] },
    ...p,
    inspectionChanged: (worker) => inspector.refresh(worker),
    get pendingInspections() {
      return inspector.pendingRefreshes;
    },
    // Stays 0 between scrapes, however a scrape's stream ended.
    get scrapesInFlight() {
      return scrapesInFlight;
    },
    metricsChunks,
    isReady,
    start: () => {
      transport.start(processor);
      inspector.start();
      taskEventsWatch.start();
      sweeper = setInterval(() => {
        for (const hostname of processor.sweep()) logger.info({ hostname }, 'purged series of departed worker');
      }, 1000);
      sweeper.unref();
    },
    stop: () => {
      inspector.stop();
      taskEventsWatch.stop();
      if (sweeper) clearInterval(sweeper);
    },
    close: () => transport.close(),
  };
}

/** What the exporter's self-telemetry reads at scrape time, each answer from the part that owns it. */
function selfTelemetrySource(p: Pipeline, isReady: () => boolean, workersWithoutTaskEvents: () => number): SelfTelemetrySource {
  return {
    ingest: () => p.processor.counts,
    broker: () => ({
      ready: isReady(),
      reconnects: p.status.reconnects,
      ...(p.status.leanDelivery !== undefined ? { leanDelivery: p.status.leanDelivery } : {}),
    }),
    tracked: () => ({ tasks: p.inFlight.size, workers: p.workers.size, taskEvictions: p.inFlight.evictions }),
    queueLengthErrors: () => p.queues.errors,
    labelOverflow: () => [
      ...[p.processor.names, p.processor.hostnames, p.processor.queues, p.processor.exceptions].map((l): [string, number] => [
        l.label,
        l.overflowed,
      ]),
      ['series', p.celeryMetrics.taskSeries.overflowed],
    ],
    workerClockSkew: () =>
      p.workers
        .alive()
        .filter((w) => w.clockSkewSeconds !== undefined)
        .map((w): [string, number] => [w.hostname, w.clockSkewSeconds!]),
    workersWithoutTaskEvents,
  };
}
