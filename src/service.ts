import { Registry } from 'prom-client';
import type { Server } from 'node:http';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/load.js';
import type { Logger } from './log.js';
import { CeleryMetrics } from './metrics/celery-metrics.js';
import { SelfMetrics } from './metrics/self-metrics.js';
import { EventProcessor } from './exporter/event-processor.js';
import { QueueCollector } from './exporter/queue-collector.js';
import { WorkerInspector } from './exporter/worker-inspector.js';
import { createHttpApp } from './http/app.js';
import { AuditLog } from './audit/audit-log.js';
import { createAuth, type Auth } from './auth/index.js';
import { ControlClient } from './control/client.js';
import { COMMANDS } from './control/commands.js';
import { ActionMetrics } from './metrics/remediation-metrics.js';
import type { Remediator } from './remediation/engine.js';
import { loadConfiguredRules, type RemediationRule } from './remediation/rules.js';
import { createRemediation, type Remediation } from './remediation/wiring.js';
import { readFileSync } from 'node:fs';
import { Secret } from './config/secret.js';
import type { WebhookCredentials } from './http/remediation-api.js';
import { TaskTracker } from './state/tasks.js';
import { WorkerRegistry } from './state/workers.js';
import { createTransport } from './transport/index.js';
import type { BrokerTransport, TransportObserver } from './transport/transport.js';

export interface ServiceDeps {
  logger: Logger;
  clock?: Clock;
  /** Tests may hand in a transport; by default the broker URL chooses one. */
  transport?: (observer: TransportObserver) => BrokerTransport;
}

/** Connection state as readiness and self-telemetry see it. */
export interface BrokerStatus {
  connected: boolean;
  subscribed: boolean;
  reconnects: number;
  lastError?: string;
}

/**
 * Wires one running exporter: transport → event processor → state → metrics, the background
 * inspector and sweeper, and the HTTP surface. `main.ts` and the integration tests both use it.
 */
export class Service {
  readonly registry = new Registry();
  readonly status: BrokerStatus = { connected: false, subscribed: false, reconnects: 0 };
  readonly workers: WorkerRegistry;
  readonly tasks: TaskTracker;
  readonly processor: EventProcessor;
  readonly transport: BrokerTransport;
  readonly celeryMetrics: CeleryMetrics;
  readonly selfMetrics: SelfMetrics;
  readonly queues: QueueCollector;
  readonly control: ControlClient;
  readonly audit: AuditLog;
  readonly auth: Auth;
  readonly actionMetrics: ActionMetrics;
  /** Present when remediation.enabled. */
  readonly remediator: Remediator | undefined;
  readonly #remediation: Remediation | undefined;
  readonly webhookCredentials: WebhookCredentials;
  readonly #inspector: WorkerInspector;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly logger: Logger;
  #sweeper: NodeJS.Timeout | undefined;
  #server: Server | undefined;
  #stopped = false;

