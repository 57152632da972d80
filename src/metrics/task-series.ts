/**
 * The per-task Celery metric families (celery-exporter's names and labels), kept in a compact
 * store of our own and rendered as a stream of text chunks. A cluster with many workers × task
 * names has millions of series; prom-client would build every one of them as objects and one
 * giant string per scrape (2.5 GB peak at 200 × 500 in our benchmark), while this store costs a
 * few hundred bytes per label combination and renders in bounded memory.
 */
import type { MetricFamily } from './families.js';

export const COUNTER_FAMILIES = ['sent', 'received', 'started', 'succeeded', 'rejected', 'revoked', 'retried'] as const;
export type CounterFamily = (typeof COUNTER_FAMILIES)[number];
const COUNTER_INDEX: Record<CounterFamily, number> = {
  sent: 0,
  received: 1,
  started: 2,
  succeeded: 3,
  rejected: 4,
  revoked: 5,
  retried: 6,
};

const HELP: Record<CounterFamily, string> = {
  sent: 'Sent when a task message is published.',
  received: 'Sent when the worker receives a task.',
  started: 'Sent just before the worker executes the task.',
  succeeded: 'Sent if the task executed successfully.',
  rejected: 'The task was rejected by the worker, possibly to be re-queued or moved to a dead letter queue.',
  revoked: 'Sent if the task has been revoked.',
  retried: 'Sent if the task failed, but will be retried in the future.',
};
const FAILED_HELP = 'Sent if the execution of the task failed.';
const RUNTIME_HELP = 'Histogram of task runtime measurements.';
const QUEUE_WAIT_HELP = 'Histogram of task queue wait time measurements (task-started minus max(task-sent, eta)).';
const SERIES_LABELS = ['name', 'hostname', 'queue_name'] as const;

/** One name × hostname × queue_name combination and everything counted for it. */
interface TaskSeries {
  readonly hostname: string;
  /** `name="…",hostname="…",queue_name="…"` plus static labels, rendered once. */
  readonly labels: string;
  readonly counts: Float64Array;
  /**
   * Set by the first worker event (anything but task-sent): from then on every counter family
   * that can move for this hostname is rendered, at 0 where nothing was counted, as
   * celery-exporter does, so `increase()` sees the first failure, revocation or rejection of a
   * series and dashboards show 0, not no data.
   */
  zeroInitialised: boolean;
  /**
   * task-sent has been counted under this hostname label (see `#senders`): only then can this
   * series' sent counter move, so only then is it rendered at 0.
   */
  sender: boolean;
  /** Per bucket (not cumulative), then sum, then count; allocated on first observation. */
  runtime?: Float64Array;
  queueWait?: Float64Array;
}

interface FailedSeries {
  readonly hostname: string;
  readonly labels: string;
  count: number;
}

export interface TaskSeriesOptions {
  prefix: string;
  runtimeBuckets: readonly number[];
  queueWaitBuckets: readonly number[];
  staticLabels: Readonly<Record<string, string>>;
  /** Label combinations kept; later ones are folded into one overflow combination. */
  maxSeries: number;
  overflowValue: string;
}

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/**
 * hostname → name → queue_name → series: the per-event lookup. Three Map lookups on the strings
 * the event already holds cost less than building (and hashing) one joined key per event, which
 * was a tenth of the event path's CPU and a fifth of its allocations (bench/README.md).
 */
type SeriesIndex = Map<string, Map<string, Map<string, TaskSeries>>>;

export class TaskSeriesStore {
  /** Every series, in creation order: the order they are rendered in. */
  readonly #series = new Set<TaskSeries>();
  readonly #index: SeriesIndex = new Map();
  readonly #failed = new Map<string, FailedSeries>();
  /**
   * Hostname label values task-sent has been counted under. task-sent comes from clients
   * (Celery's anonymous `gen<pid>@host` dispatcher, even inside a worker), counted as `generic`,
   * the client's host or its full name (cardinality.task_sent_hostname), never as a worker's
   * name: a worker's series gets no `sent` line that could never move. Only a label both kinds
   * fold into (the overflow value) is in both. Bounded by the hostname cap.
   */
  readonly #senders = new Set<string>();
  readonly #staticLabels: string;
  readonly #runtimeLe: string[];
  readonly #waitLe: string[];
  /** Combinations refused by the cap (counted in self-telemetry). */
  overflowed = 0;

  constructor(private readonly options: TaskSeriesOptions) {
    this.#staticLabels = Object.entries(options.staticLabels)
      .map(([k, v]) => `,${k}="${escapeLabelValue(v)}"`)
      .join('');
    this.#runtimeLe = [...options.runtimeBuckets.map(formatNumber), '+Inf'];
    this.#waitLe = [...options.queueWaitBuckets.map(formatNumber), '+Inf'];
  }

