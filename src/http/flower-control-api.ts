import express, { type Request, type Response, type Router } from 'express';
import type { ControlResult } from '../control/client.js';
import { CommandValidationError, validateQueueName, validateTaskId, validateTaskName, validateWorkerName } from '../celery/validators.js';
import { describeShrink } from '../control/shrink.js';
import { handle, keepProcesses, type ControlRoutes } from './control-routes.js';
import { booleanParam, integerParam, numberParam, param, stringParam } from './params.js';

/**
 * Flower's control paths and parameters exactly (scripts written for Flower keep working).
 * Every command is validated before anything reaches the broker, checked against the caller's
 * role, and audited with its results (control-routes.ts).
 */
// Over 80 lines on purpose: one route per Flower path, a flat table of short handlers that a
// migrating user can hold against Flower's docs/api.rst line by line.
export function flowerControlApi(routes: ControlRoutes): Router {
  const { operator, execute, theWorker } = routes;
  const router = express.Router();

  router.post(
    '/api/worker/shutdown/:workername',
    ...operator,
    handle(async (req, res) => {
      const worker = validateWorkerName(req.params.workername, 'workername');
      const result = await execute(req, 'shutdown', {}, theWorker(worker));
      flowerReply(res, result, worker, () => 'Shutting down!', `Failed to shut down '${worker}'`);
    }),
  );

  router.post(
    '/api/worker/pool/restart/:workername',
    ...operator,
    handle(async (req, res) => {
      const worker = validateWorkerName(req.params.workername, 'workername');
      const result = await execute(req, 'pool_restart', { reload: false }, theWorker(worker));
      flowerReply(res, result, worker, () => `Restarting '${worker}' worker's pool`, `Failed to restart the '${worker}' pool`);
    }),
  );

  for (const [path, command, verb, noun] of [
    ['grow', 'pool_grow', 'Growing', 'grow'],
    ['shrink', 'pool_shrink', 'Shrinking', 'shrink'],
  ] as const) {
    router.post(
      `/api/worker/pool/${path}/:workername`,
      ...operator,
      handle(async (req, res) => {
        const worker = validateWorkerName(req.params.workername, 'workername');
        const n = integerParam(req, 'n', 1)!;
        const keep = command === 'pool_shrink' ? keepProcesses(req) : undefined;
        const result = await execute(req, command, { n }, theWorker(worker), {
          confirm: booleanParam(req, 'confirm', false),
          ...(keep !== undefined ? { keepProcesses: keep } : {}),
        });
        flowerReply(res, result, worker, () => resized(verb, worker, n, result), `Failed to ${noun} '${worker}' worker's pool`);
      }),
    );
  }

  router.post(
    '/api/worker/pool/autoscale/:workername',
    ...operator,
    handle(async (req, res) => {
      const worker = validateWorkerName(req.params.workername, 'workername');
      const min = integerParam(req, 'min');
      const max = integerParam(req, 'max');
      const result = await execute(req, 'autoscale', { min, max }, theWorker(worker));
      flowerReply(
        res,
        result,
        worker,
        () => `Autoscaling '${worker}' worker (min=${min}, max=${max})`,
        `Failed to autoscale '${worker}' worker`,
      );
    }),
  );

  router.post(
    '/api/worker/queue/add-consumer/:workername',
    ...operator,
    handle(async (req, res) => {
      const worker = validateWorkerName(req.params.workername, 'workername');
      const queue = validateQueueName(param(req, 'queue'));
      const result = await execute(req, 'add_consumer', { queue }, theWorker(worker), { confirm: booleanParam(req, 'confirm', false) });
      flowerReply(res, result, worker, (ok) => ok ?? `add consumer ${queue}`, `Failed to add '${queue}' consumer to '${worker}' worker`);
    }),
  );

  router.post(
    '/api/worker/queue/cancel-consumer/:workername',
    ...operator,
    handle(async (req, res) => {
      const worker = validateWorkerName(req.params.workername, 'workername');
      const queue = validateQueueName(param(req, 'queue'));
      const result = await execute(req, 'cancel_consumer', { queue }, theWorker(worker), { confirm: booleanParam(req, 'confirm', false) });
      flowerReply(
        res,
        result,
        worker,
        (ok) => ok ?? `no longer consuming from ${queue}`,
        `Failed to cancel '${queue}' consumer from '${worker}' worker`,
      );
    }),
  );

  router.post(
    '/api/task/revoke/:taskid',
    ...operator,
    handle(async (req, res) => {
      const taskId = validateTaskId(req.params.taskid);
      const terminate = booleanParam(req, 'terminate', false);
      const signal = stringParam(req, 'signal') ?? 'SIGTERM';
      // Revoke is addressed to every worker, as Celery's own revoke is: any of them may hold the
      // task (or receive it later), and each keeps the id in its revoked set. Flower always passes
      // a signal and Celery ignores it without terminate; our validator refuses that combination,
      // so the signal only goes along with terminate.
      const result = await execute(req, 'revoke', { task_id: taskId, terminate, ...(terminate ? { signal } : {}) }, { all: true });
      res.json({ message: `Revoked '${taskId}'`, results: result.results });
    }),
  );

  router.post(
    '/api/task/timeout/:taskname',
    ...operator,
    handle(async (req, res) => {
      const task = validateTaskName(req.params.taskname);
      const worker = validateWorkerName(requiredWorkername(req), 'workername');
      const result = await execute(
        req,
        'time_limit',
        { task_name: task, soft: numberParam(req, 'soft'), hard: numberParam(req, 'hard') },
        theWorker(worker),
      );
      const r = result.results[0];
      flowerReply(
        res,
        result,
        worker,
        (ok) => ok ?? 'time limits set successfully',
        `Failed to set timeouts: '${r?.message ?? r?.status ?? ''}'`,
      );
    }),
  );

  router.post(
    '/api/task/rate-limit/:taskname',
    ...operator,
    handle(async (req, res) => {
      const task = validateTaskName(req.params.taskname);
      const worker = validateWorkerName(requiredWorkername(req), 'workername');
      const result = await execute(req, 'rate_limit', { task_name: task, rate_limit: stringParam(req, 'ratelimit') }, theWorker(worker));
      const r = result.results[0];
      flowerReply(
        res,
        result,
        worker,
        (ok) => ok ?? 'new rate limit set successfully',
        `Failed to set rate limit: '${r?.message ?? r?.status ?? ''}'`,
      );
    }),
  );

  return router;
}

