import { Registry } from 'prom-client';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/load.js';
import type { Logger } from './log.js';
import type { CeleryMetrics } from './metrics/celery-metrics.js';
import { SCRAPE_JOB } from './metrics/self-metrics.js';
import type { EventProcessor } from './exporter/event-processor.js';
import type { QueueCollector } from './exporter/queue-collector.js';
import { createHttpApp } from './http/app.js';
import { Listener, type TlsMaterial } from './http/listener.js';
import type { BrokerStatus } from './transport/broker-status.js';
import { AuditLog } from './audit/audit-log.js';
import type { Auth } from './auth/index.js';
import type { ControlClient } from './control/client.js';
import { registerPersistenceMetrics } from './metrics/persistence-metrics.js';
import type { Remediator } from './remediation/engine.js';
import { heavyReadLimit, TASK_LISTS_PER_CALLER } from './http/heavy-reads.js';
import { PayloadRule } from './tasks/payload.js';
import type { FeatureModule, TelemetryOwner } from './modules/module.js';
import { createAuthModule } from './modules/auth.js';
import { createExporterModule, type ExporterModule } from './modules/exporter.js';
import { createConsoleModule } from './modules/console.js';
import { createControlModule } from './modules/control.js';
import { createRemediationModule, type RemediationModule } from './modules/remediation.js';
import { createTasksModule } from './modules/tasks.js';
import type { InFlightTasks } from './state/in-flight-tasks.js';
import { createTaskStore, type TaskStore } from './tasks/index.js';
import {
  createTaskPersistence,
  createWorkerPersistence,
  persistedRowsSkipped,
  type TaskPersistence,
  type WorkerPersistence,
} from './persistence/index.js';
import type { WorkerRegistry } from './state/workers.js';
import type { ClusterSampler } from './console/cluster-sampler.js';
import type { BrokerTransport, TransportObserver } from './transport/transport.js';

export interface ServiceDeps {
  logger: Logger;
  clock?: Clock;
  /** Tests may hand in a transport; by default the broker URL chooses one. */
  transport?: (observer: TransportObserver) => BrokerTransport;
}

/**
 * Wires one service from its modules (src/modules/): auth, the exporter (transport → events →
 * state → metrics, inspector, sweeper; /metrics and /-/ready), then the features, whose routers
 * the HTTP surface mounts. It builds only what several modules share (modules/module.ts lists
 * those parts). main.ts and tests use it.
 */
export class Service {
  readonly #registry = new Registry();
  readonly status: BrokerStatus;
  readonly workers: WorkerRegistry;
  readonly inFlight: InFlightTasks;
  /** Recent tasks for Flower's task API and the console; undefined when tasks.enabled is false. */
  readonly taskStore: TaskStore | undefined;
  readonly processor: EventProcessor;
  readonly transport: BrokerTransport;
  readonly celeryMetrics: CeleryMetrics;
  readonly queues: QueueCollector;
  /** The console's last hour of the cluster, one reading per 10 s (not on the event path). */
  readonly sampler: ClusterSampler;
  readonly control: ControlClient;
  readonly audit: AuditLog;
  readonly auth: Auth;
  /** Present when remediation.enabled. */
  readonly remediator: Remediator | undefined;
  /** The exporter pipeline (transport → events → state → metrics): started first, closed last. */
  readonly #exporter: ExporterModule;
  /** The features, in the order their routes are mounted (http/app.ts); auth has none, its slot is fixed there. */
  readonly #features: readonly FeatureModule[];
  /** Who registered each metric family: the exporter, each feature, then the persistence (built here). */
  readonly telemetry: readonly TelemetryOwner[];
  /** Owns the rules file's reloads, whether or not remediation is enabled. */
  readonly #remediation: RemediationModule;
  readonly #taskPersistence: TaskPersistence | undefined;
  readonly #workerPersistence: WorkerPersistence | undefined;
  readonly #clock: Clock;
  readonly logger: Logger;
  readonly #listener: Listener;
  #stopped = false;

