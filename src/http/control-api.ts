import express, { type Request, type Response, type Router } from 'express';
import type { Auth } from '../auth/index.js';
import { describePrincipal, roleAtLeast } from '../auth/index.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { ControlClient, ControlResult, RunOptions, Targets } from '../control/client.js';
import { prepareCommand, type CommandName } from '../control/commands.js';
import { CommandValidationError, validateQueueName, validateTaskId, validateTaskName, validateWorkerName } from '../control/validators.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import type { WorkerRegistry } from '../state/workers.js';
import { BrokerUnavailableError } from '../transport/transport.js';
import { booleanParam, integerParam, numberParam, param, stringParam } from './params.js';

export interface ControlApiDeps {
  control: ControlClient;
  workers: WorkerRegistry;
  queues: QueueCollector;
  audit: AuditLog;
  auth: Auth;
  maxBodyBytes: number;
  /** Counts a command refused for the caller's role (metrics). */
  refused: (command: CommandName) => void;
}

/** Commands after which a worker's queues or pool size, as the exporter reports them, change. */
const CHANGES_INSPECTION = new Set<CommandName>(['add_consumer', 'cancel_consumer', 'pool_grow', 'pool_shrink', 'autoscale', 'pool_restart']);

/** An HTTP answer decided before or instead of sending a command. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/**
 * The control API: Flower's paths and parameters exactly (scripts written for Flower keep
 * working), and our versioned API beside it, which reports each worker's reply and can target
 * several workers, a glob or a queue's consumers. Every command is validated before anything
 * reaches the broker, checked against the caller's role, and audited with its results.
 */
