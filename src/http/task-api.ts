import express, { type Request, type Response, type Router } from 'express';
import type { Auth, Role } from '../auth/index.js';
import { roleAtLeast } from '../auth/index.js';
import { flowerTask } from '../tasks/flower-shape.js';
import { TaskQueryError } from '../tasks/task-query.js';
import { parseTaskQuery } from '../tasks/query-params.js';
import type { TaskStore } from '../tasks/task-store.js';

export interface TaskApiDeps {
  /** Undefined when tasks.enabled is false. */
  store: TaskStore | undefined;
  auth: Auth;
  /** tasks.payload_role: the least role that sees args, kwargs and results. */
  payloadRole: Role;
}

/**
 * Flower's task read API, same paths, parameters and JSON: GET /api/tasks, /api/task/types,
 * /api/task/info/<id>. Reading is viewer; payload fields need `payloadRole` (see flowerTask).
 * Bad parameters are 400 with a message, where Flower would answer 500 or silently ignore them.
 */
export function taskReadApi(deps: TaskApiDeps): Router {
  const router = express.Router();
  const viewer = deps.auth.requireRole('viewer');
  const seesPayload = (req: Request) => req.principal !== undefined && roleAtLeast(req.principal.role, deps.payloadRole);

  const withStore =
    (fn: (store: TaskStore, req: Request, res: Response) => void) =>
    (req: Request, res: Response): void => {
      if (!deps.store) {
        res.status(503).json({ error: 'the task store is off (tasks.enabled: false)' });
        return;
      }
      try {
        fn(deps.store, req, res);
      } catch (e) {
        if (!(e instanceof TaskQueryError)) throw e;
        res.status(e.status).json({ error: e.message });
      }
    };

  router.get(
    '/api/tasks',
    viewer,
    withStore((store, req, res) => {
      const showPayload = seesPayload(req);
      const page = store.query(parseTaskQuery(req.query, showPayload));
      // Written by hand: a JSON object keyed by id must keep the page's order, and JS objects
      // put integer-like keys (Celery accepts any task id) first.
      const parts = page.tasks.map((t) => `${JSON.stringify(t.uuid)}:${JSON.stringify(flowerTask(t, store, showPayload))}`);
      res.type('json').send(`{${parts.join(',')}}`);
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
      res.json(flowerTask(task, store, seesPayload(req)));
    }),
  );

  return router;
}
