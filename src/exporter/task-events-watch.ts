import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { WorkerRecord, WorkerRegistry } from '../state/workers.js';
import type { BrokerTransport } from '../transport/transport.js';

export interface TaskEventsWatchOptions {
  /** Send `enable_events` (Flower's `--enable-events`, on by default there too). */
  enableEvents: boolean;
  intervalSeconds: number;
  tickMs?: number;
}

/**
 * Workers started without -E send heartbeats but no task events: their task metrics stay
 * empty without a word. Like Flower, this sends `enable_events` to every live worker — a new
 * one within a tick of its first heartbeat, all of them again every `intervalSeconds` (a
 * restarted worker forgets) — always naming them in `destination`, never everyone on the broker.
 * It also notices workers whose heartbeats report processed tasks while none of their task
 * events arrive, and says so once per worker in the log.
 */
export class TaskEventsWatch {
  #timer: NodeJS.Timeout | undefined;
  /** hostname → when enable_events was last sent to it (ms), and to which process. */
  readonly #enabledAt = new Map<string, { at: number; pid: number | undefined }>();
  readonly #reported = new Set<string>();
  /** Live workers without task events at the last tick, for self-telemetry. */
  silentWorkers = 0;
  enableEventsSent = 0;

  constructor(
    private readonly transport: BrokerTransport,
    private readonly workers: WorkerRegistry,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: TaskEventsWatchOptions,
  ) {}

  start(): void {
    this.#timer ??= setInterval(() => this.tick(), this.options.tickMs ?? 1000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  tick(now = this.clock.nowMs()): void {
    const alive = this.workers.alive(now);
    if (this.options.enableEvents) this.#enableEvents(alive, now);
    for (const h of this.#reported) if (this.workers.get(h) === undefined) this.#reported.delete(h); // purged
    const silent = this.workers.withoutTaskEvents(now);
    this.silentWorkers = silent.length;
    for (const w of silent) {
      if (this.#reported.has(w.hostname)) continue;
      this.#reported.add(w.hostname);
      this.logger.warn(
        { hostname: w.hostname, processed: w.processed, enableEvents: this.options.enableEvents },
        this.options.enableEvents
          ? 'worker processes tasks but sends no task events although enable_events was sent (does it ignore remote control?)'
          : 'worker processes tasks but sends no task events: start it with -E, or turn on events.enable_events',
      );
    }
  }

  #enableEvents(alive: WorkerRecord[], now: number): void {
    const live = new Set(alive.map((w) => w.hostname));
    for (const hostname of this.#enabledAt.keys()) if (!live.has(hostname)) this.#enabledAt.delete(hostname);
    const intervalMs = this.options.intervalSeconds * 1000;
    // A restarted worker (same name, new pid) has forgotten: it is due at once.
    const due = alive.filter((w) => {
      const sent = this.#enabledAt.get(w.hostname);
      return sent === undefined || sent.pid !== w.pid || now - sent.at >= intervalMs;
    });
    if (due.length === 0 || !this.transport.isConnected()) return;
    for (const w of due) this.#enabledAt.set(w.hostname, { at: now, pid: w.pid });
    this.enableEventsSent++;
    this.transport
      .broadcast({ method: 'enable_events', arguments: {}, destination: due.map((w) => w.hostname) }, { reply: false, timeoutMs: 0 })
      .catch((e: Error) => this.logger.debug({ err: e.message }, 'enable_events not sent'));
  }
}
