import { readFileSync } from 'node:fs';
import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import { familiesOf, familiesRegisteredBy, type MetricFamily } from './families.js';

/** package.json sits two levels up from both src/metrics/ and dist/metrics/ (and in the image). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

/**
 * The Prometheus scrape job the shipped alert rules select (`job="celery-autopilot"` in
 * alertmanager/celery-alerts.rules.yml): a Prometheus that scrapes this service under another job
 * name loads the rules and never fires them. Every shipped config and snippet uses it; the service
 * names it at start, and CeleryAutopilotAbsent fires when no series carry it.
 */
export const SCRAPE_JOB = 'celery-autopilot';

/**
 * What the exporter's self-telemetry reports, read at scrape time in one `collect()`. Each part
 * of the event path keeps its hot-path counts as plain numbers and answers here; none of them
 * knows prom-client.
 */
export interface SelfTelemetrySource {
  ingest(): {
    messages: number;
    events: ReadonlyMap<string, number>;
    drops: ReadonlyMap<string, number>;
    lastEventAtMs: number;
  };
  /** `leanDelivery`: AMQP only, once subscribed (see TransportObserver.leanDelivery). */
  broker(): { ready: boolean; reconnects: number; leanDelivery?: boolean };
  tracked(): { tasks: number; workers: number; taskEvictions: number };
  queueLengthErrors(): number;
  /** Values folded into the overflow value, by label (`series` for the combination cap). */
  labelOverflow(): Iterable<[label: string, count: number]>;
  workerClockSkew(): Iterable<[hostname: string, seconds: number]>;
  workersWithoutTaskEvents(): number;
}

/** Nothing to report yet: a registry built only to list the metric names. */
const NO_SOURCE: SelfTelemetrySource = {
  ingest: () => ({ messages: 0, events: new Map(), drops: new Map(), lastEventAtMs: 0 }),
  broker: () => ({ ready: false, reconnects: 0 }),
  tracked: () => ({ tasks: 0, workers: 0, taskEvictions: 0 }),
  queueLengthErrors: () => 0,
  labelOverflow: () => [],
  workerClockSkew: () => [],
  workersWithoutTaskEvents: () => 0,
};

type SettableCounter = Counter<string>;

/** A counter whose running total lives elsewhere: reset and set to that total at scrape time. */
function setTotal(counter: SettableCounter, total: number, labels?: Record<string, string>): void {
  if (labels) counter.inc(labels, total);
  else counter.inc(total);
}

/**
 * How often prom-client's event-loop-delay histogram (nodejs_eventloop_lag_*) samples the loop.
 * Its default, 10 ms, wakes an idle process 100 times a second: on the benchmark VM that alone
 * cost 9 ms of CPU per second, 0.6 CPU-s per 100k events at 1,500 events/s (bench/README.md,
 * "Read pacing"). Ten samples a second still give a scrape interval's percentiles, and a stall
 * is measured in full whenever a sample lands in it.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * The exporter's own telemetry (and the process's), under our own prefix and apart from the
 * translated Celery metrics: what came in, what was dropped and why, the broker connection, and
 * our footprint. Other features register their own families beside these (remediation-metrics.ts,
 * persistence-metrics.ts). Node's process metrics keep their standard unprefixed names
 * (process_*, nodejs_*) so the usual Node.js dashboards work.
 */
export class SelfMetrics {
  readonly #eventsReceived: Counter<'type'>;
  readonly #eventsDropped: Counter<'reason'>;
  readonly #messagesReceived: Counter;
  readonly #brokerConnected: Gauge;
  readonly #brokerReconnects: Counter;
  readonly #amqpEventDelivery: Gauge<'path'>;
  readonly #lastEventTimestamp: Gauge;
  readonly #labelOverflow: Counter<'label'>;
  readonly #queueLengthErrors: Counter;
  readonly #workerClockSkew: Gauge<'hostname'>;
  readonly #trackedTasks: Gauge;
  readonly #trackedWorkers: Gauge;
  readonly #taskEvictions: Counter;
  readonly #workersWithoutTaskEvents: Gauge;
  /** Counted where they happen (not copied from elsewhere). */
  readonly scrapeDuration: Gauge;
  readonly inspectRequests: Counter<'outcome'>;
  /** Ours in registration order, then the process's (prom-client's default metrics). */
  readonly families: readonly MetricFamily[];