  #get(name: string, hostname: string, queue: string): TaskSeries {
    return this.#index.get(hostname)?.get(name)?.get(queue) ?? this.#create(name, hostname, queue, true)!;
  }

  /** A new combination; over the cap, the overflow one (counted), or none when `overflow` is false. */
  #create(name: string, hostname: string, queue: string, overflow: boolean): TaskSeries | undefined {
    let s = this.#index.get(hostname)?.get(name)?.get(queue);
    if (s !== undefined) return s;
    const o = this.options.overflowValue;
    if (this.#series.size >= this.options.maxSeries && (name !== o || hostname !== o || queue !== o)) {
      if (!overflow) return undefined;
      this.overflowed++;
      return this.#get(o, o, o);
    }
    s = {
      hostname,
      labels: `name="${escapeLabelValue(name)}",hostname="${escapeLabelValue(hostname)}",queue_name="${escapeLabelValue(queue)}"${this.#staticLabels}`,
      counts: new Float64Array(COUNTER_FAMILIES.length),
      zeroInitialised: false,
      sender: this.#senders.has(hostname),
    };
    this.#series.add(s);
    let byName = this.#index.get(hostname);
    if (byName === undefined) this.#index.set(hostname, (byName = new Map()));
    let byQueue = byName.get(name);
    if (byQueue === undefined) byName.set(name, (byQueue = new Map()));
    byQueue.set(queue, s);
    return s;
  }

  count(family: CounterFamily, name: string, hostname: string, queue: string): void {
    if (family === 'sent' && !this.#senders.has(hostname)) this.#addSender(hostname);
    const s = this.#get(name, hostname, queue);
    s.counts[COUNTER_INDEX[family]]! += 1;
    // task-sent comes from every web server and task creator: not a reason for more series.
    if (!s.zeroInitialised && family !== 'sent') this.#zeroInitialise(s, name, hostname, queue);
  }

  countFailed(name: string, hostname: string, queue: string, exception: string): void {
    // The other families' zeros; no overflow series just for them.
    const s = this.#create(name, hostname, queue, false);
    if (s && !s.zeroInitialised) this.#zeroInitialise(s, name, hostname, queue);
    const failed = this.#failedSeries(name, hostname, queue, exception, true);
    if (failed) failed.count++;
  }

  /** Rare (once per sending hostname label): existing series of that hostname may now count task-sent. */
  #addSender(hostname: string): void {
    this.#senders.add(hostname);
    for (const byQueue of this.#index.get(hostname)?.values() ?? []) for (const s of byQueue.values()) s.sender = true;
  }

  /**
   * Once per series: its failed series with exception="" at 0 (celery-exporter's rule). Within
   * the cap only: a zero folded into the overflow series would tell nothing.
   */
  #zeroInitialise(s: TaskSeries, name: string, hostname: string, queue: string): void {
    s.zeroInitialised = true;
    const o = this.options.overflowValue;
    if (name === o && hostname === o && queue === o) return;
    this.#failedSeries(name, hostname, queue, '', false);
  }

  /** The failed series for these labels; over the cap, the overflow one (or none, for a zero). */
  #failedSeries(name: string, hostname: string, queue: string, exception: string, overflow: boolean): FailedSeries | undefined {
    const key = `${name}\u0000${hostname}\u0000${queue}\u0000${exception}`;
    let s = this.#failed.get(key);
    if (s !== undefined) return s;
    const o = this.options.overflowValue;
    if (this.#failed.size >= this.options.maxSeries && (name !== o || hostname !== o || queue !== o || exception !== o)) {
      if (!overflow) return undefined;
      this.overflowed++;
      return this.#failedSeries(o, o, o, o, true);
    }
    s = {
      hostname,
      labels: `name="${escapeLabelValue(name)}",hostname="${escapeLabelValue(hostname)}",exception="${escapeLabelValue(exception)}",queue_name="${escapeLabelValue(queue)}"${this.#staticLabels}`,
      count: 0,
    };
    this.#failed.set(key, s);
    return s;
  }

  observeRuntime(name: string, hostname: string, queue: string, seconds: number): void {
    const s = this.#get(name, hostname, queue);
    s.runtime ??= new Float64Array(this.options.runtimeBuckets.length + 3);
    observe(s.runtime, this.options.runtimeBuckets, seconds);
  }

  observeQueueWait(name: string, hostname: string, queue: string, seconds: number): void {
    const s = this.#get(name, hostname, queue);
    s.queueWait ??= new Float64Array(this.options.queueWaitBuckets.length + 3);
    observe(s.queueWait, this.options.queueWaitBuckets, seconds);
  }

  removeHostname(hostname: string): void {
    for (const s of this.#series) if (s.hostname === hostname) this.#series.delete(s);
    this.#index.delete(hostname);
    this.#senders.delete(hostname);
    for (const [k, s] of this.#failed) if (s.hostname === hostname) this.#failed.delete(k);
  }

  get size(): number {
    return this.#series.size + this.#failed.size;
  }

  /**
   * Succeeded, failed and retried counts per hostname label, summed over names and queues: the
   * console's history reads it every few seconds (one pass over the series, nothing per event).
   */
  totalsByHostname(): Map<string, { succeeded: number; failed: number; retried: number }> {
    const out = new Map<string, { succeeded: number; failed: number; retried: number }>();
    const totals = (hostname: string) => {
      let t = out.get(hostname);
      if (t === undefined) out.set(hostname, (t = { succeeded: 0, failed: 0, retried: 0 }));
      return t;
    };
    for (const s of this.#series) {
      // Only series a worker event has touched: a client's task-sent series would list the client as a worker.
      if (!s.zeroInitialised) continue;
      const t = totals(s.hostname);
      t.succeeded += s.counts[COUNTER_INDEX.succeeded]!;
      t.retried += s.counts[COUNTER_INDEX.retried]!;
    }
    for (const f of this.#failed.values()) totals(f.hostname).failed += f.count;
    return out;
  }

  /** The families `render()` writes, in its order. */
  get families(): MetricFamily[] {
    const p = this.options.prefix;
    const labels = [...SERIES_LABELS];
    return [
      ...COUNTER_FAMILIES.map((f): MetricFamily => ({
        name: `${p}task_${f}_total`,
        type: 'counter',
        help: HELP[f],
        labels,
        streamed: true,
      })),
      {
        name: `${p}task_failed_total`,
        type: 'counter',
        help: FAILED_HELP,
        labels: ['name', 'hostname', 'exception', 'queue_name'],
        streamed: true,
      },
      { name: `${p}task_runtime`, type: 'histogram', help: RUNTIME_HELP, labels, streamed: true },
      { name: `${p}task_queue_wait_time`, type: 'histogram', help: QUEUE_WAIT_HELP, labels, streamed: true },
    ];
  }

  /**
   * The exposition text in chunks of roughly `chunkBytes`, family by family, so a caller can
   * stream it to the client with backpressure instead of holding it whole.
   */
  *render(chunkBytes = 256 * 1024): Generator<string> {
    const p = this.options.prefix;
    let buf = '';
    const flush = function* (force: boolean): Generator<string> {
      if (buf.length >= chunkBytes || (force && buf.length > 0)) {
        yield buf;
        buf = '';
      }
    };
    for (const family of COUNTER_FAMILIES) {
      const i = COUNTER_INDEX[family];
      const sent = family === 'sent';
      const name = `${p}task_${family}_total`;
      buf += `# HELP ${name} ${HELP[family]}\n# TYPE ${name} counter\n`;
      for (const s of this.#series) {
        const v = s.counts[i]!;
        if (v > 0 || (s.zeroInitialised && (!sent || s.sender))) {
          buf += `${name}{${s.labels}} ${v}\n`;
          yield* flush(false);
        }
      }
    }
    const failed = `${p}task_failed_total`;
    buf += `# HELP ${failed} ${FAILED_HELP}\n# TYPE ${failed} counter\n`;
    for (const s of this.#failed.values()) {
      buf += `${failed}{${s.labels}} ${s.count}\n`;
      yield* flush(false);
    }
    for (const [metric, help, pick, le] of [
      [`${p}task_runtime`, RUNTIME_HELP, (s: TaskSeries) => s.runtime, this.#runtimeLe],
      [`${p}task_queue_wait_time`, QUEUE_WAIT_HELP, (s: TaskSeries) => s.queueWait, this.#waitLe],
    ] as const) {
      buf += `# HELP ${metric} ${help}\n# TYPE ${metric} histogram\n`;
      for (const s of this.#series) {
        const h = pick(s);
        if (h === undefined) continue;
        let cumulative = 0;
        for (let b = 0; b < le.length; b++) {
          cumulative += h[b]!;
          buf += `${metric}_bucket{le="${le[b]}",${s.labels}} ${cumulative}\n`;
        }
        buf += `${metric}_sum{${s.labels}} ${h[le.length]}\n${metric}_count{${s.labels}} ${h[le.length + 1]}\n`;
        yield* flush(false);
      }
    }
    yield* flush(true);
  }
}

/** Layout: [bucket counts..., +Inf count, sum, count]. */
function observe(h: Float64Array, buckets: readonly number[], value: number): void {
  let b = 0;
  while (b < buckets.length && value > buckets[b]!) b++;
  h[b]! += 1;
  h[buckets.length + 1]! += value;
  h[buckets.length + 2]! += 1;
}
