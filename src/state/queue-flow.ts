/**
 * How fast work comes into and goes out of each queue, over a sliding window of one-second
 * buckets: arrivals (task-sent when clients send it, else task-received), completions
 * (task-succeeded and task-failed) and the runtimes of the tasks that succeeded. From these and
 * a queue's length come the autoscaling signals (README "Metrics"):
 *
 *   time to drain       = length ÷ completion rate            (+Inf with a backlog and no completion)
 *   processes needed    = arrival rate × mean runtime         (Little's law: L = λ × W)
 *
 * O(1) per event; memory is a fixed ring per queue.
 */

interface Ring {
  /** Second (epoch) each slot holds; a slot of an older second is stale and counts as empty. */
  readonly second: Float64Array;
  readonly sent: Float64Array;
  readonly received: Float64Array;
  readonly completed: Float64Array;
  readonly runtimeSum: Float64Array;
  readonly runtimeCount: Float64Array;
  /** When this queue was first seen (ms): the rate of a queue seen 10 s ago is over 10 s, not the window. */
  readonly since: number;
}

export interface QueueRates {
  /** Tasks per second into the queue. */
  arrivalRate: number;
  /** Where arrivals were counted from. */
  arrivals: 'task-sent' | 'task-received';
  /** Tasks per second finished (succeeded or failed). */
  completionRate: number;
  /** Mean runtime (s) of the tasks that succeeded in the window; undefined if none did. */
  meanRuntime: number | undefined;
}

type Counter = 'sent' | 'received' | 'completed';

export class QueueFlow {
  readonly #rings = new Map<string, Ring>();

  constructor(
    private readonly now: () => number,
    private readonly windowSeconds: number,
    /** Queues tracked at most (cardinality.max_queues): later ones are not. */
    private readonly maxQueues: number,
  ) {}

  sent(queue: string): void {
    this.#add(queue, 'sent');
  }

  received(queue: string): void {
    this.#add(queue, 'received');
  }

  /** A task finished; `runtime` (s) for one that succeeded. */
  completed(queue: string, runtime?: number): void {
    const slot = this.#add(queue, 'completed');
    if (slot !== undefined && runtime !== undefined && Number.isFinite(runtime) && runtime >= 0) {
      const ring = this.#rings.get(queue)!;
      ring.runtimeSum[slot]! += runtime;
      ring.runtimeCount[slot]! += 1;
    }
  }

  /** The rates over the window ending now; undefined for a queue never seen. */
  rates(queue: string, nowMs = this.now()): QueueRates | undefined {
    const ring = this.#rings.get(queue);
    if (!ring) return undefined;
    const second = Math.floor(nowMs / 1000);
    const oldest = second - this.windowSeconds + 1;
    let sent = 0;
    let received = 0;
    let completed = 0;
    let runtimeSum = 0;
    let runtimeCount = 0;
    for (let i = 0; i < this.windowSeconds; i++) {
      if (ring.second[i]! < oldest || ring.second[i]! > second) continue;
      sent += ring.sent[i]!;
      received += ring.received[i]!;
      completed += ring.completed[i]!;
      runtimeSum += ring.runtimeSum[i]!;
      runtimeCount += ring.runtimeCount[i]!;
    }
    // Over the time actually observed, at least a second, at most the window.
    const span = Math.min(this.windowSeconds, Math.max(1, (nowMs - ring.since) / 1000));
    const bySent = sent > 0;
    return {
      arrivalRate: (bySent ? sent : received) / span,
      arrivals: bySent ? 'task-sent' : 'task-received',
      completionRate: completed / span,
      meanRuntime: runtimeCount > 0 ? runtimeSum / runtimeCount : undefined,
    };
  }

  #add(queue: string, counter: Counter): number | undefined {
    const nowMs = this.now();
    let ring = this.#rings.get(queue);
    if (!ring) {
      if (this.#rings.size >= this.maxQueues) return undefined;
      const n = this.windowSeconds;
      ring = {
        second: new Float64Array(n).fill(-1),
        sent: new Float64Array(n),
        received: new Float64Array(n),
        completed: new Float64Array(n),
        runtimeSum: new Float64Array(n),
        runtimeCount: new Float64Array(n),
        since: nowMs,
      };
      this.#rings.set(queue, ring);
    }
    const second = Math.floor(nowMs / 1000);
    const slot = second % this.windowSeconds;
    if (ring.second[slot] !== second) {
      ring.second[slot] = second;
      ring.sent[slot] = 0;
      ring.received[slot] = 0;
      ring.completed[slot] = 0;
      ring.runtimeSum[slot] = 0;
      ring.runtimeCount[slot] = 0;
    }
    ring[counter][slot]! += 1;
    return slot;
  }
}

/** length ÷ completion rate: 0 for an empty queue, +Inf for a backlog nothing completes from. */
export function timeToDrain(length: number, rates: QueueRates | undefined): number {
  if (length <= 0) return 0;
  const rate = rates?.completionRate ?? 0;
  return rate > 0 ? length / rate : Infinity;
}

/** arrival rate × mean runtime (Little's law); undefined until a runtime has been seen. */
export function processesNeeded(rates: QueueRates | undefined): number | undefined {
  if (!rates || rates.meanRuntime === undefined) return undefined;
  return rates.arrivalRate * rates.meanRuntime;
}
