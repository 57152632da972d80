import { Registry } from 'prom-client';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/load.js';
import type { Logger } from './log.js';
import { CeleryMetrics } from './metrics/celery-metrics.js';
import { SCRAPE_JOB, SelfMetrics } from './metrics/self-metrics.js';
import { EventProcessor } from './exporter/event-processor.js';
import { QueueCollector } from './exporter/queue-collector.js';
import { sampleCluster } from './exporter/scrape-sample.js';
import { TaskEventsWatch } from './exporter/task-events-watch.js';
import { WorkerInspector } from './exporter/worker-inspector.js';
import { createHttpApp } from './http/app.js';
import { Listener, type TlsMaterial } from './http/listener.js';
import { serviceHttpDeps } from './service-http.js';
import { ClusterSampler } from './console/cluster-sampler.js';
import { brokerStatusObserver, selfTelemetrySource, type BrokerStatus } from './service-telemetry.js';
import { AuditLog } from './audit/audit-log.js';
import { createAuth, type Auth } from './auth/index.js';
import { answeredCommand, ControlClient } from './control/client.js';
import { COMMANDS } from './control/commands.js';
import { ActionMetrics } from './metrics/remediation-metrics.js';
import type { Remediator } from './remediation/engine.js';
import { loadConfiguredRules, type RemediationRule } from './remediation/rules.js';
import { createRemediation, type Remediation } from './remediation/wiring.js';
import { loadWebhookCredentials, type WebhookCredentials } from './http/webhook-auth.js';
import { QueueFlow } from './state/queue-flow.js';
import { InFlightTasks } from './state/in-flight-tasks.js';
import {
  createResultBackend,
  createTaskPublisher,
  createTaskStore,
  type ResultBackend,
  type TaskPublisher,
  type TaskStore,
} from './tasks/index.js';
import { createTaskPersistence, createWorkerPersistence, type TaskPersistence, type WorkerPersistence } from './persistence/index.js';
import { WorkerSnapshot } from './control/worker-snapshot.js';
import { WorkerRegistry } from './state/workers.js';
import { brokerConnections, createTransport } from './transport/index.js';
import type { BrokerTransport, TransportObserver } from './transport/transport.js';

export type { BrokerStatus } from './service-telemetry.js';

export interface ServiceDeps {
  logger: Logger;
  clock?: Clock;
  /** Tests may hand in a transport; by default the broker URL chooses one. */
  transport?: (observer: TransportObserver) => BrokerTransport;
}

/**
 * Wires one running exporter: transport → event processor → state → metrics, the background
 * inspector and sweeper, and the HTTP surface. `main.ts` and the integration tests both use it.
 */
export class Service {
  readonly registry = new Registry();
  readonly status: BrokerStatus = { connected: false, subscribed: false, reconnects: 0 };
  readonly workers: WorkerRegistry;
  readonly tasks: InFlightTasks;
  /** Arrivals, completions and runtimes per queue: the autoscaling signals' rates. */
  readonly flow: QueueFlow;
  /** Recent tasks for Flower's task API and the console; undefined when tasks.enabled is false. */
  readonly taskStore: TaskStore | undefined;
  /** Publishes task messages on its own broker connection (opened on first use). */
  readonly taskPublisher: TaskPublisher;
  /** Celery's result backend when tasks.result_backend is set. */
  readonly resultBackend: ResultBackend | undefined;
  /** What Flower's /api/workers shows, refreshed in the background once someone asks. */
  readonly workerSnapshot: WorkerSnapshot;
  readonly processor: EventProcessor;
  readonly transport: BrokerTransport;
  readonly celeryMetrics: CeleryMetrics;
  readonly selfMetrics: SelfMetrics;
  readonly queues: QueueCollector;
  /** The console's last hour of the cluster, one reading per 10 s (not on the event path). */
  readonly sampler: ClusterSampler;
  readonly control: ControlClient;
  readonly audit: AuditLog;
  readonly auth: Auth;
  readonly actionMetrics: ActionMetrics;
  /** Present when remediation.enabled. */
  readonly remediator: Remediator | undefined;
  readonly #remediation: Remediation | undefined;
  readonly webhookCredentials: WebhookCredentials;
  readonly #inspector: WorkerInspector;
  readonly #taskEventsWatch: TaskEventsWatch;
  readonly #taskPersistence: TaskPersistence | undefined;
  readonly #workerPersistence: WorkerPersistence | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly logger: Logger;
  #sweeper: NodeJS.Timeout | undefined;
  readonly #listener: Listener;
  #stopped = false;
  #scrapesInFlight = 0;