  constructor(
    readonly config: Config,
    deps: ServiceDeps,
  ) {
    this.#clock = deps.clock ?? systemClock;
    this.#logger = deps.logger;
    this.logger = deps.logger;
    const m = config.metrics;
    this.registry.setDefaultLabels(m.static_labels);
    this.celeryMetrics = new CeleryMetrics(this.registry, {
      prefix: m.prefix,
      runtimeBuckets: [...m.runtime_buckets],
      queueWaitBuckets: [...m.queue_wait_buckets],
      staticLabels: m.static_labels,
      maxTaskSeries: config.cardinality.max_task_series,
      overflowValue: config.cardinality.overflow_value,
    });
    this.selfMetrics = new SelfMetrics(this.registry, m.self_prefix);
    this.workers = new WorkerRegistry(this.#clock, {
      ...(m.worker_timeout_seconds !== undefined ? { workerTimeoutSeconds: m.worker_timeout_seconds } : {}),
      purgeAfterSeconds: m.purge_offline_worker_seconds,
    });
    const c = config.cardinality;
    this.tasks = new TaskTracker(c.max_tracked_tasks);
    this.processor = new EventProcessor(this.#clock, this.workers, this.tasks, this.celeryMetrics, {
      defaultQueue: m.default_queue_name,
      taskSentHostname: c.task_sent_hostname,
      maxTaskNames: c.max_task_names,
      maxHostnames: c.max_hostnames,
      maxQueues: c.max_queues,
      overflowValue: c.overflow_value,
    });
    const observer: TransportObserver = {
      connected: () => {
        this.status.connected = true;
        this.status.lastError = undefined;
        this.#logger.info({ broker: config.broker.display }, 'broker connected');
      },
      disconnected: (error) => {
        if (this.status.connected) this.#logger.warn({ err: error.message }, 'broker connection lost');
        this.status.connected = false;
        this.status.subscribed = false;
        this.status.lastError = error.message;
      },
      reconnecting: (attempt, delayMs) => {
        this.status.reconnects++;
        this.#logger.info({ attempt, delayMs }, 'reconnecting to broker');
      },
    };
    this.transport = (deps.transport ?? ((o) => createTransport(config, o, this.#logger)))(observer);
    this.processor.whenSubscribed(() => {
      this.status.subscribed = true;
      // Celery's EventReceiver wake-up: every worker answers with a heartbeat at once, so
      // liveness is known within a round trip of (re)subscribing, not after a heartbeat period.
      this.transport
        .broadcast({ method: 'heartbeat', arguments: {}, destination: null }, { reply: false, timeoutMs: 0 })
        .catch((e: Error) => this.#logger.debug({ err: e.message }, 'heartbeat wake-up not sent'));
    });
    this.queues = new QueueCollector(this.transport, this.workers, this.#clock, {
      configuredQueues: m.queues,
      timeoutMs: m.queue_length_timeout_seconds * 1000,
      cacheMs: m.queue_length_cache_seconds * 1000,
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
        for (const r of result.results) if (r.status === 'ok') this.#inspector.refresh(r.worker);
      }
    });
    this.audit = new AuditLog(config.audit.file === '' ? undefined : config.audit.file, config.audit.keep, Date.now, config.audit.keep_bytes);
    this.auth = createAuth(config.auth, { logger: this.#logger, clock: this.#clock });
    const r = config.remediation;
    this.webhookCredentials = webhookCredentials(config);
    if (r.enabled) {
      this.#remediation = createRemediation(r, {
        transport: this.transport,
        control: this.control,
        workers: this.workers,
        audit: this.audit,
        metrics: this.actionMetrics,
        logger: this.#logger,
        clock: this.#clock,
      });
      this.remediator = this.#remediation.remediator;
    }
    this.#wireCollectors();
  }

  /** Reads and validates the remediation rules file (throws RulesError; nothing is swapped). */
  loadRules(): RemediationRule[] {
    return loadConfiguredRules(this.config.remediation);
  }

  /** SIGHUP / POST reload: validate the whole file, then swap atomically. */
  reloadRules(): number {
    const rules = this.loadRules();
    this.remediator?.replaceRules(rules);
    this.#logger.info({ rules: rules.length }, 'remediation rules reloaded');
    return rules.length;
  }

  #wireCollectors(): void {
    this.celeryMetrics.onCollectWorkers(() => {
      const now = this.#clock.nowMs();
      return [...this.workers.all()].map((w) => ({ hostname: w.hostname, up: this.workers.isAlive(w, now), active: w.active ?? 0 }));
    });
    this.celeryMetrics.onCollectQueues(() => this.queues.collect());
  }

  /** Hot-path counts are plain numbers; they are copied into prom-client at scrape time. */
  #collectSelf(): void {
    const s = this.selfMetrics;
    const counts = this.processor.counts;
    const setCounter = (counter: { reset(): void; inc(labels: Record<string, string>, v: number): void }, label: string, values: Map<string, number>) => {
      counter.reset();
      for (const [k, v] of values) counter.inc({ [label]: k }, v);
    };
    {
      setCounter(s.eventsReceived, 'type', counts.events);
      setCounter(s.eventsDropped, 'reason', counts.drops);
      s.messagesReceived.reset();
      s.messagesReceived.inc(counts.messages);
      s.brokerConnected.set(this.status.connected && this.status.subscribed ? 1 : 0);
      s.brokerReconnects.reset();
      s.brokerReconnects.inc(this.status.reconnects);
      if (counts.lastEventAtMs > 0) s.lastEventTimestamp.set(counts.lastEventAtMs / 1000);
      s.trackedTasks.set(this.tasks.size);
      s.trackedWorkers.set(this.workers.size);
      s.taskEvictions.set(this.tasks.evictions);
      s.queueLengthErrors.reset();
      s.queueLengthErrors.inc(this.queues.errors);
      s.labelOverflow.reset();
      for (const l of [this.processor.names, this.processor.hostnames, this.processor.queues, this.processor.exceptions]) {
        if (l.overflowed > 0) s.labelOverflow.inc({ label: l.label }, l.overflowed);
      }
      if (this.celeryMetrics.tasks.overflowed > 0) s.labelOverflow.inc({ label: 'series' }, this.celeryMetrics.tasks.overflowed);
      s.workerClockSkew.reset();
      for (const w of this.workers.alive()) if (w.clockSkewSeconds !== undefined) s.workerClockSkew.set({ hostname: w.hostname }, w.clockSkewSeconds);
    }
  }

  /**
   * /metrics as a sequence of chunks: the prom-client registry (small), then the per-task
   * families streamed from their store. Times itself for the next scrape_duration_seconds.
   */
  async *metricsChunks(): AsyncGenerator<string> {
    const started = performance.now();
    this.#collectSelf();
    yield await this.registry.metrics();
    yield* this.celeryMetrics.tasks.render();
    this.selfMetrics.scrapeDuration.set((performance.now() - started) / 1000);
  }

  async renderMetrics(): Promise<string> {
    let text = '';
    for await (const chunk of this.metricsChunks()) text += chunk;
    return text;
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
    this.transport.start(this.processor);
    this.#inspector.start();
    this.#sweeper = setInterval(() => {
      this.processor.flushHeld();
      for (const hostname of this.workers.purge()) {
        this.celeryMetrics.removeHostname(hostname);
        this.processor.hostnames.forget(hostname);
        this.#logger.info({ hostname }, 'purged series of departed worker');
      }
    }, 1000);
    this.#sweeper.unref();
  }

  /** Starts the HTTP server on the configured address; resolves with the bound port. */
  async listen(port = this.config.port, host = this.config.listen_address): Promise<number> {
    const app = createHttpApp(this);
    const server = app.listen(port, host);
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', () => resolve());
      server.once('error', reject);
    });
    const address = server.address();
    return typeof address === 'object' && address ? address.port : port;
  }

  /** Graceful stop: no new connections, in-flight requests finish, broker resources released. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#inspector.stop();
    if (this.#sweeper) clearInterval(this.#sweeper);
    const server = this.#server;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), 5000).unref();
      });
    }
    await this.remediator?.idle();
    await this.transport.close();
    this.#remediation?.close();
    await this.audit.close();
  }
}

/** The webhook's credentials; a token file is read once, at start. */
function webhookCredentials(config: Config): WebhookCredentials {
  const w = config.remediation.webhook;
  const out: WebhookCredentials = {};
  if (w.bearer_token) out.bearer = w.bearer_token;
  else if (w.bearer_token_file) out.bearer = new Secret(readFileSync(w.bearer_token_file, 'utf8').trim());
  if (w.basic_auth) out.basic = { username: w.basic_auth.username, password: w.basic_auth.password };
  if (!out.bearer && !out.basic && config.auth.insecure_no_auth) out.insecure = true;
  return out;
}
