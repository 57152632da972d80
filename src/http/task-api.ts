import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import type { Auth } from '../auth/index.js';
import { flowerTask } from '../tasks/flower-shape.js';
import type { PayloadRule } from '../tasks/payload.js';
import { TaskQueryError } from '../tasks/task-query.js';
import { parseTaskQuery } from '../tasks/query-params.js';
import type { TaskStore } from '../tasks/task-store.js';
import { streamJsonObject } from './heavy-reads.js';

export interface TaskApiDeps {
  /** Undefined when tasks.enabled is false. */
  store: TaskStore | undefined;
  auth: Auth;
  /** tasks.payload_role: who sees args, kwargs and results. */
  payload: PayloadRule;
  /** Bounds the task lists a caller runs at once (heavy-reads.ts), shared with the console's list. */
  heavyRead: RequestHandler;
}

/**
 * Flower's task read API, same paths, parameters and JSON: GET /api/tasks, /api/task/types,
 * /api/task/info/<id>. Reading is viewer; payload fields need the payload role (payload.ts).
 * Bad parameters are 400 with a message, where Flower would answer 500 or silently ignore them.
 */
export function taskReadApi(deps: TaskApiDeps): Router {
  const router = express.Router();
  const viewer = deps.auth.requireRole('viewer');

  const withStore =
    (fn: (store: TaskStore, req: Request, res: Response) => void | Promise<void>) =>
    (req: Request, res: Response, next: (e: unknown) => void): void => {
      if (!deps.store) {
        res.status(503).json({ error: 'the task store is off (tasks.enabled: false)' });
        return;
      }
      const store = deps.store;
      Promise.resolve()
        .then(() => fn(store, req, res))
        .catch((e: unknown) => {
          if (e instanceof TaskQueryError && !res.headersSent) res.status(e.status).json({ error: e.message });
          else if (!res.headersSent) next(e);
          else res.destroy();
        });
    };

  router.get(
    '/api/tasks',
    viewer,
    deps.heavyRead,
    withStore(async (store, req, res) => {
      const view = deps.payload.view(req.principal);
      const page = await store.queryInSlices(parseTaskQuery(req.query, view.visible));
      // Written by hand: a JSON object keyed by id must keep the page's order, and JS objects
      // put integer-like keys (Celery accepts any task id) first. Streamed: a page of large
      // payloads is never one string.
      function* entries() {
        for (const t of page.tasks) yield `${JSON.stringify(t.uuid)}:${JSON.stringify(view.task(flowerTask(t, store)))}`;
      }
      await streamJsonObject(res, entries());
    }),
  );

  router.get(
    '/api/task/types',
    viewer,
    withStore((store, _req, res) => {
      res.json({ 'task-types': store.taskTypes() });
    }),
  );

  router.get(
    '/api/task/info/:taskid',
    viewer,
    withStore((store, req, res) => {
      const id = String(req.params.taskid);
      const task = store.get(id);
      if (!task) {
        // Flower's body, as text. The id is echoed into text/plain only.
        res.status(404).type('text/plain').send(`Unknown task '${id}'`);
        return;
      }
      res.json(deps.payload.view(req.principal).task(flowerTask(task, store)));
    }),
  );

  return router;
}
