import type { Clock } from '../clock.js';
import {
  decodeEventMessage,
  exceptionClassName,
  isTaskEvent,
  type CeleryEvent,
  type DecodeTarget,
  type TaskEvent,
} from '../celery/events.js';
import type { CeleryMetrics } from '../metrics/celery-metrics.js';
import { LabelLimiter } from '../metrics/cardinality.js';
import type { QueueFlow } from '../state/queue-flow.js';
import type { InFlightTasks, InFlightTask } from '../state/in-flight-tasks.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { EventSink, RawEventMessage, TransportDropReason } from '../transport/transport.js';

/** How long a worker's event may wait for its task-sent (they come on different connections). */
const HOLD_MS = 2000;
const MAX_HELD_TASKS = 10_000;

/** Where the processor hands on what other parts need, fixed at construction. */
export interface EventProcessorHooks {
  /** Called on every (re-)subscription; the exporter sends Celery's heartbeat wake-up there. */
  whenSubscribed?: () => void;
  /** Called with the queue of every task-sent, so queues are known before (or without) a consumer. */
  whenQueueRouted?: (queue: string) => void;
  /** Every decoded task event, duplicates and all, before the metrics' own dedupe. */
  observeTasks?: (event: TaskEvent) => void;
}

export interface EventProcessorOptions {
  defaultQueue: string;
  taskSentHostname: 'generic' | 'host' | 'full';
  maxTaskNames: number;
  maxHostnames: number;
  maxQueues: number;
  overflowValue: string;
}

/** Plain counters on the hot path; SelfMetrics reads them at scrape time. */
export interface IngestCounts {
  messages: number;
  events: Map<string, number>;
  drops: Map<string, number>;
  lastEventAtMs: number;
}

/**
 * The one place where Celery events become state and metrics. Transports hand over raw
 * messages; this decodes them, updates worker and task state, and counts each task state once
 * per attempt, with the cardinality caps applied to every label value.
 */
export class EventProcessor implements EventSink {
  readonly counts: IngestCounts = { messages: 0, events: new Map(), drops: new Map(), lastEventAtMs: 0 };
  readonly names: LabelLimiter;
  readonly hostnames: LabelLimiter;
  readonly queues: LabelLimiter;
  readonly exceptions: LabelLimiter;
  readonly #decodeTarget: DecodeTarget;
  readonly #subscribed: () => void;
  readonly #queueRouted: (queue: string) => void;
  /** The task store (src/tasks) reads the same decoded events: one decode, one subscription. */
  readonly #taskObserver: ((event: TaskEvent) => void) | undefined;
  /** Worker events waiting (briefly) for their task-sent, by task id, oldest first. */
  readonly #held = new Map<string, { since: number; events: TaskEvent[] }>();
  /** Clients send task-sent here (task_send_sent_event), so a task's queue can be learnt. */
  #sentSeen = false;

