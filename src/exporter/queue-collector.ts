import type { Clock } from '../clock.js';
import { CommandValidationError, validateQueueName } from '../celery/validators.js';
import type { QueueSample } from '../metrics/celery-metrics.js';
import { processesNeeded, timeToDrain, type QueueFlow } from '../state/queue-flow.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { BrokerTransport, QueueDepth } from '../transport/transport.js';

export interface QueueCollectorOptions {
  /** Always reported, even with no consumer (a backlog nobody drains is the point). */
  configuredQueues: readonly string[];
  timeoutMs: number;
  cacheMs: number;
  /**
   * A queue learnt from a consumer or from task-sent routing stays reported this long after it
   * was last consumed or sent to; 0 = for ever. celery-exporter keeps every queue it has seen.
   */
  retentionMs: number;
  /** Learnt queues kept at most (cardinality.max_queues). */
  maxQueues: number;
}

/** Where the autoscaling signals come from (see state/queue-flow.ts). */
export interface QueueSignalSources {
  flow: QueueFlow;
  /** When task-sent for this task id arrived (our clock, ms), while it is remembered. */
  sentSeenAt: (taskId: string) => number | undefined;
}

/**
 * Queue depths and per-queue consumers/workers/processes at scrape time. The broker is asked at
 * most once per `cacheMs` (concurrent scrapes share one read), with a short timeout, so a slow
 * broker makes a scrape miss the length, never hang. Workers and processes per queue are never
 * cached: they come from the worker registry in the same scrape as `celery_worker_up`, and a
 * change in who consumes a queue invalidates the cached broker read (its consumer count).
 */
export class QueueCollector {
  #cache: { at: number; depths: Map<string, QueueDepth>; key: string } | undefined;
  #inFlight: { key: string; depths: Promise<Map<string, QueueDepth>> } | undefined;
  /** Learnt queue → when it was last consumed by a live worker or named by task-sent (ms). */
  readonly #learnt = new Map<string, number>();
  errors = 0;

  constructor(
    private readonly transport: BrokerTransport,
    private readonly workers: WorkerRegistry,
    private readonly clock: Clock,
    private readonly options: QueueCollectorOptions,
    private readonly signals?: QueueSignalSources,
  ) {}

  /**
   * A queue named by task-sent routing: reported from now on, even before (or without) a
   * consumer. The name reaches the broker (depth reads), so it must pass the control validator.
   */
  learn(queue: string, now = this.clock.nowMs()): void {
    if (!this.#learnt.has(queue)) {
      if (this.#learnt.size >= this.options.maxQueues || !isValidQueueName(queue)) return;
    }
    this.#learnt.set(queue, now);
  }

  /** Reported queues: configured ones, every queue a live worker consumes, and learnt ones still retained. */
  queueNames(now = this.clock.nowMs()): string[] {
    for (const w of this.workers.alive(now)) for (const q of w.queues ?? []) this.learn(q, now);
    const retention = this.options.retentionMs;
    if (retention > 0) for (const [q, at] of this.#learnt) if (now - at > retention) this.#learnt.delete(q);
    return [...new Set([...this.options.configuredQueues, ...this.#learnt.keys()])].sort();
  }

  /** One queue's depth now, past the cache (what a purge would remove); messages null when unreadable. */
  async depthNow(queue: string): Promise<QueueDepth> {
    const [depth] = await this.transport.queueDepths([queue], this.options.timeoutMs);
    return depth ?? { name: queue, messages: null, consumers: null, error: 'no answer' };
  }

  /**
   * Empties a queue through the transport (on Redis every priority list; BrokerTransport.purgeQueue)
   * and forgets the cached depths, so the next scrape shows it empty. Answers the count removed.
   */
  async purge(queue: string, timeoutMs: number): Promise<number> {
    try {
      return await this.transport.purgeQueue(queue, timeoutMs);
    } finally {
      this.#cache = undefined;
    }
  }

  /** Who consumes each queue is read at `now`, before the broker is asked (see scrape-sample.ts). */
  async collect(now = this.clock.nowMs()): Promise<QueueSample[]> {
    const names = this.queueNames(now);
    const consumersByQueue = new Map(names.map((q) => [q, this.workers.consumersOf(q, now)]));
    // Who consumes what is part of the cache key: a worker that died (or came) since the cached
    // read makes its consumer count stale, so the broker is asked again.
    const key = names
      .map(
        (q) =>
          `${q}\u0001${consumersByQueue
            .get(q)!
            .map((w) => w.hostname)
            .join('\u0001')}`,
      )
      .join('\u0000');
    const depths = await this.#depths(names, key);
    // The signals describe the sample's moment, as who consumes each queue does.
    const at = now;
    return names.map((queue) => {
      const consumers = consumersByQueue.get(queue)!;
      const depth = depths.get(queue);
      const length = depth?.messages ?? null;
      const rates = this.signals?.flow.rates(queue, at);
      return {
        queue,
        length,
        consumers: depth?.consumers ?? null,
        workers: consumers.length,
        processes: consumers.reduce((sum, w) => sum + (w.processes ?? 0), 0),
        timeToDrain: length === null || !this.signals ? null : timeToDrain(length, rates),
        processesNeeded: processesNeeded(rates) ?? null,
        oldestMessageAge: this.#oldestAge(length, depth?.oldestTaskIds, at),
      };
    });
  }

  /**
   * Seconds since task-sent of the oldest waiting message (Redis: the tail of each priority
   * list); null when the broker cannot tell, or when any of those messages' task-sent was not
   * seen (clients without task_send_sent_event, or sent before this process started).
   */
  #oldestAge(length: number | null, ids: readonly string[] | undefined, at: number): number | null {
    if (ids === undefined || length === null || !this.signals) return null;
    if (length === 0) return 0;
    let oldest = Infinity;
    for (const id of ids) {
      const seen = this.signals.sentSeenAt(id);
      if (seen === undefined) return null;
      oldest = Math.min(oldest, seen);
    }
    return oldest === Infinity ? null : Math.max(0, (at - oldest) / 1000);
  }

  async #depths(names: string[], key: string): Promise<Map<string, QueueDepth>> {
    const now = this.clock.nowMs();
    if (this.#cache && this.#cache.key === key && now - this.#cache.at < this.options.cacheMs) return this.#cache.depths;
    if (names.length === 0 || !this.transport.isConnected()) return new Map();
    // Concurrent scrapes share one read, but only one for the same set of queues.
    if (this.#inFlight?.key === key) return this.#inFlight.depths;
    const depths = this.transport
      .queueDepths(names, this.options.timeoutMs)
      .then((list) => {
        const depths = new Map(list.map((d) => [d.name, d]));
        this.errors += list.filter((d) => d.messages === null).length;
        this.#cache = { at: this.clock.nowMs(), depths, key };
        return depths;
      })
      .catch(() => {
        this.errors += names.length;
        return new Map<string, QueueDepth>();
      })
      .finally(() => {
        if (this.#inFlight?.depths === depths) this.#inFlight = undefined;
      });
    this.#inFlight = { key, depths };
    return depths;
  }
}

function isValidQueueName(queue: string): boolean {
  try {
    validateQueueName(queue);
    return true;
  } catch (e) {
    if (e instanceof CommandValidationError) return false;
    throw e;
  }
}
