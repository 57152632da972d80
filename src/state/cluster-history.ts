/**
 * The last hour of the cluster at a fixed step (10 s by default), kept in memory so the console
 * can draw charts without Prometheus. Not on the event path: a timer records one reading per step
 * from counters and gauges the service keeps anyway (cumulative task counts per worker, queue
 * depths, workers up), so an event costs nothing more. Counters are stored as the increase over
 * the step (from 0 at the process start), gauges as read; a step with no reading (the process was busy, or just started) is NaN
 * and drawn as a gap.
 *
 * Memory is a Float32Array of `points` per series: one per global line, two per queue (depth,
 * reserved) and three per worker (succeeded, failed, retried), each kind capped like the metric
 * series (cardinality.max_queues, cardinality.max_hostnames). A queue or worker not read for a
 * whole window is dropped.
 */

/** One reading of the cluster. Counters (`succeeded`…) are cumulative since start. */
export interface ClusterReading {
  brokerUp: boolean;
  workersUp: number;
  processes: number;
  succeeded: number;
  failed: number;
  retried: number;
  queues: ReadonlyArray<{ queue: string; depth: number | null; reserved: number }>;
  workers: ReadonlyArray<{ hostname: string; succeeded: number; failed: number; retried: number }>;
}

export interface HistoryOptions {
  stepMs: number;
  points: number;
  maxQueues: number;
  maxWorkers: number;
}

/** A series as charts read it: oldest first, `values[i]` at `startMs + i × stepMs` (NaN: no reading). */
export interface HistorySeries {
  readonly startMs: number;
  readonly stepMs: number;
  readonly values: Float32Array;
}

type Kind = 'cluster' | 'queue' | 'worker';

interface Ring {
  readonly kind: Kind;
  readonly values: Float32Array;
  /** Step number (ms ÷ stepMs) of the newest value; older slots belong to earlier steps. */
  lastStep: number;
  /** For counters: the cumulative value at the last reading, to take the increase from. */
  lastTotal?: number;
}

export const GLOBAL_SERIES = ['broker_up', 'workers_up', 'processes', 'succeeded', 'failed', 'retried'] as const;

export class ClusterHistory {
  readonly #rings = new Map<string, Ring>();
  readonly #count: Record<Kind, number> = { cluster: 0, queue: 0, worker: 0 };
  #headStep = Number.NEGATIVE_INFINITY;
  /** Queues and workers refused by the caps (self-telemetry may show it). */
  refused = 0;

  constructor(readonly options: HistoryOptions) {}

  record(r: ClusterReading, nowMs: number): void {
    const step = Math.floor(nowMs / this.options.stepMs);
    if (step < this.#headStep) return;
    this.#headStep = step;
    // First: a queue gone for a window frees its place under the cap for a new one.
    this.#expire(step);
    this.#gauge('broker_up', 'cluster', step, r.brokerUp ? 1 : 0);
    this.#gauge('workers_up', 'cluster', step, r.workersUp);
    this.#gauge('processes', 'cluster', step, r.processes);
    this.#counter('succeeded', 'cluster', step, r.succeeded);
    this.#counter('failed', 'cluster', step, r.failed);
    this.#counter('retried', 'cluster', step, r.retried);
    for (const q of r.queues) {
      this.#gauge(`queue:${q.queue}:depth`, 'queue', step, q.depth ?? Number.NaN);
      this.#gauge(`queue:${q.queue}:reserved`, 'queue', step, q.reserved);
    }
    for (const w of r.workers) {
      this.#counter(`worker:${w.hostname}:succeeded`, 'worker', step, w.succeeded);
      this.#counter(`worker:${w.hostname}:failed`, 'worker', step, w.failed);
      this.#counter(`worker:${w.hostname}:retried`, 'worker', step, w.retried);
    }
  }

  /** The series oldest first over the whole window, or undefined if never recorded. */
  series(key: string): HistorySeries | undefined {
    const ring = this.#rings.get(key);
    if (!ring || this.#headStep === Number.NEGATIVE_INFINITY) return undefined;
    const n = this.options.points;
    const values = new Float32Array(n);
    const first = this.#headStep - n + 1;
    for (let i = 0; i < n; i++) {
      const step = first + i;
      values[i] = step > ring.lastStep || step <= ring.lastStep - n ? Number.NaN : ring.values[step % n]!;
    }
    return { startMs: first * this.options.stepMs, stepMs: this.options.stepMs, values };
  }

  queueSeries(queue: string): { depth?: HistorySeries; reserved?: HistorySeries } {
    return { depth: this.series(`queue:${queue}:depth`), reserved: this.series(`queue:${queue}:reserved`) };
  }

  workerSeries(hostname: string): { succeeded?: HistorySeries; failed?: HistorySeries; retried?: HistorySeries } {
    return {
      succeeded: this.series(`worker:${hostname}:succeeded`),
      failed: this.series(`worker:${hostname}:failed`),
      retried: this.series(`worker:${hostname}:retried`),
    };
  }

  /** Queues with a depth series, in the order first seen. */
  queues(): string[] {
    return [...this.#rings.keys()].filter((k) => k.startsWith('queue:') && k.endsWith(':depth')).map((k) => k.slice(6, -6));
  }

  /** Bytes held by the rings' values (the measure bench/ reports at the caps). */
  get bytes(): number {
    let n = 0;
    for (const r of this.#rings.values()) n += r.values.byteLength;
    return n;
  }

  #ring(key: string, kind: Kind, step: number): Ring | undefined {
    let ring = this.#rings.get(key);
    if (ring) return ring;
    const cap = kind === 'queue' ? this.options.maxQueues * 2 : kind === 'worker' ? this.options.maxWorkers * 3 : Infinity;
    if (this.#count[kind] >= cap) {
      this.refused++;
      return undefined;
    }
    ring = { kind, values: new Float32Array(this.options.points).fill(Number.NaN), lastStep: step - 1 };
    this.#rings.set(key, ring);
    this.#count[kind]++;
    return ring;
  }

  #write(ring: Ring, step: number, value: number): void {
    const n = this.options.points;
    // Steps skipped since the last reading hold no value: NaN, not the value of an hour ago.
    for (let s = Math.max(ring.lastStep + 1, step - n + 1); s < step; s++) ring.values[s % n] = Number.NaN;
    ring.values[step % n] = value;
    ring.lastStep = step;
  }

  #gauge(key: string, kind: Kind, step: number, value: number): void {
    const ring = this.#ring(key, kind, step);
    if (ring) this.#write(ring, step, value);
  }

  /**
   * The increase since the last reading; 0 when a counter went back (its series was removed).
   * Counters start at 0 with the process, and a worker's with its first task event, so a
   * counter's first reading is all increase since then (at most one step before it).
   */
  #counter(key: string, kind: Kind, step: number, total: number): void {
    const ring = this.#ring(key, kind, step);
    if (!ring) return;
    const increase = Math.max(0, total - (ring.lastTotal ?? 0));
    ring.lastTotal = total;
    // Two readings in one step (a timer that fired late, then on time) add up.
    const earlier = ring.lastStep === step ? ring.values[step % this.options.points]! : Number.NaN;
    this.#write(ring, step, Number.isNaN(earlier) ? increase : earlier + (Number.isNaN(increase) ? 0 : increase));
  }

  #expire(step: number): void {
    for (const [key, ring] of this.#rings) {
      if (ring.kind !== 'cluster' && ring.lastStep <= step - this.options.points) {
        this.#rings.delete(key);
        this.#count[ring.kind]--;
      }
    }
  }
}
