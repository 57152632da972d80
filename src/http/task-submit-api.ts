import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import express, { type Request, type Response, type Router } from 'express';
import type { AuditLog } from '../audit/audit-log.js';
import type { Auth, Role } from '../auth/index.js';
import { describePrincipal, roleAtLeast } from '../auth/index.js';
import type { Clock } from '../clock.js';
import type { WorkerSnapshot } from '../control/worker-snapshot.js';
import { CommandValidationError, validateTaskId, validateTaskName } from '../celery/validators.js';
import { PublishUnavailableError, PublishUnconfirmedError, type TaskPublisher } from '../transport/task-publisher.js';
import { BackendUnavailableError, resultForDisplay, type ResultBackend, type TaskMeta } from '../tasks/result-backend.js';
import { TooManyWaitersError, type ResultWaiters } from '../tasks/result-waiters.js';
import { SubmitError, parseSubmitBody, type SubmitRequest } from '../tasks/submit-options.js';
import { SubmitPolicy, SubmitRefusedError } from '../tasks/submit-policy.js';
import type { TaskStore } from '../tasks/task-store.js';
import { buildTaskMessage } from '../tasks/task-message.js';
import type { PayloadRule, PayloadView } from '../tasks/payload.js';

export interface TaskSubmitApiDeps {
  publisher: TaskPublisher;
  /** Undefined when tasks.result_backend is not set (and then so are the waiters). */
  backend: ResultBackend | undefined;
  /** The bounded, shared result waits behind `timeout` (result-waiters.ts). */
  waiters: ResultWaiters | undefined;
  /** The inspect replies behind `registered`: which workers know the task. */
  snapshot: WorkerSnapshot;
  /** Which tasks may be sent, to which queues (tasks.submit), and the least role that may send them. */
  policy: SubmitPolicy;
  submitRole: Role;
  /** The kept tasks (undefined when tasks.enabled is false): a custom task_id must not be one of them. */
  store: TaskStore | undefined;
  auth: Auth;
  audit: AuditLog;
  clock: Clock;
  /** Celery's task_default_queue, where a task goes without `queue`. */
  defaultQueue: string;
  payload: PayloadRule;
  maxWaitSeconds: number;
  maxBodyBytes: number;
}

const NO_BACKEND = "no result backend is configured (set tasks.result_backend to the redis:// URL of Celery's result_backend)";
/** A viewer's longest wait for a result; operators wait up to tasks.max_result_wait_seconds. */
export const VIEWER_MAX_WAIT_SECONDS = 5;

/**
 * Flower's task submission and result paths: POST /api/task/apply|async-apply|send-task/<name>
 * publish a real protocol-2 task message (tasks.submit: allowed names, role, queues), GET /api/task/result/<id> reads Celery's
 * result backend (viewer; the result itself needs the payload role), POST /api/task/abort/<id>
 * marks an AbortableTask aborted there (operator). Without a task registry of our own, the three
 * publish paths behave alike: the answer says which live workers registered the task.
 */
