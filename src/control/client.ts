/**
 * Remote control of Celery workers over the pidbox, on top of one BrokerTransport.
 *
 * API (stable; the HTTP layer builds on it):
 *
 *   type Targets = { workers: string[] } | { pattern: string } | { all: true };
 *
 *   new ControlClient(transport, { timeoutMs, confirmTimeoutMs?, confirmIntervalMs?, clock?, sleep? }, observe?)
 *   client.run(command, rawArgs, targets, { timeoutMs?, confirm?, dryRun? }): Promise<ControlResult>
 *     - throws CommandValidationError (→ 400) for an unknown command, bad arguments, bad targets
 *       or an empty destination; throws BrokerUnavailableError (→ 503) when the broker is down
 *       (nothing was sent, and nothing is queued to be sent later).
 *   client.ping(workers, timeoutMs?): Promise<Map<worker, boolean>>: who answers right now.
 *   prepareCommand(command, rawArgs) (commands.ts): validation and required role without sending.
 *
 * Results, one per worker:
 *   - `ok` (reply = the worker's answer, message = its "ok" text if any),
 *   - `error` (kind = unsupported_pool | autoscale_enabled | autoscale_disabled |
 *     pool_restarts_disabled | unknown_task | invalid_rate_limit | unknown_command | pool_busy |
 *     pool_floor (a shrink that would go below `keepProcesses`: nothing sent) | worker_error,
 *     message = plain words, reply = the raw `{"error": ...}`),
 *   - `no_reply` (a named worker did not answer within the idle timeout; never retried),
 *   - `sent` (shutdown: a cast that workers never answer),
 *   - `dry_run` (nothing published; one entry per named worker).
 * Named workers always each get an entry, in the order given. Pattern and all-workers targets
 * only list workers that answered: nobody knows who should have, so there is no `no_reply`
 * (and a dry run or a shutdown by pattern lists nobody).
 *
 * With `confirm: true`, commands whose effect is observable are followed by bounded polling of a
 * read-only command (pool_grow/pool_shrink: stats pool processes, autoscale: stats autoscaler,
 * add_consumer/cancel_consumer: active_queues, rate_limit/time_limit: registered, revoke:
 * revoked, shutdown: ping stops answering). `confirmed` is then true/false per accepted worker,
 * null where there is nothing to observe (pool_restart, reads, failed or unanswered workers).
 *
 * pool_shrink reads each target's live pool (stats) first and sends at most live − keepProcesses
 * (default 1) to each: results carry `before` and `after` (shrink.ts says why).
 *
 * `observe(command, outcome, result?)` is called exactly once per `run`, for metrics and audit.
 */
import { systemClock, type Clock } from '../clock.js';
import { BrokerUnavailableError, type BrokerTransport, type ControlRequest } from '../transport/transport.js';
import {
  COMMANDS,
  isCommandName,
  prepareCommand,
  type CommandName,
  type PreparedCommand,
  type Role,
  type WireArguments,
} from './commands.js';
import { confirmEffects, readBaselines, type ConfirmOutcome } from './confirm.js';
import { mapReply } from './replies.js';
import type { WorkerResult } from './results.js';
import { DEFAULT_KEEP_PROCESSES, MAX_KEEP_PROCESSES, planShrink } from './shrink.js';
import {
  CommandValidationError,
  MAX_WORKERS_PER_COMMAND,
  validateInteger,
  validateList,
  validateObject,
  validateWorkerName,
  validateWorkerPattern,
} from '../celery/validators.js';

export type Targets = { readonly workers: readonly string[] } | { readonly pattern: string } | { readonly all: true };

export interface RunOptions {
  /** Idle reply timeout for this command; defaults to the client's. */
  readonly timeoutMs?: number;
  /** Poll until the effect shows (bounded), where it can be observed. */
  readonly confirm?: boolean;
  /** Validate and report what would be sent; publish nothing. */
  readonly dryRun?: boolean;
  /**
   * pool_shrink only: processes each worker keeps at least (default 1). n is cut to the live
   * count minus this, so 0 (an empty pool) happens only when a request asks for it.
   */
  readonly keepProcesses?: number;
}