  constructor(
    private readonly clock: Clock,
    private readonly workers: WorkerRegistry,
    private readonly inFlight: InFlightTasks,
    private readonly metrics: CeleryMetrics,
    private readonly options: EventProcessorOptions,
    /** Arrivals, completions and runtimes per queue, for the autoscaling signals. */
    private readonly flow?: QueueFlow,
    hooks: EventProcessorHooks = {},
  ) {
    this.#subscribed = hooks.whenSubscribed ?? (() => undefined);
    this.#queueRouted = hooks.whenQueueRouted ?? (() => undefined);
    this.#taskObserver = hooks.observeTasks;
    this.names = new LabelLimiter('name', options.maxTaskNames, options.overflowValue);
    this.hostnames = new LabelLimiter('hostname', options.maxHostnames, options.overflowValue);
    this.queues = new LabelLimiter('queue_name', options.maxQueues, options.overflowValue);
    this.exceptions = new LabelLimiter('exception', Math.max(50, Math.min(options.maxTaskNames, 500)), options.overflowValue);
    this.#decodeTarget = {
      event: (event) => this.handle(event),
      drop: (reason) => this.#drop(reason),
    };
  }

  onSubscribed(): void {
    this.#subscribed();
  }

  onEvents(message: RawEventMessage): void {
    this.counts.messages++;
    decodeEventMessage(message, this.#decodeTarget);
  }

  onDrop(reason: TransportDropReason): void {
    this.#drop(reason);
  }

  #drop(reason: string): void {
    this.counts.drops.set(reason, (this.counts.drops.get(reason) ?? 0) + 1);
  }

  handle(event: CeleryEvent): void {
    const events = this.counts.events;
    events.set(event.type, (events.get(event.type) ?? 0) + 1);
    this.counts.lastEventAtMs = this.clock.nowMs();
    if (isTaskEvent(event)) {
      this.#taskObserver?.(event);
      this.#task(event);
    } else this.workers.handle(event);
  }

  #task(event: TaskEvent): void {
    const task = this.inFlight.getOrCreate(event.uuid);
    if (typeof event.name === 'string' && event.name !== '') task.name ??= event.name;
    if (!this.inFlight.markSeen(task, event.type, typeof event.retries === 'number' ? event.retries : undefined)) {
      this.#drop('duplicate');
      return;
    }
    if (event.type === 'task-sent') {
      this.#sentSeen = true;
      task.queue = stringOr(event.queue, event.routing_key) ?? task.queue;
      if (task.queue !== undefined) this.#queueRouted(task.queue);
      if (Number.isFinite(event.timestamp)) task.sentAt = event.timestamp;
      task.sentSeenAt = this.clock.nowMs();
      task.etaAt = parseEta(event.eta) ?? task.etaAt;
      const queue = this.#queue(task, undefined);
      this.metrics.countTask('sent', this.#name(task), this.#sentHostname(event.hostname), queue);
      this.flow?.sent(queue);
      // The client's task-sent and the worker's events travel on different connections: on a
      // fast worker task-started can arrive first.
      if (task.startedAt !== undefined && task.startedBy !== undefined) this.#observeQueueWait(task, task.startedBy);
      this.#release(event.uuid, task);
      return;
    }
    this.workers.noteTaskEvent(event.hostname);
    if (this.#shouldHold(task, event)) {
      const held = this.#held.get(event.uuid);
      if (held) held.events.push(event);
      else this.#held.set(event.uuid, { since: this.clock.nowMs(), events: [event] });
      return;
    }
    this.#count(task, event);
  }

  /**
   * Hold a worker's event briefly when its queue is not known yet but will be: clients send
   * task-sent (we have seen some), and the worker consumes several queues, so only task-sent can
   * tell which. Counted as soon as task-sent arrives, or after HOLD_MS with the fallback queue.
   */
  #shouldHold(task: InFlightTask, event: TaskEvent): boolean {
    if (task.queue !== undefined || !this.#sentSeen) return false;
    if (this.#held.has(event.uuid)) return true; // keep a task's events in order
    if (this.workers.soleQueue(event.hostname) !== undefined) return false;
    return this.#held.size < MAX_HELD_TASKS;
  }

  #release(uuid: string, task: InFlightTask): void {
    const held = this.#held.get(uuid);
    if (!held) return;
    this.#held.delete(uuid);
    for (const e of held.events) this.#count(task, e);
  }

  /** Counts held events whose task-sent did not come in time. Called about once a second. */
  flushHeld(now = this.clock.nowMs()): void {
    for (const [uuid, held] of this.#held) {
      if (now - held.since < HOLD_MS) break; // insertion order: the rest are younger
      this.#release(uuid, this.inFlight.getOrCreate(uuid));
    }
  }

  /**
   * Series lifetime has this one owner: held events past their wait are counted, and workers
   * gone longer than the purge period leave with all their series and their hostname label slot.
   * Returns the purged hostnames. Called about once a second.
   */
  sweep(now = this.clock.nowMs()): string[] {
    this.flushHeld(now);
    const purged = this.workers.purge(now);
    for (const hostname of purged) {
      this.metrics.removeHostname(hostname);
      this.hostnames.forget(hostname);
    }
    return purged;
  }

  get heldTasks(): number {
    return this.#held.size;
  }

  #count(task: InFlightTask, event: TaskEvent): void {
    const hostname = this.hostnames.value(event.hostname);
    switch (event.type) {
      case 'task-received':
        task.etaAt = parseEta(event.eta) ?? task.etaAt;
        this.metrics.countTask('received', this.#name(task), hostname, this.#queue(task, event.hostname));
        this.flow?.received(this.#queue(task, event.hostname));
        break;
      case 'task-started': {
        const queue = this.#queue(task, event.hostname);
        this.metrics.countTask('started', this.#name(task), hostname, queue);
        if (Number.isFinite(event.timestamp)) {
          task.startedAt = event.timestamp;
          task.startedBy = hostname;
          if (task.sentAt !== undefined) this.#observeQueueWait(task, hostname);
        }
        break;
      }
      case 'task-succeeded': {
        const queue = this.#queue(task, event.hostname);
        this.metrics.countTask('succeeded', this.#name(task), hostname, queue);
        // `runtime` is measured by the worker itself, so no cross-host clock is involved.
        const runtime = typeof event.runtime === 'number' && event.runtime >= 0 ? event.runtime : undefined;
        if (runtime !== undefined) this.metrics.observeRuntime(this.#name(task), hostname, queue, runtime);
        this.flow?.completed(queue, runtime);
        break;
      }
      case 'task-failed':
        this.metrics.countFailed(
          this.#name(task),
          hostname,
          this.#queue(task, event.hostname),
          this.exceptions.value(exceptionClassName(event.exception)),
        );
        this.flow?.completed(this.#queue(task, event.hostname));
        break;
      case 'task-retried':
        this.metrics.countTask('retried', this.#name(task), hostname, this.#queue(task, event.hostname));
        break;
      case 'task-revoked':
        this.metrics.countTask('revoked', this.#name(task), hostname, this.#queue(task, event.hostname));
        break;
      case 'task-rejected':
        this.metrics.countTask('rejected', this.#name(task), hostname, this.#queue(task, event.hostname));
        break;
      case 'task-cancelled':
        // Not a celery-exporter series; counted in events_received_total only.
        break;
    }
  }

  /** Queue wait = started − max(sent, eta), once per attempt, whichever of the two came last. */
  #observeQueueWait(task: InFlightTask, hostname: string): void {
    if (task.queueWaitObserved || task.sentAt === undefined || task.startedAt === undefined) return;
    task.queueWaitObserved = true;
    // Client and worker clocks differ; a negative wait is skew, not time travel.
    const waited = task.startedAt - Math.max(task.sentAt, task.etaAt ?? 0);
    this.metrics.observeQueueWait(this.#name(task), hostname, this.#queue(task, hostname), Math.max(0, waited));
  }

  #name(task: InFlightTask): string {
    return this.names.value(task.name ?? 'unknown');
  }

  /**
   * queue_name from the best real source: task-sent's routing, else the only queue the worker
   * consumes, else the configured default. Resolved once per task so all its series agree.
   */
  #queue(task: InFlightTask, workerHostname: string | undefined): string {
    if (task.queue === undefined) {
      const fromWorker = workerHostname !== undefined ? this.workers.soleQueue(workerHostname) : undefined;
      if (fromWorker === undefined) return this.queues.value(this.options.defaultQueue);
      task.queue = fromWorker;
    }
    return this.queues.value(task.queue);
  }

  #sentHostname(hostname: string): string {
    switch (this.options.taskSentHostname) {
      case 'generic':
        return 'generic';
      case 'host':
        return this.hostnames.value(hostname.includes('@') ? hostname.slice(hostname.indexOf('@') + 1) : hostname);
      default:
        return this.hostnames.value(hostname);
    }
  }
}

function stringOr(...values: unknown[]): string | undefined {
  for (const v of values) if (typeof v === 'string' && v !== '') return v;
  return undefined;
}

/** ETA as epoch seconds; Celery sends ISO-8601 with an offset, or null. */
function parseEta(eta: unknown): number | undefined {
  if (typeof eta !== 'string' || eta === '') return undefined;
  const ms = Date.parse(eta);
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}
