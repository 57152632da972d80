import type { TaskEventType } from '../celery/events.js';

/** What the exporter remembers about one in-flight task, for metrics (the API's task history is tasks/task-history.ts). */
export interface InFlightTask {
  name?: string;
  queue?: string;
  /** Sender timestamp (s) of task-sent, for queue wait. */
  sentAt?: number;
  /** Our clock (ms) when task-sent arrived: the age of a message still waiting in the broker. */
  sentSeenAt?: number;
  /** ETA (s) from task-sent/received: queue wait starts at max(sent, eta). */
  etaAt?: number;
  /** Worker timestamp (s) of task-started and who started it, for when task-sent arrives later. */
  startedAt?: number;
  startedBy?: string;
  queueWaitObserved?: boolean;
  retries: number;
  /** Bit per event type already counted for the current attempt (see `markSeen`). */
  seen: number;
  /** Bit per attempt (retries value) whose task-sent was counted. */
  sentAttempts: number;
}

const BIT: Record<TaskEventType, number> = {
  'task-sent': 1,
  'task-received': 2,
  'task-started': 4,
  'task-succeeded': 8,
  'task-failed': 16,
  'task-retried': 32,
  'task-revoked': 64,
  'task-rejected': 128,
  'task-cancelled': 256,
};

/**
 * In-flight tasks in a bounded map (oldest inserted evicted first). Task events after
 * task-received carry only the uuid, so name and queue come from here; the seen-bits make a
 * replayed event count once. A retry (task-received with a higher `retries`) starts a new attempt.
 */
export class InFlightTasks {
  readonly #tasks = new Map<string, InFlightTask>();
  evictions = 0;

  constructor(private readonly capacity: number) {}

  get(uuid: string): InFlightTask | undefined {
    return this.#tasks.get(uuid);
  }

  getOrCreate(uuid: string): InFlightTask {
    let task = this.#tasks.get(uuid);
    if (task === undefined) {
      if (this.#tasks.size >= this.capacity) {
        const oldest = this.#tasks.keys().next().value;
        if (oldest !== undefined) {
          this.#tasks.delete(oldest);
          this.evictions++;
        }
      }
      task = { retries: 0, seen: 0, sentAttempts: 0 };
      this.#tasks.set(uuid, task);
    }
    return task;
  }

  /**
   * Marks `type` as seen for the task's current attempt; false if it was already seen (a
   * duplicate delivery) and must not be counted again.
   */
  markSeen(task: InFlightTask, type: TaskEventType, retries?: number): boolean {
    if (type === 'task-sent') {
      // The client's task-sent travels on its own connection and can arrive after the worker has
      // already retried the task: judged by its own attempt number, never as a stale replay.
      const bit = 2 ** Math.min(typeof retries === 'number' && retries >= 0 ? retries : 0, 30);
      if (task.sentAttempts & bit) return false;
      task.sentAttempts |= bit;
      return true;
    }
    if (typeof retries === 'number') {
      // task-received carries `retries`: a higher value is the next attempt of the same uuid
      // (after task-retried), so every state counts again; a lower one is a stale replay.
      if (retries < task.retries) return false;
      if (retries > task.retries) {
        task.retries = retries;
        task.seen = 0;
        task.startedAt = undefined;
        task.startedBy = undefined;
        task.queueWaitObserved = false;
      }
    }
    const bit = BIT[type];
    if (task.seen & bit) return false;
    task.seen |= bit;
    return true;
  }

  get size(): number {
    return this.#tasks.size;
  }

  /**
   * Per queue, tasks a worker has received but not started (prefetched: unacknowledged messages
   * the broker no longer counts as waiting) and tasks running. Read by the console every few
   * seconds, not per event: one pass over the map. A task whose final event was lost counts
   * until it is evicted.
   */
  openByQueue(defaultQueue: string): Map<string, { reserved: number; running: number }> {
    const out = new Map<string, { reserved: number; running: number }>();
    for (const t of this.#tasks.values()) {
      if (!(t.seen & BIT['task-received']) || t.seen & DONE) continue;
      const queue = t.queue ?? defaultQueue;
      let counts = out.get(queue);
      if (counts === undefined) out.set(queue, (counts = { reserved: 0, running: 0 }));
      if (t.seen & BIT['task-started']) counts.running++;
      else counts.reserved++;
    }
    return out;
  }
}

/** Events after which an attempt holds no message: it finished, was retried (a new message), revoked or rejected. */
const DONE = BIT['task-succeeded'] | BIT['task-failed'] | BIT['task-retried'] | BIT['task-revoked'] | BIT['task-rejected'];