  // Over 80 lines on purpose: one statement per metric family, each with its help text; a list
  // is what a reader scans for a name.
  constructor(
    registry: Registry,
    prefix: string,
    private readonly source: SelfTelemetrySource = NO_SOURCE,
  ) {
    const p = prefix;
    const r = [registry];
    this.#eventsReceived = new Counter({
      name: `${p}events_received_total`,
      help: 'Celery events decoded, by event type (each element of a task.multi batch counts).',
      labelNames: ['type'],
      registers: r,
    });
    this.#eventsDropped = new Counter({
      name: `${p}events_dropped_total`,
      help: 'Messages or events thrown away, by reason.',
      labelNames: ['reason'],
      registers: r,
    });
    this.#messagesReceived = new Counter({
      name: `${p}broker_messages_received_total`,
      help: 'Messages received from the event exchange (a task.multi batch is one message).',
      registers: r,
    });
    this.#brokerConnected = new Gauge({
      name: `${p}broker_connected`,
      help: '1 while the broker connection and event subscription are up.',
      registers: r,
    });
    this.#brokerReconnects = new Counter({
      name: `${p}broker_reconnects_total`,
      help: 'Reconnect attempts after the broker connection was lost or refused.',
      registers: r,
    });
    this.#amqpEventDelivery = new Gauge({
      name: `${p}amqp_event_delivery`,
      help: 'RabbitMQ only: 1 for the path events are read by: "lean" (frames read in place) or "amqplib" (amqplib internals changed, about 2x CPU per event).',
      labelNames: ['path'],
      registers: r,
    });
    this.#lastEventTimestamp = new Gauge({
      name: `${p}last_event_timestamp_seconds`,
      help: 'When the last Celery event was received (local clock, epoch seconds).',
      registers: r,
    });
    this.scrapeDuration = new Gauge({
      name: `${p}scrape_duration_seconds`,
      help: 'Time the previous /metrics scrape took to collect and render.',
      registers: r,
    });
    this.#labelOverflow = new Counter({
      name: `${p}label_overflow_total`,
      help: 'Label values folded into the overflow value by the cardinality caps, by label.',
      labelNames: ['label'],
      registers: r,
    });
    this.#queueLengthErrors = new Counter({
      name: `${p}queue_length_errors_total`,
      help: 'Queue depth reads that failed or timed out.',
      registers: r,
    });
    this.inspectRequests = new Counter({
      name: `${p}inspect_requests_total`,
      help: 'Background inspect broadcasts (active_queues, stats), by outcome.',
      labelNames: ['outcome'],
      registers: r,
    });
    this.#workerClockSkew = new Gauge({
      name: `${p}worker_clock_skew_seconds`,
      help: "Worker's clock minus ours at its last heartbeat (transit time included).",
      labelNames: ['hostname'],
      registers: r,
    });
    this.#trackedTasks = new Gauge({
      name: `${p}tracked_tasks`,
      help: 'In-flight tasks held in memory (bounded by cardinality.max_tracked_tasks).',
      registers: r,
    });
    this.#trackedWorkers = new Gauge({
      name: `${p}tracked_workers`,
      help: 'Workers held in memory, alive or waiting to be purged.',
      registers: r,
    });
    this.#taskEvictions = new Counter({
      name: `${p}tracked_task_evictions_total`,
      help: 'Tracked tasks evicted to stay within the bound.',
      registers: r,
    });
    this.#workersWithoutTaskEvents = new Gauge({
      name: `${p}workers_without_task_events`,
      help: 'Live workers whose heartbeats report processed tasks while none of their task events arrive (started without -E).',
      registers: r,
    });
    const buildInfo = new Gauge({ name: `${p}build_info`, help: 'Build information.', labelNames: ['version', 'nodejs'], registers: r });
    buildInfo.set({ version: VERSION, nodejs: process.version }, 1);
    this.families = [
      ...familiesOf([
        this.#eventsReceived,
        this.#eventsDropped,
        this.#messagesReceived,
        this.#brokerConnected,
        this.#brokerReconnects,
        this.#amqpEventDelivery,
        this.#lastEventTimestamp,
        this.scrapeDuration,
        this.#labelOverflow,
        this.#queueLengthErrors,
        this.inspectRequests,
        this.#workerClockSkew,
        this.#trackedTasks,
        this.#trackedWorkers,
        this.#taskEvictions,
        this.#workersWithoutTaskEvents,
        buildInfo,
      ]),
      ...familiesRegisteredBy(registry, () =>
        collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS }),
      ),
    ];
  }

  /** Once per scrape, before the registry renders. */
  collect(): void {
    const s = this.source;
    const ingest = s.ingest();
    for (const c of [
      this.#eventsReceived,
      this.#eventsDropped,
      this.#messagesReceived,
      this.#brokerReconnects,
      this.#taskEvictions,
      this.#queueLengthErrors,
      this.#labelOverflow,
    ])
      c.reset();
    for (const [type, n] of ingest.events) setTotal(this.#eventsReceived, n, { type });
    for (const [reason, n] of ingest.drops) setTotal(this.#eventsDropped, n, { reason });
    setTotal(this.#messagesReceived, ingest.messages);
    if (ingest.lastEventAtMs > 0) this.#lastEventTimestamp.set(ingest.lastEventAtMs / 1000);
    const broker = s.broker();
    this.#brokerConnected.set(broker.ready ? 1 : 0);
    setTotal(this.#brokerReconnects, broker.reconnects);
    this.#amqpEventDelivery.reset();
    if (broker.leanDelivery !== undefined) this.#amqpEventDelivery.set({ path: broker.leanDelivery ? 'lean' : 'amqplib' }, 1);
    const tracked = s.tracked();
    this.#trackedTasks.set(tracked.tasks);
    this.#trackedWorkers.set(tracked.workers);
    setTotal(this.#taskEvictions, tracked.taskEvictions);
    setTotal(this.#queueLengthErrors, s.queueLengthErrors());
    for (const [label, n] of s.labelOverflow()) if (n > 0) setTotal(this.#labelOverflow, n, { label });
    this.#workerClockSkew.reset();
    for (const [hostname, seconds] of s.workerClockSkew()) this.#workerClockSkew.set({ hostname }, seconds);
    this.#workersWithoutTaskEvents.set(s.workersWithoutTaskEvents());
  }
}
