import express, { type Request, type Response, type Router } from 'express';
import { describePrincipal } from '../auth/index.js';
import { validateTaskId } from '../celery/validators.js';
import { BrokerUnavailableError } from '../transport/transport.js';
import { pyRepr } from '../tasks/python-text.js';
import { parseTaskQuery } from '../tasks/query-params.js';
import { MAX_BULK_TASKS, parseRerunBody, planRerun, type RerunRequest } from '../tasks/rerun.js';
import { SubmitError } from '../tasks/submit-options.js';
import { SubmitRefusedError } from '../tasks/submit-policy.js';
import { TaskQueryError, type TaskQuery } from '../tasks/task-query.js';
import type { TaskStore } from '../tasks/task-store.js';
import type { TaskHistory } from '../tasks/task-history.js';
import type { ControlRoutes } from './control-routes.js';
import { HttpError, sendError } from './control-routes.js';
import { booleanParam } from './params.js';
import { answerError, publishTask, refusingAudited, sentBody, type SentTask, type TaskSubmitApiDeps } from './task-submit-api.js';

/**
 * Acting on kept tasks: POST /api/task/rerun/<id> (Flower's path style) publishes a task again
 * with the original's name, args, kwargs and queue, each replaceable in the body; POST
 * /api/tasks/rerun and /api/tasks/revoke act on every task a GET /api/tasks filter matches, at
 * most MAX_BULK_TASKS per request, with dry_run=true to see the count first. Who may re-run is
 * who may submit (tasks.submit: the role and the allow-list, per task name); revoke is the
 * control command with its own roles. Every act is audited.
 */

/** Ids a dry run lists. */
const DRY_RUN_IDS = 20;
const FILTERS = ['state', 'taskname', 'workername', 'received_start', 'received_end', 'started_start', 'started_end', 'search'] as const;