export function taskSubmitApi(deps: TaskSubmitApiDeps): Router {
  const router = express.Router();
  const json = express.json({ limit: deps.maxBodyBytes, strict: false });
  // The caller is checked before the body is read: an anonymous request is a 401, whatever it sends.
  const operator = deps.auth.withBody('operator', json);
  const submitter = deps.auth.withBody(deps.submitRole, json);
  const viewer = deps.auth.requireRole('viewer');
  const client = PROCESS_CLIENT;

  for (const path of ['async-apply', 'send-task'] as const) {
    router.post(
      `/api/task/${path}/:taskname`,
      ...submitter,
      handle(async (req, res) => {
        const sent = await publish(deps, client, req, path === 'send-task' ? 'send_task' : 'apply_async');
        const state = deps.backend ? ((await deps.backend.get(sent.id).catch(() => null))?.status ?? 'PENDING') : undefined;
        res.json({ ...sentBody(sent, String(req.params.taskname)), ...(state ? { state } : {}) });
      }),
    );
  }

  router.post(
    '/api/task/apply/:taskname',
    ...submitter,
    handle(async (req, res) => {
      // Refused before anything is sent: without a backend, or a free wait, the result can never be read.
      if (!deps.backend || !deps.waiters) throw new BackendUnavailableError(NO_BACKEND);
      const timeout = waitSeconds(req, deps.maxWaitSeconds) ?? deps.maxWaitSeconds;
      deps.waiters.ensureRoom();
      const sent = await publish(deps, client, req, 'apply');
      const meta = await deps.waiters.wait(sent.id, timeout * 1000, whileConnected(res));
      res.json({ ...sentBody(sent, String(req.params.taskname)), ...resultBody(meta, deps.payload.view(req.principal)) });
    }),
  );

  router.get(
    '/api/task/result/:taskid',
    viewer,
    handle(async (req, res) => {
      const id = validateTaskId(req.params.taskid, 'taskid');
      if (!deps.backend || !deps.waiters) throw new BackendUnavailableError(NO_BACKEND);
      // Long waits hold a request open and a key in every read: operators only.
      const operator = req.principal !== undefined && roleAtLeast(req.principal.role, 'operator');
      const timeout = waitSeconds(req, operator ? deps.maxWaitSeconds : Math.min(VIEWER_MAX_WAIT_SECONDS, deps.maxWaitSeconds), operator);
      const meta = timeout ? await deps.waiters.wait(id, timeout * 1000, whileConnected(res)) : await deps.backend.get(id);
      res.json({ 'task-id': id, ...resultBody(meta, deps.payload.view(req.principal)) });
    }),
  );

  router.post(
    '/api/task/abort/:taskid',
    ...operator,
    handle(async (req, res) => {
      const id = validateTaskId(req.params.taskid, 'taskid');
      if (!deps.backend) throw new BackendUnavailableError(NO_BACKEND);
      await deps.backend.abort(id);
      deps.audit.write({ kind: 'control', by: describePrincipal(req), command: 'abort', arguments: { task_id: id }, outcome: 'sent' });
      res.json({ message: `Aborted '${id}'` });
    }),
  );

  return router;
}

/** An async route handler whose failures become Flower-style error answers. */
export function handle(fn: (req: Request, res: Response) => Promise<void>) {
  return (req: Request, res: Response): void => {
    fn(req, res).catch((e: unknown) => answerError(res, e));
  };
}

/** Celery's client identity for the messages this process publishes. */
interface PublishingClient {
  readonly origin: string;
  readonly replyTo: string;
}

/** Celery's client identity: gen<pid>@<host> as origin, one reply address per process. */
const PROCESS_CLIENT: PublishingClient = { origin: `gen${process.pid}@${hostname()}`, replyTo: randomUUID() };

/** Builds and publishes one task message, audits it, and says which live workers registered the task. */
async function publish(deps: TaskSubmitApiDeps, client: PublishingClient, req: Request, command: string): Promise<SentTask> {
  const name = validateTaskName(req.params.taskname, 'taskname');
  const now = new Date(deps.clock.nowMs());
  await refusingAudited(deps, req, command, name, undefined, () => deps.policy.checkTask(name));
  return publishTask(deps, req, command, name, parseSubmitBody(req.body, now), now, {}, client);
}

export interface SentTask {
  readonly id: string;
  readonly queue: string;
  readonly registeredBy: string[];
}

/** Runs a policy check; a refusal is audited (who tried to run what, where) and thrown on. */
export async function refusingAudited<T>(
  deps: Pick<TaskSubmitApiDeps, 'audit'>,
  req: Request,
  command: string,
  name: string,
  queue: string | undefined,
  check: () => T | Promise<T>,
): Promise<T> {
  try {
    return await check();
  } catch (e) {
    if (e instanceof SubmitRefusedError) {
      const args = { task: name, ...(queue !== undefined ? { queue } : {}) };
      deps.audit.write({ kind: 'control', by: describePrincipal(req), command, arguments: args, outcome: 'refused', reason: e.message });
    }
    throw e;
  }
}

/**
 * The one way a task message is sent for a caller (submission and re-run alike): the name must
 * already have passed policy.checkTask; the queue is checked here, then the message is built,
 * published and audited (`audit` adds fields, e.g. what a re-run re-runs).
 */
