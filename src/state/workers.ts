import type { Clock } from '../clock.js';
import type { WorkerEvent } from '../celery/events.js';
import { parseActiveQueues, parseStats, type InspectReply } from '../celery/worker-replies.js';
import { InspectReplies } from './inspect-replies.js';

/** What we know about one worker: merged event fields plus what `inspect` told us. */
export interface WorkerRecord {
  readonly hostname: string;
  /** Heartbeat interval in seconds, as the worker last announced it. */
  freq: number;
  /** Local receive time (ms) of the last online/heartbeat event: liveness never uses the worker's clock. */
  lastHeartbeatAt?: number;
  /** Sender timestamp (s) of the last offline event, to ignore heartbeats that arrive after it out of order. */
  offlineSentAt?: number;
  /** Local time (ms) the worker stopped being alive, for the purge timer. */
  goneSince?: number;
  active?: number;
  processed?: number;
  loadavg?: readonly number[];
  swVersion?: string;
  pid?: number;
  /** Sender clock minus our clock at the last heartbeat, in seconds (positive = worker ahead). */
  clockSkewSeconds?: number;
  /** From `active_queues`: names of the queues this worker consumes. */
  queues?: readonly string[];
  /** From `stats`: pool processes (prefork/solo) or max-concurrency (threads). */
  processes?: number;
  inspectedAt?: number;
  /** A task event (other than task-sent) has come from this worker since we first saw it. */
  taskEventsSeen?: boolean;
  /** `processed` at the first heartbeat we saw: a rise without task events means no -E. */
  processedBaseline?: number;
  /**
   * Read back from tasks.persist at start and not heard from since: known (the console lists it,
   * down) but never alive and given no metric series until a real event of its own arrives.
   */
  restored?: boolean;
  /** For a restored worker: local time (ms) of the last heartbeat before the restart, shown only. */
  heartbeatBeforeRestartAt?: number;
}

/** The fields of a worker that tasks.persist keeps across a restart (persistence/worker-persistence.ts). */
export type SavedWorker = Pick<
  WorkerRecord,
  'hostname' | 'freq' | 'active' | 'processed' | 'loadavg' | 'swVersion' | 'pid' | 'queues' | 'processes'
> & { lastHeartbeatAt?: number; goneSince?: number };

export interface WorkerRegistryOptions {
  /** Fixed liveness window in seconds; undefined = Celery's rule, 2 × freq. */
  workerTimeoutSeconds?: number;
  purgeAfterSeconds: number;
}

const DEFAULT_FREQ = 2;

/**
 * Worker liveness exactly as celery.events.state has it (last heartbeat *received* + 2 × freq),
 * with two corrections: a `worker-offline` ends it at once, and a heartbeat sent before that
 * offline (delivered late) cannot bring the worker back.
 */
export class WorkerRegistry {
  readonly #workers = new Map<string, WorkerRecord>();
  #sharedRounds = 0;
  /** Every inspect answer as it came, for Flower's /api/workers (control/worker-snapshot.ts). */
  readonly replies = new InspectReplies();

  constructor(
    private readonly clock: Clock,
    private readonly options: WorkerRegistryOptions,
  ) {}

  handle(event: WorkerEvent): void {
    const now = this.clock.nowMs();
    let worker = this.#workers.get(event.hostname);
    if (!worker) {
      worker = { hostname: event.hostname, freq: DEFAULT_FREQ };
      this.#workers.set(event.hostname, worker);
    }
    // A worker's own event replaces whatever the file said about it.
    delete worker.restored;
    delete worker.heartbeatBeforeRestartAt;
    if (event.type === 'worker-offline') {
      worker.offlineSentAt = Number.isFinite(event.timestamp) ? event.timestamp : Number.POSITIVE_INFINITY;
      worker.lastHeartbeatAt = undefined;
      worker.goneSince = now;
      mergeFields(worker, event);
      return;
    }
    if (worker.offlineSentAt !== undefined) {
      // Only a heartbeat sent after the offline (a restart under the same name) revives it.
      if (!(event.timestamp > worker.offlineSentAt)) return;
      worker.offlineSentAt = undefined;
    }
    mergeFields(worker, event);
    worker.processedBaseline ??= worker.processed;
    worker.lastHeartbeatAt = now;
    worker.goneSince = undefined;
    if (Number.isFinite(event.timestamp)) worker.clockSkewSeconds = event.timestamp - now / 1000;
  }