// Over 80 lines on purpose: three routes sharing the store lookup, the filter and the answers.
export function taskActionsApi(deps: TaskSubmitApiDeps, routes: ControlRoutes): Router {
  const router = express.Router();
  const json = express.json({ limit: deps.maxBodyBytes, strict: false });
  const urlencoded = express.urlencoded({ extended: false, limit: deps.maxBodyBytes });
  const submitter = deps.auth.withBody(deps.submitRole, json, urlencoded);
  const store = (): TaskStore => {
    if (!deps.store) throw new HttpError(503, 'the task store is off (tasks.enabled: false)');
    return deps.store;
  };

  /** Publishes one planned re-run and links it to its original in the store. */
  const rerun = async (req: Request, original: Readonly<TaskHistory>, plan: RerunRequest, audit: boolean): Promise<SentTask> => {
    const now = new Date(deps.clock.nowMs());
    const r = { args: plan.args, kwargs: plan.kwargs, queue: plan.queue, priority: 0 };
    const sent = await publishTask(deps, req, 'rerun', plan.name, r, now, audit ? { rerun_of: original.uuid, edited: plan.edited } : null);
    store().recordRerun(
      sent.id,
      original.uuid,
      { name: plan.name, args: pyRepr(plan.args), kwargs: pyRepr(plan.kwargs), queue: sent.queue },
      now.getTime() / 1000,
    );
    return sent;
  };

  router.post(
    '/api/task/rerun/:taskid',
    ...submitter,
    handle(async (req, res) => {
      const id = validateTaskId(req.params.taskid, 'taskid');
      const original = store().get(id);
      if (!original) {
        // Flower's body for an unknown task (as /api/task/info), text only.
        res.status(404).type('text/plain').send(`Unknown task '${id}'`);
        return;
      }
      const edits = parseRerunBody(req.body);
      if (original.name !== null)
        await refusingAudited(deps, req, 'rerun', original.name, undefined, () => deps.policy.checkTask(original.name!));
      const plan = planRerun(original, edits, deps.defaultQueue);
      const sent = await rerun(req, original, plan, true);
      res.json({ ...sentBody(sent, plan.name), rerun_of: id });
    }),
  );

  /** The bulk filter, from the query string or the body; no filter at all is refused (never "every task" by accident). */
  const bulkQuery = (req: Request): TaskQuery => {
    const body = req.body !== null && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Record<string, unknown>) : {};
    const params: Record<string, unknown> = {};
    for (const f of FILTERS) params[f] = body[f] ?? req.query[f];
    const q = parseTaskQuery(params, deps.payload.view(req.principal).visible, {
      defaultLimit: MAX_BULK_TASKS + 1,
      maxLimit: MAX_BULK_TASKS + 1,
    });
    const { limit: _limit, ...filter } = q;
    if (Object.keys(filter).length === 0)
      throw new SubmitError(`give a filter (${FILTERS.join(', ')}): a bulk action never applies to every task by default`);
    return q;
  };
  const filterOf = (req: Request): Record<string, unknown> => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    return Object.fromEntries(FILTERS.map((f) => [f, body[f] ?? req.query[f]]).filter(([, v]) => v !== undefined));
  };
  /** The matching tasks, or the dry-run answer; over the maximum is a 400 naming it. */
  const matching = async (req: Request, action: string): Promise<{ tasks: Readonly<TaskHistory>[]; dry?: Record<string, unknown> }> => {
    const page = await store().queryInSlices(bulkQuery(req));
    const ids = page.tasks.slice(0, DRY_RUN_IDS).map((t) => t.uuid);
    if (booleanParam(req, 'dry_run', false))
      return { tasks: [], dry: { dry_run: true, action, count: page.filtered, task_ids: ids, max: MAX_BULK_TASKS } };
    if (page.filtered > MAX_BULK_TASKS)
      throw new SubmitError(
        `the filter matches ${page.filtered} tasks, more than the ${MAX_BULK_TASKS} one request may ${action} (MAX_BULK_TASKS): narrow the filter`,
      );
    return { tasks: page.tasks };
  };
  const auditBulk = (req: Request, command: string, extra: Record<string, unknown>, outcome: string): void => {
    deps.audit.write({ kind: 'control', by: describePrincipal(req), command, arguments: { filter: filterOf(req), ...extra }, outcome });
  };

  router.post(
    '/api/tasks/rerun',
    ...submitter,
    handle(async (req, res) => {
      const { tasks, dry } = await matching(req, 're-run');
      if (dry) return void res.json(dry);
      // Every task is checked before any is sent: a refusal leaves nothing half-done.
      const plans: Array<[Readonly<TaskHistory>, RerunRequest]> = [];
      const refused: Array<{ task_id: string; reason: string }> = [];
      for (const t of tasks) {
        try {
          if (t.name !== null) deps.policy.checkTask(t.name);
          const plan = planRerun(t, {}, deps.defaultQueue);
          deps.policy.checkQueue(plan.queue);
          plans.push([t, plan]);
        } catch (e) {
          if (!(e instanceof SubmitRefusedError)) throw e;
          refused.push({ task_id: t.uuid, reason: e.message });
        }
      }
      if (refused.length > 0) {
        auditBulk(req, 'bulk_rerun', { task_ids: tasks.map((t) => t.uuid) }, 'refused');
        throw new HttpError(409, `${refused.length} of the ${tasks.length} matching tasks cannot be re-run: nothing was sent`, { refused });
      }
      const sent: Array<{ task_id: string; 'task-id': string }> = [];
      try {
        for (const [t, plan] of plans) sent.push({ task_id: t.uuid, 'task-id': (await rerun(req, t, plan, false)).id });
      } finally {
        auditBulk(
          req,
          'bulk_rerun',
          { task_ids: sent.map((s) => s.task_id), new_task_ids: sent.map((s) => s['task-id']) },
          sent.length === plans.length ? 'sent' : 'partial',
        );
      }
      res.json({ count: sent.length, reruns: sent });
    }),
  );

  router.post(
    '/api/tasks/revoke',
    ...routes.operator,
    handle(async (req, res) => {
      const terminate = booleanParam(req, 'terminate', false);
      const { tasks, dry } = await matching(req, 'revoke');
      if (dry) return void res.json({ ...dry, terminate });
      if (tasks.length === 0) return void res.json({ count: 0, task_ids: [], results: [] });
      const ids = tasks.map((t) => t.uuid);
      // Addressed to every worker, as Celery's revoke is: any of them may hold a task or receive it later.
      const result = await routes.execute(req, 'revoke', { task_id: ids, terminate }, { all: true }, {}, { filter: filterOf(req) });
      res.json({ count: ids.length, task_ids: ids, terminate, outcome: result.outcome, results: result.results });
    }),
  );

  return router;
}

/** An async route whose failures become answers: the task query's, the control layer's, then the submission's. */
function handle(fn: (req: Request, res: Response) => Promise<void>) {
  return (req: Request, res: Response): void => {
    fn(req, res).catch((e: unknown) => {
      if (e instanceof TaskQueryError && !res.headersSent) res.status(e.status).json({ error: e.message });
      else if (e instanceof HttpError || e instanceof BrokerUnavailableError) sendError(res, e);
      else answerError(res, e);
    });
  };
}
