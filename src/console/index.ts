import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import { AUDIT_KINDS, type AuditLog } from '../audit/audit-log.js';
import type { ManagementQueue } from '../broker-api/rabbitmq-management.js';
import type { Auth } from '../auth/index.js';
import type { ClusterSampler } from './cluster-sampler.js';
import type { ClusterHealth } from './health.js';
import type { ControlClient } from '../control/client.js';
import { CommandValidationError, validateWorkerName } from '../celery/validators.js';
import type { QueueSample } from '../metrics/celery-metrics.js';
import type { Remediator } from '../remediation/engine.js';
import type { PayloadRule, PayloadView } from '../tasks/payload.js';
import { TaskQueryError } from '../tasks/task-query.js';
import type { TaskStore } from '../tasks/task-store.js';
import type { WorkerRegistry } from '../state/workers.js';
import { BrokerUnavailableError } from '../transport/transport.js';
import { ParamReader, paramValue } from '../params.js';
import { consoleContext, errorPage, type ConsoleContext, type Section } from './layout.js';
import { overviewPage } from './overview.js';
import { queuesPage } from './queues.js';
import { remediationPage } from './remediation.js';
import { serveAsset } from './static/assets.js';
import { taskPage, type RerunRule } from './task.js';
import { tasksPage, tasksQuery } from './tasks.js';
import { inspectWorker, workerPage, type Inspection, type TaskOutcomes } from './worker.js';
import { workersPage } from './workers.js';

export interface ConsoleDeps {
  auth: Auth;
  workers: WorkerRegistry;
  control: ControlClient;
  queues: () => Promise<QueueSample[]>;
  /** With broker_api (RabbitMQ management), ready / unacknowledged / consumers per named queue. */
  managementQueues?: (names: string[]) => Promise<ManagementQueue[]>;
  audit: AuditLog;
  remediator: Remediator | undefined;
  /** The task store (undefined when tasks.enabled is false), and who may see task payloads. */
  store: TaskStore | undefined;
  payload: PayloadRule;
  /** Bounds the task lists a caller runs at once (shared with /api/tasks). */
  heavyRead: RequestHandler;
  /** A result backend is configured: Abort (AbortableTask) can work. */
  abortable: boolean;
  /** The last hour of the cluster, and what workers hold per queue. */
  sampler: ClusterSampler;
  /** The broker connection and the event stream, for the overview's banner. */
  health: () => ClusterHealth;
  /** Who may re-run which task (task submission's rule: tasks.submit.role and allow-list). */
  rerun?: RerunRule;
  now?: () => number;
}

/**
 * Only the console's own files, no inline script or style, no framing. helmet (the security
 * layer) may already have set a policy for the whole app: then that one stands.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function pageHeaders(_req: Request, res: Response, next: NextFunction): void {
  if (!res.getHeader('Content-Security-Policy')) res.set('Content-Security-Policy', CSP);
  if (!res.getHeader('X-Frame-Options')) res.set('X-Frame-Options', 'DENY');
  // Pages carry the session's CSRF token and cluster data: never cached, never leaked in Referer.
  res.set('Cache-Control', 'no-store').set('Referrer-Policy', 'same-origin').set('X-Content-Type-Options', 'nosniff');
  next();
}

/**
 * The operator console under /ui: server-rendered pages for workers, queues, remediation and
 * tasks. Reading needs the viewer role; every action form posts to the control API, which checks
 * the role and the CSRF token again. `/ui` itself stays the entry (old links keep working).
 */