  /**
   * Puts back a worker read from persistence, before any event arrives: without a heartbeat time,
   * so it is not alive whatever the file says, and gone since it stopped heartbeating, so the purge
   * period counts from then, as if the service had kept running.
   */
  restore(saved: SavedWorker): void {
    if (this.#workers.has(saved.hostname)) return;
    const { lastHeartbeatAt, goneSince, ...fields } = saved;
    const windowMs = (this.options.workerTimeoutSeconds ?? saved.freq * 2) * 1000;
    this.#workers.set(saved.hostname, {
      ...fields,
      restored: true,
      ...(lastHeartbeatAt !== undefined ? { heartbeatBeforeRestartAt: lastHeartbeatAt } : {}),
      goneSince: goneSince ?? (lastHeartbeatAt !== undefined ? lastHeartbeatAt + windowMs : this.clock.nowMs()),
    });
  }

  /** Celery's `Worker.alive`, with our optional fixed window. */
  isAlive(worker: WorkerRecord, now = this.clock.nowMs()): boolean {
    if (worker.lastHeartbeatAt === undefined) return false;
    const windowSeconds = this.options.workerTimeoutSeconds ?? worker.freq * 2;
    return now < worker.lastHeartbeatAt + windowSeconds * 1000;
  }

  get(hostname: string): WorkerRecord | undefined {
    return this.#workers.get(hostname);
  }

  all(): IterableIterator<WorkerRecord> {
    return this.#workers.values();
  }

  alive(now = this.clock.nowMs()): WorkerRecord[] {
    return [...this.#workers.values()].filter((w) => this.isAlive(w, now));
  }

  get size(): number {
    return this.#workers.size;
  }

  /** Called for every task event a worker sends (not task-sent, which comes from clients). */
  noteTaskEvent(hostname: string): void {
    const worker = this.#workers.get(hostname);
    if (worker !== undefined && worker.taskEventsSeen !== true) worker.taskEventsSeen = true;
  }

  /**
   * Live workers whose heartbeats say they processed tasks while no task event of theirs ever
   * came: started without -E (and not, or not yet, switched on by enable_events).
   */
  withoutTaskEvents(now = this.clock.nowMs()): WorkerRecord[] {
    return this.alive(now).filter(
      (w) =>
        w.taskEventsSeen !== true && w.processed !== undefined && w.processedBaseline !== undefined && w.processed > w.processedBaseline,
    );
  }

  /**
   * The live workers consuming `queue` (as `active_queues` last told us): the one answer to
   * "who drains this queue" for the per-queue gauges, remediation targets and the control API.
   */
  consumersOf(queue: string, now = this.clock.nowMs()): WorkerRecord[] {
    return this.alive(now).filter((w) => w.queues?.includes(queue) === true);
  }

  /** Records what `inspect active_queues` / `stats` returned for a worker we already know. */
  recordInspection(hostname: string, info: { queues?: readonly string[]; processes?: number }): void {
    const worker = this.#workers.get(hostname);
    if (!worker) return;
    if (info.queues) worker.queues = info.queues;
    if (info.processes !== undefined) worker.processes = info.processes;
    worker.inspectedAt = this.clock.nowMs();
  }

  /**
   * An inspect round's answers, whoever asked: the inspector's own rounds and the workers
   * snapshot's. The one place they land: all of them in `replies` (Flower's view; `list` for a
   * snapshot round's, which lists the workers there), and `active_queues` and `stats` in the
   * workers' records, so a worker the snapshot just inspected is not asked again by the
   * inspector. Workers read back from the file and not heard from since keep their records as
   * they are. Returns the workers whose queue list was readable.
   */
  recordReplies(replies: readonly InspectReply[], options: { list?: boolean } = {}): Set<string> {
    this.replies.record(replies, this.clock.nowMs(), options.list === true);
    const answered = new Set<string>();
    for (const r of replies) {
      if (this.#workers.get(r.worker)?.restored) continue;
      if (r.method === 'active_queues') {
        const queues = parseActiveQueues(r.value);
        if (!queues) continue;
        this.recordInspection(r.worker, { queues });
        answered.add(r.worker);
      } else if (r.method === 'stats') {
        const processes = parseStats(r.value)?.concurrency;
        if (processes !== undefined) this.recordInspection(r.worker, { processes });
      }
    }
    return answered;
  }

  /**
   * Forced rounds of the workers snapshot under way (all eight methods): the inspector waits for
   * their answers rather than asking the same workers the same thing at the same moment.
   */
  get sharedRoundsUnderway(): boolean {
    return this.#sharedRounds > 0;
  }

  /** Marks a snapshot round as under way until it settles (see sharedRoundsUnderway). */
  async sharedRound<T>(round: Promise<T>): Promise<T> {
    this.#sharedRounds++;
    try {
      return await round;
    } finally {
      this.#sharedRounds--;
    }
  }

  /** After a command that changes queues or pool size: inspect this worker again on the next tick. */
  markStale(hostname: string): void {
    const worker = this.#workers.get(hostname);
    if (worker) worker.inspectedAt = undefined;
  }

  /**
   * The queue a task from this worker came from, when that can be known without the task-sent
   * event: a worker consuming exactly one queue. (Celery 5.2 task-received carries no routing.)
   */
  soleQueue(hostname: string): string | undefined {
    const queues = this.#workers.get(hostname)?.queues;
    return queues && queues.length === 1 ? queues[0] : undefined;
  }

  /**
   * Removes workers that have not been alive for the purge period; returns their hostnames so
   * their metric series can be removed too.
   */
  purge(now = this.clock.nowMs()): string[] {
    const purged: string[] = [];
    for (const worker of this.#workers.values()) {
      if (this.isAlive(worker, now)) continue;
      if (worker.goneSince === undefined) {
        const windowSeconds = this.options.workerTimeoutSeconds ?? worker.freq * 2;
        worker.goneSince = worker.lastHeartbeatAt !== undefined ? worker.lastHeartbeatAt + windowSeconds * 1000 : now;
      }
      if (now - worker.goneSince >= this.options.purgeAfterSeconds * 1000) {
        this.#workers.delete(worker.hostname);
        purged.push(worker.hostname);
      }
    }
    return purged;
  }
}

/** Merge, never replace: the freq=5 wake-up heartbeat has no active/processed/loadavg (§A6). */
function mergeFields(worker: WorkerRecord, event: WorkerEvent): void {
  if (typeof event.freq === 'number' && event.freq > 0) worker.freq = event.freq;
  if (typeof event.active === 'number') worker.active = event.active;
  if (typeof event.processed === 'number') worker.processed = event.processed;
  if (Array.isArray(event.loadavg)) worker.loadavg = event.loadavg;
  if (typeof event.sw_ver === 'string') worker.swVersion = event.sw_ver;
  if (typeof event.pid === 'number') worker.pid = event.pid;
}