function requiredWorkername(req: Request): string {
  const w = stringParam(req, 'workername');
  if (w === undefined || w === '') {
    // Flower 2.1 cannot address every worker here either (it answers 404 "Unknown worker '[]'");
    // a clear 400 that names the parameter beats a 404 about a worker nobody named.
    throw new CommandValidationError(
      'name the worker (workername=...); use POST /api/v1/actions with targets {"all": true} to address every worker',
      'workername',
    );
  }
  return w;
}

/** Flower's answers: 200 with a message when the worker said ok, 403 otherwise. */
/** Flower's words, then what really happens to the pool: a shrink is bounded by the live count. */
function resized(verb: string, worker: string, n: number, result: ControlResult): string {
  const r = result.results.find((x) => x.worker === worker);
  const text = `${verb} '${worker}' worker's pool by ${r?.before !== undefined && r.after !== undefined ? r.before - r.after : n}`;
  if (r?.before === undefined || r.after === undefined) return text;
  return `${text}: ${describeShrink(r.before, r.before - r.after, n, result.keepProcesses ?? 1)}`;
}

function flowerReply(
  res: Response,
  result: ControlResult,
  worker: string,
  success: (okText: string | undefined) => string,
  failure: string,
): void {
  const r = result.results.find((x) => x.worker === worker);
  if (r?.status === 'ok' || r?.status === 'sent') {
    res.json({ message: success(r.message), result: r });
    return;
  }
  const reason = r?.status === 'no_reply' ? 'no reply' : (r?.message ?? 'failed');
  res.status(403).json({ message: failure, error: reason, ...(r?.kind ? { kind: r.kind } : {}), result: r ?? null });
}