export function consoleRouter(deps: ConsoleDeps): Router {
  const router = express.Router();
  const now = deps.now ?? Date.now;
  router.get('/ui/static/:name', serveAsset);

  const page = (render: (ctx: ConsoleContext, req: Request) => Promise<string> | string, ...before: RequestHandler[]) => [
    deps.auth.requireRole('viewer'),
    ...before,
    pageHeaders,
    (req: Request, res: Response, next: NextFunction) => {
      const ctx = consoleContext(req, res, deps.auth);
      Promise.resolve()
        .then(() => render(ctx, req))
        .then((body) => res.type('html').send(body))
        .catch((e: unknown) => {
          if (e instanceof PageError)
            res
              .status(e.status)
              .type('html')
              .send(errorPage(ctx, e.section, e.title, e.message));
          else next(e);
        });
    },
  ];

  router.get('/ui', ...page((ctx) => renderOverview(deps, ctx, now())));
  router.get(
    '/ui/workers',
    ...page((ctx) => workersPage(ctx, { workers: deps.workers, history: deps.sampler.history, health: deps.health(), nowMs: now() })),
  );
  router.get('/ui/workers/:name', ...page((ctx, req) => renderWorker(deps, ctx, req.params.name, now)));
  router.get('/ui/queues', ...page((ctx, req) => renderQueues(deps, ctx, req, now())));
  router.get(
    '/ui/remediation',
    ...page((ctx, req) => {
      const kind = pageParams(req, 'remediation', 'Remediation').oneOf('audit', AUDIT_KINDS);
      return remediationPage(ctx, deps.remediator, deps.audit, kind);
    }),
  );
  router.get('/ui/tasks', ...page((ctx, req) => renderTasks(deps, ctx, req), deps.heavyRead));
  router.get(
    '/ui/tasks/:id',
    ...page((ctx, req) => {
      const store = taskStore(deps);
      const task = store.get(String(req.params.id));
      if (!task)
        throw new PageError(
          404,
          'tasks',
          'Unknown task',
          `No task with id ${String(req.params.id)} is kept (it may have been evicted, or its events not seen).`,
        );
      return taskPage(ctx, task, store.children(task.uuid), {
        seesPayload: deps.payload.sees(ctx.principal),
        abortable: deps.abortable,
        reruns: store.reruns(task.uuid),
        ...(deps.rerun ? { rerun: deps.rerun } : {}),
      });
    }),
  );
  return router;
}

/** The overview: queue depths read through the collector's cache, everything else from memory. */
async function renderOverview(deps: ConsoleDeps, ctx: ConsoleContext, nowMs: number): Promise<string> {
  const [samples, open] = [await deps.queues().catch((): QueueSample[] => []), deps.sampler.open()];
  const names = new Set([...samples.map((q) => q.queue), ...open.keys()]);
  const queues = [...names].map((queue) => ({
    queue,
    depth: samples.find((q) => q.queue === queue)?.length ?? null,
    reserved: open.get(queue)?.reserved ?? 0,
    running: open.get(queue)?.running ?? 0,
  }));
  return overviewPage(ctx, {
    health: deps.health(),
    workers: deps.workers,
    history: deps.sampler.history,
    queues,
    store: deps.store,
    decisions: deps.audit.recent('remediation', 6),
    killSwitch: deps.remediator?.killSwitch,
    nowMs,
  });
}

/** Flower's broker page; `?queue=` narrows it to one queue. */
async function renderQueues(deps: ConsoleDeps, ctx: ConsoleContext, req: Request, nowMs: number): Promise<string> {
  const only = pageParams(req, 'queues', 'Queues').text('queue', { emptyIsAbsent: true });
  const samples = await deps.queues();
  // The management API is an extra: when it fails, the page says so and shows the rest.
  const management = deps.managementQueues
    ? await deps.managementQueues(samples.map((q) => q.queue)).then(
        (queues) => ({ queues }),
        (e: unknown) => ({ error: (e as Error).message }),
      )
    : undefined;
  return queuesPage(ctx, samples, deps.workers, {
    only,
    nowMs,
    open: deps.sampler.open(),
    history: deps.sampler.history,
    ...(management ? { management } : {}),
  });
}

