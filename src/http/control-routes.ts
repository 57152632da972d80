import express, { type Request, type RequestHandler, type Response } from 'express';
import type { Auth } from '../auth/index.js';
import { describePrincipal, roleAtLeast } from '../auth/index.js';
import type { AuditLog } from '../audit/audit-log.js';
import { answeredCommand, type ControlClient, type ControlResult, type RunOptions, type Targets } from '../control/client.js';
import { prepareCommand, type CommandName } from '../control/commands.js';
import { CommandValidationError } from '../celery/validators.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { PayloadRule } from '../tasks/payload.js';
import { BrokerUnavailableError } from '../transport/transport.js';
import { integerParam } from './params.js';

/**
 * What the control routes share (Flower's command paths in flower-control-api.ts, Flower's
 * cluster reads in flower-workers-api.ts, the versioned API in api-v1.ts): the one way a command
 * is run for an HTTP caller, and the one way errors become answers.
 */
export interface ControlApiDeps {
  control: ControlClient;
  workers: WorkerRegistry;
  queues: QueueCollector;
  audit: AuditLog;
  auth: Auth;
  maxBodyBytes: number;
  /** Counts a command refused for the caller's role (metrics). */
  refused: (command: CommandName) => void;
  /** tasks.payload_role, for the inspect replies that list tasks (active, reserved, scheduled). */
  payload: PayloadRule;
}

/** Commands after which a worker's queues or pool size, as the exporter reports them, change. */
const CHANGES_INSPECTION = new Set<CommandName>([
  'add_consumer',
  'cancel_consumer',
  'pool_grow',
  'pool_shrink',
  'autoscale',
  'pool_restart',
]);

/** An HTTP answer decided before or instead of sending a command. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface ControlRoutes {
  readonly deps: ControlApiDeps;
  /** The operator role, checked before and after the body parsers: in front of every command route. */
  readonly operator: RequestHandler[];
  readonly viewer: RequestHandler;
  execute(
    req: Request,
    command: CommandName,
    args: Record<string, unknown>,
    targets: Targets | (() => Promise<Targets>),
    opts?: RunOptions,
    /** Added to the audit record, e.g. the filter a bulk revoke matched its ids with. */
    auditExtra?: Record<string, unknown>,
  ): Promise<ControlResult>;
  /** Flower's is_worker, without its stale cache: a worker we have not heard of yet is pinged. Takes a validated name. */
  requireWorker(name: string): Promise<string>;
  /** The one named worker as targets, resolved only once the request is known to be acceptable. */
  theWorker(name: string): () => Promise<Targets>;
  /** Live workers we know of, plus (refresh) whoever answers a ping now. */
  liveWorkers(refresh: boolean): Promise<string[]>;
}

// Over 80 lines on purpose: the shared steps of every control request (validate, authorise, run,
// audit, answer) are closures over the same dependencies; split, they would pass them all around.
export function controlRoutes(deps: ControlApiDeps): ControlRoutes {
  const { control, workers, auth, audit } = deps;
  const body = [express.json({ limit: deps.maxBodyBytes }), express.urlencoded({ extended: false, limit: deps.maxBodyBytes })];

  /**
   * Runs one command for an authenticated caller: validation and role check, then the targets
   * (which may ask the cluster about a worker), then send and audit. Nothing reaches the broker,
   * not even a ping, for a request that is refused anyway. The command is validated once; the
   * control client sends exactly what was prepared here.
   */
  async function execute(
    req: Request,
    command: CommandName,
    args: Record<string, unknown>,
    targets: Targets | (() => Promise<Targets>),
    opts: RunOptions = {},
    auditExtra: Record<string, unknown> = {},
  ): Promise<ControlResult> {
    const prepared = prepareCommand(command, args);
    const principal = req.principal;
    if (!principal || !roleAtLeast(principal.role, prepared.role)) {
      // A refused attempt by a signed-in user leaves a trace too.
      deps.refused(command);
      audit.write({
        kind: 'control',
        by: describePrincipal(req),
        command,
        arguments: prepared.arguments,
        outcome: 'refused',
        reason: `needs the ${prepared.role} role`,
      });
      throw new HttpError(403, `${command}${prepared.role === 'admin' ? ' with these arguments' : ''} needs the ${prepared.role} role`);
    }
    if (typeof targets === 'function') targets = await targets();
    const result = await control.run(prepared, undefined, targets, opts);
    if (CHANGES_INSPECTION.has(command)) for (const r of result.results) if (answeredCommand(r)) workers.markStale(r.worker);
    audit.write({
      kind: 'control',
      by: describePrincipal(req),
      command,
      arguments: result.arguments,
      ...auditExtra,
      targets,
      dry_run: result.dryRun,
      outcome: result.outcome,
      results: result.results.map((r) => ({
        worker: r.worker,
        status: r.status,
        ...(r.kind ? { kind: r.kind } : {}),
        ...(r.message ? { message: r.message } : {}),
        ...(r.confirmed !== undefined ? { confirmed: r.confirmed } : {}),
      })),
    });
    return result;
  }

  async function requireWorker(name: string): Promise<string> {
    const known = workers.get(name);
    if (known && workers.isAlive(known)) return name;
    const answered = (await control.ping([name])).get(name);
    if (!answered) throw new HttpError(404, `Unknown worker '${name}'`);
    return name;
  }

  async function liveWorkers(refresh: boolean): Promise<string[]> {
    const names = new Set(workers.alive().map((w) => w.hostname));
    if (refresh) {
      // Reads are safe to send everywhere; this is how workers we have not heard from are found.
      const pong = await control.run('ping', {}, { all: true });
      for (const r of pong.results) if (r.status === 'ok') names.add(r.worker);
    }
    return [...names].sort();
  }

  return {
    deps,
    operator: auth.withBody('operator', ...body),
    viewer: auth.requireRole('viewer'),
    execute,
    requireWorker,
    theWorker: (name) => async () => ({ workers: [await requireWorker(name)] }),
    liveWorkers,
  };
}

/**
 * `keep_processes`: how many pool processes a shrink leaves at least (default 1, see
 * control/shrink.ts); 0 empties a pool, and only this explicit parameter can ask for it.
 */
export function keepProcesses(req: Request): number | undefined {
  return integerParam(req, 'keep_processes');
}

/** An async route whose failures become answers through sendError. */
export const handle =
  (fn: (req: Request, res: Response) => Promise<void>) =>
  (req: Request, res: Response): void => {
    fn(req, res).catch((e: unknown) => sendError(res, e));
  };

export function sendError(res: Response, e: unknown): void {
  if (res.headersSent) return;
  if (e instanceof HttpError) res.status(e.status).json({ error: e.message, ...e.detail });
  else if (e instanceof CommandValidationError) res.status(400).json({ error: e.message, ...(e.field ? { field: e.field } : {}) });
  else if (e instanceof BrokerUnavailableError) res.status(503).json({ error: 'broker unavailable: nothing was sent' });
  else res.status(500).json({ error: 'internal error' });
}