export { answeredCommand, type WorkerResult, type WorkerStatus } from './results.js';

/** The run's outcome as counted in metrics: one per `run` call. */
export type ControlOutcome =
  | 'ok' // every result ok
  | 'partial' // some ok, some error or no_reply
  | 'error' // none ok, at least one error
  | 'no_reply' // nobody answered
  | 'sent' // a cast (shutdown)
  | 'dry_run'
  | 'invalid' // refused locally, nothing sent
  | 'broker_unavailable' // nothing sent
  | 'failed'; // unexpected failure while sending

export interface ControlResult {
  readonly command: CommandName;
  /** Exactly the pidbox `arguments` sent (or that would be sent). */
  readonly arguments: WireArguments;
  /** The node names sent as `destination`; null for pattern and all-workers targets. */
  readonly destination: readonly string[] | null;
  readonly pattern?: string;
  /** The least role this command with these arguments needs (the caller enforces it). */
  readonly role: Role;
  readonly dryRun: boolean;
  /** pool_shrink: the processes each worker was left at least. */
  readonly keepProcesses?: number;
  readonly outcome: ControlOutcome;
  readonly results: readonly WorkerResult[];
}

/** Commands are counted under their name; anything else under `unknown`, bounding the label. */
export type ControlObserver = (command: CommandName | 'unknown', outcome: ControlOutcome, result?: ControlResult) => void;

export interface ControlClientOptions {
  /** Default idle reply timeout (kombu's is 1 s). */
  readonly timeoutMs: number;
  /** Bound of confirmation polling; pool processes appear on the pool's 5 s maintenance tick. */
  readonly confirmTimeoutMs?: number;
  readonly confirmIntervalMs?: number;
  readonly clock?: Clock;
  readonly sleep?: (ms: number) => Promise<void>;
}

export const MIN_TIMEOUT_MS = 50;
export const MAX_TIMEOUT_MS = 60_000;
const DEFAULT_CONFIRM_TIMEOUT_MS = 8000;
const DEFAULT_CONFIRM_INTERVAL_MS = 500;

/** Validated targets as they go on the wire. */
interface Addressing {
  readonly destination: string[] | null;
  readonly pattern?: string;
}

/**
 * Targets → wire addressing. An empty or missing destination is refused: `destination: null`
 * reaches every worker on the vhost, so that must be asked for with `{ all: true }`.
 */
export function validateTargets(targets: unknown): Addressing {
  const t = validateObject(targets, 'targets', ['workers', 'pattern', 'all']);
  const given = (['workers', 'pattern', 'all'] as const).filter((k) => t[k] !== undefined);
  if (given.length === 0)
    throw new CommandValidationError('name the workers (workers or pattern), or ask for all workers explicitly', 'targets');
  if (given.length > 1) throw new CommandValidationError(`give only one of workers, pattern, all (got ${given.join(', ')})`, 'targets');
  if (t.all !== undefined) {
    if (t.all !== true) throw new CommandValidationError('must be true to address every worker', 'all');
    return { destination: null };
  }
  if (t.pattern !== undefined) return { destination: null, pattern: validateWorkerPattern(t.pattern) };
  if (Array.isArray(t.workers) && t.workers.length === 0) throw new CommandValidationError('must name at least one worker', 'workers');
  return { destination: validateList(t.workers, 'workers', MAX_WORKERS_PER_COMMAND, validateWorkerName) };
}

function validateTimeout(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_TIMEOUT_MS || value > MAX_TIMEOUT_MS) {
    throw new CommandValidationError(`must be an integer number of milliseconds from ${MIN_TIMEOUT_MS} to ${MAX_TIMEOUT_MS}`, 'timeoutMs');
  }
  return value;
}

function overallOutcome(results: readonly WorkerResult[]): ControlOutcome {
  const ok = results.filter((r) => r.status === 'ok').length;
  if (results.length > 0 && ok === results.length) return 'ok';
  if (ok > 0) return 'partial';
  return results.some((r) => r.status === 'error') ? 'error' : 'no_reply';
}

const realSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class ControlClient {
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #confirmTimeoutMs: number;
  readonly #confirmIntervalMs: number;

  constructor(
    private readonly transport: BrokerTransport,
    options: ControlClientOptions,
    private readonly observe: ControlObserver = () => undefined,
  ) {
    this.#timeoutMs = validateTimeout(options.timeoutMs);
    this.#clock = options.clock ?? systemClock;
    this.#sleep = options.sleep ?? realSleep;
    this.#confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS;
    this.#confirmIntervalMs = options.confirmIntervalMs ?? DEFAULT_CONFIRM_INTERVAL_MS;
  }

  /** `command` may come already prepared (the HTTP layer validates before its role check): it is not validated twice. */
  async run(command: string | PreparedCommand, rawArgs: unknown, targets: Targets, opts: RunOptions = {}): Promise<ControlResult> {
    const label = typeof command !== 'string' ? command.definition.name : isCommandName(command) ? command : 'unknown';
    let prepared: PreparedCommand;
    let addressing: Addressing;
    let timeoutMs: number;
    try {
      prepared = typeof command === 'string' ? prepareCommand(command, rawArgs) : command;
      addressing = validateTargets(targets);
      timeoutMs = opts.timeoutMs === undefined ? this.#timeoutMs : validateTimeout(opts.timeoutMs);
      if (opts.keepProcesses !== undefined) validateInteger(opts.keepProcesses, 'keep_processes', 0, MAX_KEEP_PROCESSES);
    } catch (error) {
      this.observe(label, 'invalid');
      throw error;
    }
    const { definition, arguments: args, role } = prepared;
    const base = {
      command: definition.name,
      arguments: args,
      destination: addressing.destination,
      ...(addressing.pattern ? { pattern: addressing.pattern } : {}),
      role,
    };

    if (opts.dryRun) {
      const results = (addressing.destination ?? []).map((worker): WorkerResult => ({ worker, status: 'dry_run' }));
      return this.#finish({ ...base, dryRun: true, outcome: 'dry_run', results });
    }

    const targeting: Pick<ControlRequest, 'destination' | 'pattern' | 'matcher'> = addressing.pattern
      ? { destination: null, pattern: addressing.pattern, matcher: 'glob' }
      : { destination: addressing.destination };
    const confirmation = opts.confirm ? definition.confirmation : undefined;
    try {
      if (definition.name === 'pool_shrink') {
        const results = await this.#shrink(args, targeting, addressing.destination, timeoutMs, opts);
        const keepProcesses = opts.keepProcesses ?? DEFAULT_KEEP_PROCESSES;
        return this.#finish({ ...base, dryRun: false, keepProcesses, outcome: overallOutcome(results), results });
      }
      const baselines = confirmation ? await readBaselines(this.transport, confirmation, args, targeting, timeoutMs) : undefined;
      const replies = await this.transport.broadcast(
        { method: definition.name, arguments: args, ...targeting },
        { reply: definition.reply, timeoutMs },
      );

      let results: WorkerResult[];
      if (!definition.reply) {
        results = (addressing.destination ?? []).map((worker) => ({ worker, status: 'sent' }));
      } else {
        const answered = new Map<string, unknown>();
        // A second process using the same node name answers too; the first answer counts.
        for (const r of replies) if (!answered.has(r.worker)) answered.set(r.worker, r.value);
        const workers = addressing.destination ?? [...answered.keys()].sort();
        results = workers.map((worker): WorkerResult => {
          if (!answered.has(worker)) return { worker, status: 'no_reply', message: `no reply within ${timeoutMs} ms` };
          return { worker, ...mapReply(definition.name, answered.get(worker)) };
        });
      }

      if (opts.confirm) results = await this.#confirm(results, args, confirmation, baselines, timeoutMs);
      const outcome = definition.reply ? overallOutcome(results) : 'sent';
      return this.#finish({ ...base, dryRun: false, outcome, results });
    } catch (error) {
      this.observe(definition.name, error instanceof BrokerUnavailableError ? 'broker_unavailable' : 'failed');
      throw error;
    }
  }

  /**
   * pool_shrink, bounded per worker by its live pool (shrink.ts): stats first, then one command
   * per distinct n, each naming its workers. Every result says before → after.
   */
  async #shrink(
    args: WireArguments,
    targeting: Pick<ControlRequest, 'destination' | 'pattern' | 'matcher'>,
    named: readonly string[] | null,
    timeoutMs: number,
    opts: RunOptions,
  ): Promise<WorkerResult[]> {
    const keep = opts.keepProcesses ?? DEFAULT_KEEP_PROCESSES;
    const plan = await planShrink(this.transport, targeting, named, args.n as number, keep, timeoutMs);
    const byWorker = new Map<string, WorkerResult>(plan.refused.map((r) => [r.worker, opts.confirm ? { ...r, confirmed: null } : r]));
    for (const [n, workers] of plan.groups) {
      const sent = { n };
      const replies = await this.transport.broadcast(
        { method: 'pool_shrink', arguments: sent, destination: workers },
        { reply: true, timeoutMs },
      );
      const answered = new Map<string, unknown>();
      for (const r of replies) if (!answered.has(r.worker)) answered.set(r.worker, r.value);
      let results = workers.map((worker): WorkerResult => {
        const before = plan.before.get(worker)!.processes;
        if (!answered.has(worker)) return { worker, status: 'no_reply', message: `no reply within ${timeoutMs} ms`, before };
        const mapped = mapReply('pool_shrink', answered.get(worker));
        // An error reply can still follow removed processes (billiard counts down before it
        // complains): only a success says where the pool is heading.
        return { worker, ...mapped, before, ...(mapped.status === 'ok' ? { after: before - n } : {}) };
      });
      if (opts.confirm) {
        const baselines = new Map(workers.map((w) => [w, plan.before.get(w)!.processes]));
        const confirmation = COMMANDS.get('pool_shrink')!.confirmation;
        results = await this.#confirm(results, sent, confirmation, baselines, timeoutMs);
      }
      for (const r of results) byWorker.set(r.worker, r);
    }
    const order = named ?? [...byWorker.keys()].sort();
    return order.map((w) => byWorker.get(w)!);
  }

  /** Asks the named workers for a pong now: true for each that answered within the timeout. */
  async ping(workers: readonly string[], timeoutMs?: number): Promise<Map<string, boolean>> {
    const names = workers.length === 0 ? [] : validateList(workers, 'workers', MAX_WORKERS_PER_COMMAND, validateWorkerName);
    const alive = new Map(names.map((name) => [name, false]));
    if (names.length === 0) return alive;
    const timeout = timeoutMs === undefined ? this.#timeoutMs : validateTimeout(timeoutMs);
    const replies = await this.transport.broadcast(
      { method: 'ping', arguments: {}, destination: names },
      { reply: true, timeoutMs: timeout },
    );
    for (const r of replies) if (alive.has(r.worker)) alive.set(r.worker, true);
    return alive;
  }

  async #confirm(
    results: WorkerResult[],
    args: WireArguments,
    confirmation: Parameters<typeof confirmEffects>[1] | undefined,
    baselines: Map<string, number | undefined> | undefined,
    timeoutMs: number,
  ): Promise<WorkerResult[]> {
    const accepted = results.filter((r) => r.status === 'ok' || r.status === 'sent').map((r) => r.worker);
    let outcomes = new Map<string, ConfirmOutcome>();
    if (confirmation && accepted.length > 0) {
      outcomes = await confirmEffects(this.transport, confirmation, args, accepted, baselines, {
        timeoutMs: this.#confirmTimeoutMs,
        intervalMs: this.#confirmIntervalMs,
        probeTimeoutMs: timeoutMs,
        clock: this.#clock,
        sleep: this.#sleep,
      });
    }
    return results.map((r) => {
      const outcome = outcomes.get(r.worker);
      return outcome ? { ...r, confirmed: outcome.confirmed, confirmation: outcome.confirmation } : { ...r, confirmed: null };
    });
  }

  #finish(result: ControlResult): ControlResult {
    this.observe(result.command, result.outcome, result);
    return result;
  }
}