  // Over 80 lines on purpose: the composition root builds every module in dependency order, one
  // constructor call each, and readonly fields can only be assigned here.
  constructor(
    readonly config: Config,
    deps: ServiceDeps,
  ) {
    this.#clock = deps.clock ?? systemClock;
    this.logger = deps.logger;
    // First: a certificate that cannot be served stops the start before anything connects.
    this.#listener = new Listener(config);
    this.taskStore = config.tasks.enabled ? createTaskStore(config) : undefined;
    this.#taskPersistence = this.taskStore ? createTaskPersistence(config, this.taskStore, this.logger) : undefined;
    const store = this.taskStore;
    // Auth before the exporter: /metrics and /-/ready ask it who is calling.
    const auth = createAuthModule(config, { logger: this.logger, clock: this.#clock, servedOverTls: this.servedOverTls });
    this.auth = auth.auth;
    const exporter = createExporterModule(config, {
      registry: this.#registry,
      auth: this.auth,
      clock: this.#clock,
      logger: this.logger,
      ...(deps.transport ? { transport: deps.transport } : {}),
      ...(store ? { observeTasks: store.handle.bind(store) } : {}),
    });
    this.#exporter = exporter;
    ({ status: this.status, workers: this.workers, inFlight: this.inFlight, processor: this.processor } = exporter);
    ({ transport: this.transport, celeryMetrics: this.celeryMetrics, queues: this.queues } = exporter);
    this.audit = AuditLog.fromConfig(config.audit);
    // Shared by the features: the registry their telemetry goes in; for those that return tasks,
    // one payload rule and one bound on task lists.
    const shared = {
      registry: this.#registry,
      auth: this.auth,
      audit: this.audit,
      workers: this.workers,
      payload: new PayloadRule(config.tasks.payload_role),
      heavyRead: heavyReadLimit(TASK_LISTS_PER_CALLER),
      clock: this.#clock,
      logger: this.logger,
    };
    const control = createControlModule(config, {
      ...shared,
      transport: this.transport,
      queues: this.queues,
      inspectionChanged: (worker) => exporter.inspectionChanged(worker),
    });
    this.control = control.control;
    this.#workerPersistence = createWorkerPersistence(
      config,
      this.#taskPersistence,
      { workers: this.workers, snapshot: control.snapshot },
      this.logger,
    );
    const persistence: TelemetryOwner = {
      name: 'persistence',
      telemetry: registerPersistenceMetrics(this.#registry, config.metrics.self_prefix, () =>
        persistedRowsSkipped(this.#taskPersistence, this.#workerPersistence),
      ),
    };
    const tasks = createTasksModule(config, {
      ...shared,
      store: this.taskStore,
      snapshot: control.snapshot,
      controlRoutes: control.routes,
    });
    const remediation = createRemediationModule(config, {
      ...shared,
      transport: this.transport,
      control: this.control,
      queues: this.queues,
    });
    this.#remediation = remediation;
    this.remediator = remediation.remediator;
    const operatorConsole = createConsoleModule(config, {
      ...shared,
      control: this.control,
      queues: this.queues,
      remediator: this.remediator,
      store: this.taskStore,
      abortable: tasks.abortable,
      rerun: tasks.rerun,
      status: this.status,
      inFlight: this.inFlight,
      celeryMetrics: this.celeryMetrics,
      ingest: this.processor.counts,
    });
    this.sampler = operatorConsole.sampler;
    this.#features = [auth, operatorConsole, tasks, control, remediation];
    this.telemetry = [exporter, ...this.#features, persistence];
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
    if (m) this.logger.info({ subject: m.subject, validTo: m.validTo }, 'TLS certificate reloaded');
    for (const warning of m?.warnings ?? []) this.logger.warn(warning);
    return m;
  }

  /** SIGHUP / POST reload: read and validate the whole file (throws RulesError; nothing swapped), then swap atomically. */
  reloadRules(): number {
    return this.#remediation.reloadRules();
  }

  /**
   * /metrics as a sequence of chunks: the prom-client registry (small), then the per-task
   * families streamed from their store. Times itself for the next scrape_duration_seconds.
   */
  metricsChunks(): AsyncGenerator<string> {
    return this.#exporter.metricsChunks();
  }

  /** Scrapes whose stream has not finished or been closed: stays 0 between scrapes, however they ended. */
  get scrapesInFlight(): number {
    return this.#exporter.scrapesInFlight;
  }

  /** Re-inspections after pool or consumer changes still to come (tests wait for none). */
  get pendingInspections(): number {
    return this.#exporter.pendingInspections;
  }

  /** Starts consuming, the background inspector and the purge sweeper. Never throws on broker trouble. */
  start(): void {
    // Said once at start: a scrape job of another name silences every shipped alert (and remediation).
    this.logger.info(
      { alert_rules_selector: `{job="${SCRAPE_JOB}"}` },
      `the shipped alert rules select job="${SCRAPE_JOB}": scrape this service under that job name, or change the rules' matchers`,
    );
    this.#taskPersistence?.start();
    this.#workerPersistence?.start();
    this.#exporter.start();
    for (const feature of this.#features) feature.start?.();
  }

  /** Starts the HTTP(S) server on the configured address or unix socket; resolves with the bound port (0 on a socket). */
  async listen(port = this.config.port, host = this.config.listen_address): Promise<number> {
    for (const warning of this.#listener.tls?.warnings ?? []) this.logger.warn(warning);
    const app = createHttpApp({
      logger: this.logger,
      trustProxy: this.config.trust_proxy,
      auth: this.auth,
      publicUrl: this.config.auth.public_url,
      servedOverTls: this.servedOverTls,
      urlPrefix: this.config.url_prefix,
      // The exporter's routes first: /metrics and /-/ready keep their place right after the landing page.
      features: [this.#exporter, ...this.#features].map((f) => f.routers),
    });
    return this.#listener.listen(app, port, host);
  }

  /** Graceful stop: no new connections, in-flight requests finish, broker resources released. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#exporter.stop();
    await this.#listener.close();
    await this.remediator?.idle();
    // Then each feature's timers and connections (OpenID retries, snapshot refresh, publisher, result backend, shared state).
    for (const feature of this.#features) await feature.stop?.();
    await this.#exporter.close();
    this.#workerPersistence?.close();
    this.#taskPersistence?.close();
    await this.audit.close();
  }
}
