import type { Clock } from '../clock.js';
import type { QueueSample } from '../metrics/celery-metrics.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { BrokerTransport, QueueDepth } from '../transport/transport.js';

export interface QueueCollectorOptions {
  /** Always reported, even with no consumer (a backlog nobody drains is the point). */
  configuredQueues: readonly string[];
  timeoutMs: number;
  cacheMs: number;
}

/**
 * Queue depths and per-queue consumers/workers/processes at scrape time. The broker is asked at
 * most once per `cacheMs` (concurrent scrapes share one read), with a short timeout, so a slow
 * broker makes a scrape miss the length, never hang.
 */
export class QueueCollector {
  #cache: { at: number; depths: Map<string, QueueDepth>; key: string } | undefined;
  #inFlight: { key: string; depths: Promise<Map<string, QueueDepth>> } | undefined;
  errors = 0;

  constructor(
    private readonly transport: BrokerTransport,
    private readonly workers: WorkerRegistry,
    private readonly clock: Clock,
    private readonly options: QueueCollectorOptions,
  ) {}

  /** Known queues: configured ones plus every queue a live worker consumes. */
  queueNames(): string[] {
    const names = new Set(this.options.configuredQueues);
    for (const w of this.workers.alive()) for (const q of w.queues ?? []) names.add(q);
    return [...names].sort();
  }

  async collect(): Promise<QueueSample[]> {
    const names = this.queueNames();
    const depths = await this.#depths(names);
    const alive = this.workers.alive();
    return names.map((queue) => {
      const consumers = alive.filter((w) => w.queues?.includes(queue));
      const depth = depths.get(queue);
      return {
        queue,
        length: depth?.messages ?? null,
        consumers: depth?.consumers ?? null,
        workers: consumers.length,
        processes: consumers.reduce((sum, w) => sum + (w.processes ?? 0), 0),
      };
    });
  }

  async #depths(names: string[]): Promise<Map<string, QueueDepth>> {
    const key = names.join('\u0000');
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