/** A worker's page: a malformed name is a 400, a never-seen one a 404; only a live worker is asked. */
async function renderWorker(deps: ConsoleDeps, ctx: ConsoleContext, raw: unknown, now: () => number): Promise<string> {
  let name: string;
  try {
    name = validateWorkerName(raw, 'worker');
  } catch (e) {
    if (e instanceof CommandValidationError) throw new PageError(400, 'workers', 'Not a worker name', e.message);
    throw e;
  }
  const record = deps.workers.get(name);
  if (!record) throw new PageError(404, 'workers', 'Unknown worker', `No worker named ${name} has been seen.`);
  const alive = deps.workers.isAlive(record);
  let inspection: Inspection | undefined;
  let error: string | undefined;
  if (alive) {
    try {
      inspection = hideTaskArguments(await inspectWorker(deps.control, name), deps.payload.view(ctx.principal));
    } catch (e) {
      if (!(e instanceof BrokerUnavailableError)) throw e;
      error = 'The broker is unavailable: the worker could not be asked.';
    }
  }
  return workerPage(ctx, {
    name,
    record,
    alive,
    inspection,
    ...(error ? { error } : {}),
    nowMs: now(),
    outcomes: taskOutcomes(deps.store, name),
  });
}

/** Failed and retried kept tasks of one worker, per task name: one pass over the store (bounded by tasks.max_tasks). */
function taskOutcomes(store: TaskStore | undefined, worker: string): TaskOutcomes {
  const out = new Map<string, { failed: number; retried: number }>();
  for (const t of store?.all() ?? []) {
    if (t.worker !== worker || t.name === null || (t.state !== 'FAILURE' && t.retried === null)) continue;
    const counts = out.get(t.name) ?? { failed: 0, retried: 0 };
    if (t.state === 'FAILURE') counts.failed++;
    if (t.retried !== null) counts.retried++;
    out.set(t.name, counts);
  }
  return out;
}

/** The inspect replies as the caller may see them: active, reserved and scheduled lose their arguments below the payload role. */
function hideTaskArguments(inspection: Inspection, view: PayloadView): Inspection {
  if (view.visible) return inspection;
  const out: Inspection = { ...inspection };
  for (const [method, result] of Object.entries(inspection) as Array<[keyof Inspection, Inspection[keyof Inspection]]>) {
    if (result?.reply !== undefined) out[method] = { ...result, reply: view.inspectReply(method, result.reply) };
  }
  return out;
}

function taskStore(deps: ConsoleDeps): TaskStore {
  if (!deps.store) throw new PageError(503, 'tasks', 'Tasks', 'The task store is off (tasks.enabled: false): task pages need it.');
  return deps.store;
}

/** The task list; a query the task API would refuse is refused here with the same words. */
async function renderTasks(deps: ConsoleDeps, ctx: ConsoleContext, req: Request): Promise<string> {
  const store = taskStore(deps);
  const workers = [...deps.workers.all()].map((w) => w.hostname).sort();
  const seesPayload = deps.payload.sees(ctx.principal);
  try {
    const page = await store.queryInSlices(tasksQuery(req, seesPayload).query);
    return tasksPage(ctx, store, req, {
      seesPayload,
      payloadRole: deps.payload.role,
      workers,
      page,
      ...(deps.rerun ? { rerun: deps.rerun } : {}),
    });
  } catch (e) {
    if (e instanceof TaskQueryError) throw new PageError(e.status, 'tasks', 'Tasks', e.message);
    throw e;
  }
}

/** An answer in the console's frame instead of the page asked for. */
/** The page's query string, read as the API reads it (src/params.ts); a bad value is a 400 page of its section. */
function pageParams(req: Request, section: Section, title: string): ParamReader {
  return new ParamReader(
    (name) => paramValue(name, req.query),
    (name, problem) => new PageError(400, section, title, `${name} ${problem}`),
  );
}

export class PageError extends Error {
  constructor(
    readonly status: number,
    readonly section: Section,
    readonly title: string,
    message: string,
  ) {
    super(message);
  }
}