export async function publishTask(
  deps: TaskSubmitApiDeps,
  req: Request,
  command: string,
  name: string,
  r: SubmitRequest,
  now: Date,
  /** Fields added to this send's audit record; null: the caller writes one record for many sends. */
  audit: Record<string, unknown> | null,
  client: PublishingClient = PROCESS_CLIENT,
): Promise<SentTask> {
  const queue = r.queue ?? deps.defaultQueue;
  await refusingAudited(deps, req, command, name, queue, async () => {
    deps.policy.checkQueue(queue);
    if (r.taskId !== undefined) await refuseKnownId(deps, r.taskId);
  });
  const id = r.taskId ?? randomUUID();
  const message = buildTaskMessage({
    id,
    name,
    args: r.args,
    kwargs: r.kwargs,
    queue,
    priority: r.priority,
    ...(r.eta ? { eta: r.eta } : {}),
    ...(r.expires ? { expires: r.expires } : {}),
    ...(r.timeLimit ? { timeLimit: r.timeLimit } : {}),
    ...(r.ignoreResult !== undefined ? { ignoreResult: r.ignoreResult } : {}),
    origin: client.origin,
    replyTo: client.replyTo,
    now,
  });
  // Who registered the task comes from the background snapshot; the first call waits for a round.
  const known = deps.snapshot.use().catch(() => undefined);
  await deps.publisher.publish(message);
  await known;
  // Arguments are not audited: they may hold personal data.
  if (audit)
    deps.audit.write({
      kind: 'control',
      by: describePrincipal(req),
      command,
      arguments: { task: name, task_id: id, queue, ...audit },
      outcome: 'sent',
    });
  return { id, queue, registeredBy: deps.snapshot.registeredBy(name) };
}

/**
 * A custom task_id must be new: reusing a kept task's id (or one the result backend holds) would
 * merge two runs in the console and let the new one's result stand for the old one's.
 */
async function refuseKnownId(deps: TaskSubmitApiDeps, id: string): Promise<void> {
  const known = deps.store?.get(id) !== undefined || (deps.backend ? (await deps.backend.get(id)) !== null : false);
  if (known) throw new SubmitRefusedError(409, `task_id '${id}' is already a known task: give a new id, or none`);
}

/** Flower's answer to a publish, with a warning when no live worker has registered the task. */
export function sentBody(p: { id: string; queue: string; registeredBy: string[] }, name: string): Record<string, unknown> {
  return {
    'task-id': p.id,
    queue: p.queue,
    registered_by: p.registeredBy,
    // Celery sends to any name too; the message waits in the queue until a worker knows it. Its
    // own tasks are on every worker, but `registered` never lists them.
    ...(p.registeredBy.length === 0 && !SubmitPolicy.isBuiltin(name)
      ? { warning: `no live worker has registered '${name}': the message waits in '${p.queue}' until one does` }
      : {}),
  };
}

/** Flower's result fields: state always, result once ready (traceback on FAILURE). */
function resultBody(meta: TaskMeta | null, view: PayloadView): Record<string, unknown> {
  const state = meta?.status ?? 'PENDING';
  if (!meta || !['SUCCESS', 'FAILURE', 'REVOKED'].includes(state)) return { state };
  return view.result({ state, result: resultForDisplay(meta), ...(state === 'FAILURE' ? { traceback: meta.traceback } : {}) });
}

/** `timeout` in seconds (Flower's float), bounded so no request waits without end. */
function waitSeconds(req: Request, max: number, operator = true): number | undefined {
  const raw = req.query.timeout;
  if (raw === undefined || raw === '') return undefined;
  const v = typeof raw === 'string' ? raw.trim() : '';
  if (!/^\d{1,6}(\.\d{1,6})?$/.test(v) || Number(v) > max)
    throw new SubmitError(
      `timeout must be seconds from 0 to ${max}${operator ? '' : ' for a viewer (longer waits need the operator role)'}`,
    );
  return Number(v);
}

/** Aborted when the client goes away before the answer: its wait ends and frees its place. */
function whileConnected(res: Response): AbortSignal {
  const connected = new AbortController();
  res.once('close', () => connected.abort());
  return connected.signal;
}

export function answerError(res: Response, e: unknown): void {
  if (res.headersSent) return;
  if (e instanceof SubmitError) res.status(400).json({ error: e.message });
  else if (e instanceof SubmitRefusedError) res.status(e.status).json({ error: e.message });
  else if (e instanceof CommandValidationError) res.status(400).json({ error: e.message, ...(e.field ? { field: e.field } : {}) });
  else if (e instanceof BackendUnavailableError) res.status(503).json({ error: e.message });
  else if (e instanceof TooManyWaitersError) res.status(429).set('Retry-After', '1').json({ error: e.message });
  else if (e instanceof PublishUnavailableError) res.status(503).json({ error: `${e.message}: nothing was sent` });
  else if (e instanceof PublishUnconfirmedError) res.status(504).json({ error: e.message });
  else res.status(500).json({ error: 'internal error' });
}
