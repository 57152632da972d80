import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { BrokerTransport, ControlReply } from '../transport/transport.js';

export interface InspectOutcomeSink {
  (outcome: 'ok' | 'partial' | 'failed'): void;
}

/**
 * Asks live workers which queues they consume (`active_queues`) and how many pool processes they
 * run (`stats`), always naming them in `destination`: queue discovery, the queue_name of tasks
 * from single-queue workers, and the per-queue worker/process gauges come from here. New workers
 * are asked within a tick of their first heartbeat; known ones every `intervalSeconds` since
 * their last answer — to this loop or to a forced workers-snapshot round
 * (control/worker-snapshot.ts). The one periodic sender of these two methods to live workers:
 * the snapshot's background round leaves them out for those workers. Every answer goes through
 * WorkerRegistry.recordReplies, into the workers' records and the reply store Flower's
 * /api/workers shows.
 */
export class WorkerInspector {
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** Workers to inspect ahead of their interval, with the times they are due at. */
  readonly #refreshAt = new Map<string, number[]>();
  /** A pass serving refresh() is running (its requests may still be on their way). */
  #refreshing = false;

  constructor(
    private readonly transport: BrokerTransport,
    private readonly workers: WorkerRegistry,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: { intervalSeconds: number; timeoutMs: number; tickMs?: number; refreshFollowUpMs?: number },
    private readonly outcome: InspectOutcomeSink = () => undefined,
  ) {}

  start(): void {
    this.#timer ??= setInterval(() => this.#tickDetached(), this.options.tickMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Inspects this worker now rather than at its interval, and once more after the pool's 5 s
   * maintain tick: after a pool or consumer change, whoever made it, the process and queue
   * figures would otherwise stay stale for up to the interval (pool processes appear on that
   * tick, docs/wire-protocol.md §B5).
   */
  refresh(hostname: string): void {
    const now = this.clock.nowMs();
    this.#refreshAt.set(hostname, [now, now + (this.options.refreshFollowUpMs ?? 6000)]);
    this.#tickDetached();
  }

  /** tick() reports its own failures; this catch is for an outcome sink that throws. */
  #tickDetached(): void {
    this.tick().catch((e: unknown) => this.logger.error({ err: String(e) }, 'worker inspection tick failed'));
  }

  /** Re-inspections asked for by refresh() and not done yet. */
  get pendingRefreshes(): number {
    let n = 0;
    for (const times of this.#refreshAt.values()) n += times.length;
    return n + (this.#refreshing ? 1 : 0);
  }

  /** One pass: inspect every live worker that was never inspected, is due again or was asked for. */
  async tick(): Promise<void> {
    // A forced workers-snapshot round under way asks every worker the same two things: its
    // answers, recorded in the registry, make those workers not due (see WorkerRegistry.recordReplies).
    if (this.#running || this.workers.sharedRoundsUnderway || !this.transport.isConnected()) return;
    const now = this.clock.nowMs();
    const asked = (hostname: string) => (this.#refreshAt.get(hostname)?.[0] ?? Infinity) <= now;
    const due = this.workers
      .alive(now)
      .filter((w) => w.inspectedAt === undefined || now - w.inspectedAt >= this.options.intervalSeconds * 1000 || asked(w.hostname))
      .map((w) => w.hostname);
    // Times that have come are served by this pass (or dropped: a worker gone meanwhile).
    let served = false;
    for (const [hostname, times] of this.#refreshAt) {
      const left = times.filter((t) => t > now);
      served ||= left.length < times.length;
      if (left.length > 0) this.#refreshAt.set(hostname, left);
      else this.#refreshAt.delete(hostname);
    }
    if (due.length === 0) return;
    this.#running = true;
    this.#refreshing = served;
    try {
      const [queues, stats] = await Promise.all([this.#ask('active_queues', due), this.#ask('stats', due)]);
      const answered = this.workers.recordReplies([
        ...queues.map((r) => ({ ...r, method: 'active_queues' })),
        ...stats.map((r) => ({ ...r, method: 'stats' })),
      ]);
      this.outcome(answered.size === due.length ? 'ok' : answered.size > 0 ? 'partial' : 'failed');
    } catch (e) {
      this.outcome('failed');
      this.logger.debug({ err: (e as Error).message }, 'worker inspection failed');
    } finally {
      this.#running = false;
      this.#refreshing = false;
    }
  }

  #ask(method: string, destination: string[]): Promise<ControlReply[]> {
    return this.transport.broadcast({ method, arguments: {}, destination }, { reply: true, timeoutMs: this.options.timeoutMs });
  }
}

/**
 * Celery's EventReceiver wake-up, sent on each (re)subscription: every worker answers with a
 * heartbeat at once, so liveness is known within a round trip, not after a heartbeat period.
 */
export function wakeUpWorkers(transport: BrokerTransport, logger: Logger): void {
  transport
    .broadcast({ method: 'heartbeat', arguments: {}, destination: null }, { reply: false, timeoutMs: 0 })
    .catch((e: Error) => logger.debug({ err: e.message }, 'heartbeat wake-up not sent'));
}