  // Over 80 lines on purpose: the composition root builds every component in dependency order,
  // and readonly fields can only be assigned here; each step is one constructor call.
  constructor(
    readonly config: Config,
    deps: ServiceDeps,
  ) {
    this.#clock = deps.clock ?? systemClock;
    this.#logger = deps.logger;
    this.logger = deps.logger;
    // First: a certificate that cannot be served stops the start before anything connects.
    this.#listener = new Listener(config);
    const m = config.metrics;
    this.celeryMetrics = new CeleryMetrics(this.registry, {
      prefix: m.prefix,
      runtimeBuckets: [...m.runtime_buckets],
      queueWaitBuckets: [...m.queue_wait_buckets],
      staticLabels: m.static_labels,
      maxTaskSeries: config.cardinality.max_task_series,
      overflowValue: config.cardinality.overflow_value,
    });
    this.workers = new WorkerRegistry(this.#clock, {
      ...(m.worker_timeout_seconds !== undefined ? { workerTimeoutSeconds: m.worker_timeout_seconds } : {}),
      purgeAfterSeconds: m.purge_offline_worker_seconds,
    });
    const c = config.cardinality;
    this.tasks = new InFlightTasks(c.max_tracked_tasks);
    this.flow = new QueueFlow(() => this.#clock.nowMs(), m.rate_window_seconds, c.max_queues);
    const processing = {
      defaultQueue: m.default_queue_name,
      taskSentHostname: c.task_sent_hostname,
      maxTaskNames: c.max_task_names,
      maxHostnames: c.max_hostnames,
      maxQueues: c.max_queues,
      overflowValue: c.overflow_value,
    };
    this.processor = new EventProcessor(this.#clock, this.workers, this.tasks, this.celeryMetrics, processing, this.flow);
    this.taskStore = config.tasks.enabled ? createTaskStore(config) : undefined;
    this.#taskPersistence = this.taskStore ? createTaskPersistence(config, this.taskStore, this.#logger) : undefined;
    if (this.taskStore) this.processor.observeTasks(this.taskStore.handle.bind(this.taskStore));
    this.selfMetrics = new SelfMetrics(
      this.registry,
      m.self_prefix,
      selfTelemetrySource(
        this,
        () => this.#taskEventsWatch.silentWorkers,
        () => [
          ...[...(this.#taskPersistence?.skipped ?? [])].map(([reason, n]): [string, string, number] => ['tasks', reason, n]),
          ...[...(this.#workerPersistence?.skipped ?? [])].map(([reason, n]): [string, string, number] => ['workers', reason, n]),
        ],
      ),
    );
    this.transport = (deps.transport ?? ((o) => createTransport(config, o, this.#logger)))(
      brokerStatusObserver(this.status, this.#logger, config.broker.display, () => this.#clock.nowMs()),
    );
    this.processor.whenSubscribed(() => {
      this.status.subscribed = true;
      // Celery's EventReceiver wake-up: every worker answers with a heartbeat at once, so
      // liveness is known within a round trip of (re)subscribing, not after a heartbeat period.
      this.transport
        .broadcast({ method: 'heartbeat', arguments: {}, destination: null }, { reply: false, timeoutMs: 0 })
        .catch((e: Error) => this.#logger.debug({ err: e.message }, 'heartbeat wake-up not sent'));
    });
    const depths = {
      configuredQueues: m.queues,
      timeoutMs: m.queue_length_timeout_seconds * 1000,
      cacheMs: m.queue_length_cache_seconds * 1000,
      retentionMs: m.queue_retention_seconds * 1000,
      maxQueues: c.max_queues,
    };
    const signals = { flow: this.flow, sentSeenAt: (id: string) => this.tasks.get(id)?.sentSeenAt };
    this.queues = new QueueCollector(this.transport, this.workers, this.#clock, depths, signals);
    this.processor.whenQueueRouted((queue) => this.queues.learn(queue));
    this.sampler = new ClusterSampler(this);
    this.#taskEventsWatch = new TaskEventsWatch(this.transport, this.workers, this.#clock, this.#logger, {
      enableEvents: config.events.enable_events,
      intervalSeconds: config.events.enable_events_interval_seconds,
    });
    this.#inspector = new WorkerInspector(
      this.transport,
      this.workers,
      this.#clock,
      this.#logger,
      { intervalSeconds: m.inspect_interval_seconds, timeoutMs: 1000 },
      (outcome) => this.selfMetrics.inspectRequests.inc({ outcome }),
    );
    this.actionMetrics = new ActionMetrics(this.registry, m.self_prefix);
    this.control = new ControlClient(this.transport, { timeoutMs: config.control.reply_timeout_ms }, (command, outcome, result) => {
      this.actionMetrics.controlCommands.inc({ command, outcome });
      // HTTP or remediation alike: a pool or consumer change shows in the figures at once.
      if (result && command !== 'unknown' && COMMANDS.get(command)?.changesInspection) {
        for (const r of result.results) if (answeredCommand(r)) this.#inspector.refresh(r.worker);
      }
    });
    this.audit = new AuditLog(
      config.audit.file === '' ? undefined : config.audit.file,
      config.audit.keep,
      Date.now,
      config.audit.keep_bytes,
    );
    this.workerSnapshot = new WorkerSnapshot(this.control, this.#clock, this.#logger, {
      refreshSeconds: config.control.workers_refresh_seconds,
      forgetSeconds: Math.max(600, config.control.workers_refresh_seconds * 10),
    });
    this.#workerPersistence = createWorkerPersistence(
      config,
      this.#taskPersistence,
      { registry: this.workers, snapshot: this.workerSnapshot },
      this.#logger,
    );
    this.taskPublisher = createTaskPublisher(config, this.#logger.child({ component: 'task-publisher' }));
    this.resultBackend = createResultBackend(config, this.#logger);
    this.auth = createAuth(config.auth, { logger: this.#logger, clock: this.#clock, servedOverTls: this.servedOverTls });
    const r = config.remediation;
    const webhook = loadWebhookCredentials(config);
    this.webhookCredentials = webhook.credentials;
    for (const warning of webhook.warnings) this.#logger.warn(warning);
    if (r.enabled) {
      this.#remediation = createRemediation(r, {
        transport: this.transport,
        connections: brokerConnections(config),
        control: this.control,
        workers: this.workers,
        audit: this.audit,
        metrics: this.actionMetrics,
        logger: this.#logger,
        clock: this.#clock,
        kubernetes: config.kubernetes,
        timeToDrain: async (queue) => (await this.queues.collect()).find((q) => q.queue === queue)?.timeToDrain ?? undefined,
      });
      this.remediator = this.#remediation.remediator;
    }
    this.celeryMetrics.onSample(() => sampleCluster(this.workers, this.queues, this.#clock.nowMs()));
  }

  get clock(): Clock {
    return this.#clock;
  }

  /** The service terminates TLS itself (the `tls` keys). */
  get servedOverTls(): boolean {
    return this.#listener.servedOverTls;
  }

  /** SIGHUP: the TLS certificate files read again and served to new connections; throws (the old ones stay) when they do not work. */
  reloadTls(): TlsMaterial | undefined {
    const m = this.#listener.reloadTls();
    if (m) this.#logger.info({ subject: m.subject, validTo: m.validTo }, 'TLS certificate reloaded');
    for (const warning of m?.warnings ?? []) this.#logger.warn(warning);
    return m;
  }

  /** Reads and validates the remediation rules file (throws RulesError; nothing is swapped). */
  loadRules(): RemediationRule[] {
    return loadConfiguredRules(this.config.remediation);
  }

  /** SIGHUP / POST reload: validate the whole file, then swap atomically. */
  reloadRules(): number {
    let rules: RemediationRule[];
    try {
      rules = this.loadRules();
    } catch (e) {
      this.selfMetrics.rulesReloads.inc({ outcome: 'failure' });
      this.selfMetrics.rulesLastReloadSuccessful.set(0);
      throw e;
    }
    this.selfMetrics.rulesReloads.inc({ outcome: 'success' });
    this.selfMetrics.rulesLastReloadSuccessful.set(1);
    this.remediator?.replaceRules(rules);
    this.#logger.info({ rules: rules.length }, 'remediation rules reloaded');
    return rules.length;
  }

  /**
   * /metrics as a sequence of chunks: the prom-client registry (small), then the per-task
   * families streamed from their store. Times itself for the next scrape_duration_seconds.
   */
  async *metricsChunks(): AsyncGenerator<string> {
    this.#scrapesInFlight++;
    try {
      const started = performance.now();
      await this.celeryMetrics.prepare();
      this.selfMetrics.collect();
      yield await this.registry.metrics();
      yield* this.celeryMetrics.tasks.render();
      this.selfMetrics.scrapeDuration.set((performance.now() - started) / 1000);
    } finally {
      this.#scrapesInFlight--;
    }
  }

  /** Scrapes whose stream has not finished or been closed: stays 0 between scrapes, however they ended. */
  get scrapesInFlight(): number {
    return this.#scrapesInFlight;
  }

  /** Re-inspections after pool or consumer changes still to come (tests wait for none). */
  get pendingInspections(): number {
    return this.#inspector.pendingRefreshes;
  }

  isReady(): boolean {
    return this.status.connected && this.status.subscribed;
  }

  /** Starts consuming, the background inspector and the purge sweeper. Never throws on broker trouble. */
  start(): void {
    // Said once at start: a scrape job of another name silences every shipped alert (and remediation).
    this.#logger.info(
      { alert_rules_selector: `{job="${SCRAPE_JOB}"}` },
      `the shipped alert rules select job="${SCRAPE_JOB}": scrape this service under that job name, or change the rules' matchers`,
    );
    this.#taskPersistence?.start();
    this.#workerPersistence?.start();
    this.transport.start(this.processor);
    this.#inspector.start();
    this.#taskEventsWatch.start();
    this.sampler.start();
    this.#sweeper = setInterval(() => {
      for (const hostname of this.processor.sweep()) this.#logger.info({ hostname }, 'purged series of departed worker');
    }, 1000);
    this.#sweeper.unref();
  }

  /** Starts the HTTP(S) server on the configured address or unix socket; resolves with the bound port (0 on a socket). */
  async listen(port = this.config.port, host = this.config.listen_address): Promise<number> {
    for (const warning of this.#listener.tls?.warnings ?? []) this.#logger.warn(warning);
    return this.#listener.listen(createHttpApp(serviceHttpDeps(this)), port, host);
  }

  /** Graceful stop: no new connections, in-flight requests finish, broker resources released. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#inspector.stop();
    this.#taskEventsWatch.stop();
    this.workerSnapshot.stop();
    this.sampler.stop();
    if (this.#sweeper) clearInterval(this.#sweeper);
    await this.#listener.close();
    await this.auth.stop();
    await this.remediator?.idle();
    await this.transport.close();
    await this.taskPublisher.close();
    this.#workerPersistence?.close();
    this.#taskPersistence?.close();
    this.resultBackend?.close();
    this.#remediation?.close();
    await this.audit.close();
  }
}
