import { Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';

export const VERSION = '0.1.0';

/**
 * celery-autopilot's own telemetry, under its own prefix and apart from the translated Celery
 * metrics: what came in, what was dropped and why, the broker connection, and our footprint.
 */
export class SelfMetrics {
  readonly eventsReceived: Counter<'type'>;
  readonly eventsDropped: Counter<'reason'>;
  readonly messagesReceived: Counter;
  readonly brokerConnected: Gauge;
  readonly brokerReconnects: Counter;
  readonly lastEventTimestamp: Gauge;
  readonly scrapeDuration: Gauge;
  readonly labelOverflow: Counter<'label'>;
  readonly queueLengthErrors: Counter;
  readonly inspectRequests: Counter<'outcome'>;
  readonly workerClockSkew: Gauge<'hostname'>;
  readonly trackedTasks: Gauge;
  readonly trackedWorkers: Gauge;
  readonly taskEvictions: Gauge;

  constructor(registry: Registry, prefix: string) {
    const p = prefix;
    const r = [registry];
    this.eventsReceived = new Counter({ name: `${p}events_received_total`, help: 'Celery events decoded, by event type (each element of a task.multi batch counts).', labelNames: ['type'], registers: r });
    this.eventsDropped = new Counter({ name: `${p}events_dropped_total`, help: 'Messages or events thrown away, by reason.', labelNames: ['reason'], registers: r });
    this.messagesReceived = new Counter({ name: `${p}broker_messages_received_total`, help: 'Messages received from the event exchange (a task.multi batch is one message).', registers: r });
    this.brokerConnected = new Gauge({ name: `${p}broker_connected`, help: '1 while the broker connection and event subscription are up.', registers: r });
    this.brokerReconnects = new Counter({ name: `${p}broker_reconnects_total`, help: 'Reconnect attempts after the broker connection was lost or refused.', registers: r });
    this.lastEventTimestamp = new Gauge({ name: `${p}last_event_timestamp_seconds`, help: 'When the last Celery event was received (local clock, epoch seconds).', registers: r });
    this.scrapeDuration = new Gauge({ name: `${p}scrape_duration_seconds`, help: 'Time the previous /metrics scrape took to collect and render.', registers: r });
    this.labelOverflow = new Counter({ name: `${p}label_overflow_total`, help: 'Label values folded into the overflow value by the cardinality caps, by label.', labelNames: ['label'], registers: r });
    this.queueLengthErrors = new Counter({ name: `${p}queue_length_errors_total`, help: 'Queue depth reads that failed or timed out.', registers: r });
    this.inspectRequests = new Counter({ name: `${p}inspect_requests_total`, help: 'Background inspect broadcasts (active_queues, stats), by outcome.', labelNames: ['outcome'], registers: r });
    this.workerClockSkew = new Gauge({ name: `${p}worker_clock_skew_seconds`, help: "Worker's clock minus ours at its last heartbeat (transit time included).", labelNames: ['hostname'], registers: r });
    this.trackedTasks = new Gauge({ name: `${p}tracked_tasks`, help: 'In-flight tasks held in memory (bounded by cardinality.max_tracked_tasks).', registers: r });
    this.trackedWorkers = new Gauge({ name: `${p}tracked_workers`, help: 'Workers held in memory, alive or waiting to be purged.', registers: r });
    this.taskEvictions = new Gauge({ name: `${p}tracked_task_evictions`, help: 'Tracked tasks evicted to stay within the bound since start.', registers: r });
    new Gauge({ name: `${p}build_info`, help: 'Build information.', labelNames: ['version', 'nodejs'], registers: r }).set({ version: VERSION, nodejs: process.version }, 1);
    collectDefaultMetrics({ register: registry, prefix: p });
  }
}