export function controlApi(deps: ControlApiDeps): Router {
  const { control, workers, auth, audit } = deps;
  const router = express.Router();
  const body = [express.json({ limit: deps.maxBodyBytes }), express.urlencoded({ extended: false, limit: deps.maxBodyBytes })];
  const operator = [...body, auth.requireRole('operator')];
  const viewer = auth.requireRole('viewer');

  /**
   * Runs one command for an authenticated caller: validation and role check, then the targets
   * (which may ask the cluster about a worker), then send and audit. Nothing reaches the broker,
   * not even a ping, for a request that is refused anyway.
   */
  async function execute(
    req: Request,
    command: CommandName,
    args: Record<string, unknown>,
    targets: Targets | (() => Promise<Targets>),
    opts: RunOptions = {},
  ): Promise<ControlResult> {
    const prepared = prepareCommand(command, args);
    const principal = req.principal;
    if (!principal || !roleAtLeast(principal.role, prepared.role)) {
      // A refused attempt by a signed-in user leaves a trace too.
      deps.refused(command);
      audit.write({ kind: 'control', by: describePrincipal(req), command, arguments: prepared.arguments, outcome: 'refused', reason: `needs the ${prepared.role} role` });
      throw new HttpError(403, `${command}${prepared.role === 'admin' ? ' with these arguments' : ''} needs the ${prepared.role} role`);
    }
    if (typeof targets === 'function') targets = await targets();
    const result = await control.run(command, args, targets, opts);
    if (CHANGES_INSPECTION.has(command)) for (const r of result.results) if (r.status === 'ok') workers.markStale(r.worker);
    audit.write({
      kind: 'control',
      by: describePrincipal(req),
      command,
      arguments: result.arguments,
      targets,
      dry_run: result.dryRun,
      outcome: result.outcome,
      results: result.results.map((r) => ({ worker: r.worker, status: r.status, ...(r.kind ? { kind: r.kind } : {}), ...(r.message ? { message: r.message } : {}), ...(r.confirmed !== undefined ? { confirmed: r.confirmed } : {}) })),
    });
    return result;
  }

  /**
   * Flower's is_worker, without its stale cache: a worker we have not heard of yet is pinged.
   * Takes a validated name; callers validate every parameter and the role first (see `execute`).
   */
  async function requireWorker(name: string): Promise<string> {
    const known = workers.get(name);
    if (known && workers.isAlive(known)) return name;
    const answered = (await control.ping([name])).get(name);
    if (!answered) throw new HttpError(404, `Unknown worker '${name}'`);
    return name;
  }

  /** The one named worker as targets, resolved only once the request is known to be acceptable. */
  const theWorker =
    (name: string) =>
    async (): Promise<Targets> => ({ workers: [await requireWorker(name)] });

  /** Flower's answers: 200 with a message when the worker said ok, 403 otherwise. */
  function flowerReply(res: Response, result: ControlResult, worker: string, success: (okText: string | undefined) => string, failure: string): void {
    const r = result.results.find((x) => x.worker === worker);
    if (r?.status === 'ok' || r?.status === 'sent') {
      res.json({ message: success(r.message), result: r });
      return;
    }
    const reason = r?.status === 'no_reply' ? 'no reply' : (r?.message ?? 'failed');
    res.status(403).json({ message: failure, error: reason, ...(r?.kind ? { kind: r.kind } : {}), result: r ?? null });
  }

  const handle =
    (fn: (req: Request, res: Response) => Promise<void>) =>
    (req: Request, res: Response): void => {
      fn(req, res).catch((e: unknown) => sendError(res, e));
    };

  // --- Flower-compatible paths ----------------------------------------------------------------

  router.post('/api/worker/shutdown/:workername', ...operator, handle(async (req, res) => {
    const worker = validateWorkerName(req.params.workername, 'workername');
    const result = await execute(req, 'shutdown', {}, theWorker(worker));
    flowerReply(res, result, worker, () => 'Shutting down!', `Failed to shut down '${worker}'`);
  }));

  router.post('/api/worker/pool/restart/:workername', ...operator, handle(async (req, res) => {
    const worker = validateWorkerName(req.params.workername, 'workername');
    const result = await execute(req, 'pool_restart', { reload: false }, theWorker(worker));
    flowerReply(res, result, worker, () => `Restarting '${worker}' worker's pool`, `Failed to restart the '${worker}' pool`);
  }));

  for (const [path, command, verb, noun] of [
    ['grow', 'pool_grow', 'Growing', 'grow'],
    ['shrink', 'pool_shrink', 'Shrinking', 'shrink'],
  ] as const) {
    router.post(`/api/worker/pool/${path}/:workername`, ...operator, handle(async (req, res) => {
      const worker = validateWorkerName(req.params.workername, 'workername');
      const n = integerParam(req, 'n', 1)!;
      const result = await execute(req, command, { n }, theWorker(worker), { confirm: booleanParam(req, 'confirm', false) });
      flowerReply(res, result, worker, () => `${verb} '${worker}' worker's pool by ${n}`, `Failed to ${noun} '${worker}' worker's pool`);
    }));
  }

  router.post('/api/worker/pool/autoscale/:workername', ...operator, handle(async (req, res) => {
    const worker = validateWorkerName(req.params.workername, 'workername');
    const min = integerParam(req, 'min');
    const max = integerParam(req, 'max');
    const result = await execute(req, 'autoscale', { min, max }, theWorker(worker));
    flowerReply(res, result, worker, () => `Autoscaling '${worker}' worker (min=${min}, max=${max})`, `Failed to autoscale '${worker}' worker`);
  }));

  router.post('/api/worker/queue/add-consumer/:workername', ...operator, handle(async (req, res) => {
    const worker = validateWorkerName(req.params.workername, 'workername');
    const queue = validateQueueName(param(req, 'queue'));
    const result = await execute(req, 'add_consumer', { queue }, theWorker(worker), { confirm: booleanParam(req, 'confirm', false) });
    flowerReply(res, result, worker, (ok) => ok ?? `add consumer ${queue}`, `Failed to add '${queue}' consumer to '${worker}' worker`);
  }));

  router.post('/api/worker/queue/cancel-consumer/:workername', ...operator, handle(async (req, res) => {
    const worker = validateWorkerName(req.params.workername, 'workername');
    const queue = validateQueueName(param(req, 'queue'));
    const result = await execute(req, 'cancel_consumer', { queue }, theWorker(worker), { confirm: booleanParam(req, 'confirm', false) });
    flowerReply(res, result, worker, (ok) => ok ?? `no longer consuming from ${queue}`, `Failed to cancel '${queue}' consumer from '${worker}' worker`);
  }));

  router.post('/api/task/revoke/:taskid', ...operator, handle(async (req, res) => {
    const taskId = validateTaskId(req.params.taskid);
    const terminate = booleanParam(req, 'terminate', false);
    const signal = stringParam(req, 'signal') ?? 'SIGTERM';
    // Revoke is addressed to every worker, as Celery's own revoke is: any of them may hold the
    // task (or receive it later), and each keeps the id in its revoked set. Flower always passes
    // a signal and Celery ignores it without terminate; our validator refuses that combination,
    // so the signal only goes along with terminate.
    const result = await execute(req, 'revoke', { task_id: taskId, terminate, ...(terminate ? { signal } : {}) }, { all: true });
    res.json({ message: `Revoked '${taskId}'`, results: result.results });
  }));

  router.post('/api/task/timeout/:taskname', ...operator, handle(async (req, res) => {
    const task = validateTaskName(req.params.taskname);
    const worker = validateWorkerName(requiredWorkername(req), 'workername');
    const result = await execute(req, 'time_limit', { task_name: task, soft: numberParam(req, 'soft'), hard: numberParam(req, 'hard') }, theWorker(worker));
    const r = result.results[0];
    flowerReply(res, result, worker, (ok) => ok ?? 'time limits set successfully', `Failed to set timeouts: '${r?.message ?? r?.status ?? ''}'`);
  }));

  router.post('/api/task/rate-limit/:taskname', ...operator, handle(async (req, res) => {
    const task = validateTaskName(req.params.taskname);
    const worker = validateWorkerName(requiredWorkername(req), 'workername');
    const result = await execute(req, 'rate_limit', { task_name: task, rate_limit: stringParam(req, 'ratelimit') }, theWorker(worker));
    const r = result.results[0];
    flowerReply(res, result, worker, (ok) => ok ?? 'new rate limit set successfully', `Failed to set rate limit: '${r?.message ?? r?.status ?? ''}'`);
  }));

  router.get('/api/workers', viewer, handle(async (req, res) => {
    const only = stringParam(req, 'workername');
    const names = only ? [await requireWorkerOrEmpty(only)] : await liveWorkers(booleanParam(req, 'refresh', false));
    if (booleanParam(req, 'status', false)) {
      const alive = names.length > 0 ? await control.ping(names) : new Map<string, boolean>();
      res.json(Object.fromEntries(names.map((n) => [n, alive.get(n) ?? false])));
      return;
    }
    const out: Record<string, Record<string, unknown>> = Object.fromEntries(names.map((n) => [n, {}]));
    if (names.length > 0) {
      for (const method of ['stats', 'active_queues', 'registered', 'scheduled', 'active', 'reserved', 'revoked', 'conf'] as const) {
        const result = await control.run(method, {}, { workers: names });
        for (const r of result.results) if (r.status === 'ok') out[r.worker]![method] = r.reply;
      }
    }
    for (const n of names) out[n]!.timestamp = Date.now() / 1000;
    res.json(out);
  }));

  router.get('/api/queues/length', viewer, handle(async (_req, res) => {
    const samples = await deps.queues.collect();
    // A depth that could not be read is left out rather than shown as an empty queue.
    res.json({ active_queues: samples.filter((q) => q.length !== null).map((q) => ({ name: q.queue, messages: q.length })) });
  }));

  /** A plain JSON list, for scripts that just want depths. */
  router.get('/api/queues', viewer, handle(async (_req, res) => {
    const samples = await deps.queues.collect();
    res.json(samples.map((q) => ({ name: q.queue, messages: q.length })));
  }));

  // --- Versioned API -------------------------------------------------------------------------

  router.get('/api/v1/workers', viewer, handle(async (req, res) => {
    const names = new Set(await liveWorkers(booleanParam(req, 'refresh', false)));
    for (const w of workers.all()) names.add(w.hostname);
    res.json(
      [...names].sort().map((name) => {
        const w = workers.get(name);
        return {
          name,
          up: w ? workers.isAlive(w) : true,
          pool_processes: w?.processes ?? null,
          active: w?.active ?? null,
          processed: w?.processed ?? null,
          queues: w?.queues ?? null,
          last_heartbeat: w?.lastHeartbeatAt !== undefined ? new Date(w.lastHeartbeatAt).toISOString() : null,
          heartbeat_seconds: w?.freq ?? null,
          software: w?.swVersion ?? null,
          clock_skew_seconds: w?.clockSkewSeconds ?? null,
        };
      }),
    );
  }));

  router.get('/api/v1/queues', viewer, handle(async (_req, res) => {
    res.json(await deps.queues.collect());
  }));

  router.post('/api/v1/actions', ...operator, handle(async (req, res) => {
    const b = (req.body ?? {}) as Record<string, unknown>;
    if (typeof b !== 'object' || Array.isArray(b)) throw new CommandValidationError('the body must be a JSON object');
    const unknownKeys = Object.keys(b).filter((k) => !['command', 'arguments', 'targets', 'dry_run', 'confirm', 'timeout_ms'].includes(k));
    if (unknownKeys.length) throw new CommandValidationError(`unknown field${unknownKeys.length > 1 ? 's' : ''} ${unknownKeys.join(', ')}`);
    if (typeof b.command !== 'string') throw new CommandValidationError('must name a command', 'command');
    // Queue targets are resolved after validation and the role check, like every other target.
    const result = await execute(req, b.command as CommandName, (b.arguments ?? {}) as Record<string, unknown>, async () => resolveTargets(b.targets), {
      dryRun: b.dry_run === true,
      confirm: b.confirm === true,
      ...(b.timeout_ms !== undefined ? { timeoutMs: b.timeout_ms as number } : {}),
    });
    res.json(result);
  }));

  router.get('/api/v1/audit', viewer, (req, res) => {
    const kind = req.query.kind;
    const limit = Math.min(1000, Math.max(1, Number(req.query.limit ?? 100) || 100));
    if (kind !== undefined && kind !== 'control' && kind !== 'remediation' && kind !== 'admin') {
      res.status(400).json({ error: 'kind must be control, remediation or admin' });
      return;
    }
    res.json(audit.recent(kind, limit));
  });

  /** `{ queue }` becomes the live workers consuming it; never an empty (= everyone) destination. */
  function resolveTargets(raw: unknown): Targets {
    if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'queue' in raw) {
      const keys = Object.keys(raw);
      if (keys.length !== 1) throw new CommandValidationError('give only one of workers, pattern, queue, all', 'targets');
      const queue = validateQueueName((raw as { queue: unknown }).queue, 'targets.queue');
      const consumers = workers.consumersOf(queue).map((w) => w.hostname);
      if (consumers.length === 0) throw new HttpError(404, `no live worker consumes queue '${queue}'`);
      return { workers: consumers };
    }
    return raw as Targets;
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

  async function requireWorkerOrEmpty(name: string): Promise<string> {
    return requireWorker(validateWorkerName(name, 'workername'));
  }

  return router;
}

function requiredWorkername(req: Request): string {
  const w = stringParam(req, 'workername');
  if (w === undefined || w === '') {
    // Flower 2.1 cannot address every worker here either (it answers 404 "Unknown worker '[]'");
    // a clear 400 that names the parameter beats a 404 about a worker nobody named.
    throw new CommandValidationError('name the worker (workername=...); use POST /api/v1/actions with targets {"all": true} to address every worker', 'workername');
  }
  return w;
}

export function sendError(res: Response, e: unknown): void {
  if (res.headersSent) return;
  if (e instanceof HttpError) res.status(e.status).json({ error: e.message, ...e.detail });
  else if (e instanceof CommandValidationError) res.status(400).json({ error: e.message, ...(e.field ? { field: e.field } : {}) });
  else if (e instanceof BrokerUnavailableError) res.status(503).json({ error: 'broker unavailable: nothing was sent' });
  else res.status(500).json({ error: 'internal error' });
}
