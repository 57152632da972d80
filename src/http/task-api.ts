import express, { type Request, type Response, type Router } from 'express';
import type { Auth, Role } from '../auth/index.js';
import { roleAtLeast } from '../auth/index.js';
import { flowerTask } from '../tasks/flower-shape.js';
import { PAYLOAD_FIELDS, SORT_FIELDS, TaskQueryError, parseSearch, searchFields, type SortField, type TaskQuery } from '../tasks/task-query.js';
import type { TaskStore } from '../tasks/task-store.js';

export interface TaskApiDeps {
  /** Undefined when tasks.enabled is false. */
  store: TaskStore | undefined;
  auth: Auth;
  /** tasks.payload_role: the least role that sees args, kwargs and results. */
  payloadRole: Role;
}

/** Far above any store's size; a bigger number is a typo, not a wish. */
const MAX_LIMIT = 10_000_000;

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

  router.get('/api/tasks', viewer, withStore((store, req, res) => {
    const showPayload = seesPayload(req);
    const page = store.query(parseTaskQuery(req, showPayload));
    // Written by hand: a JSON object keyed by id must keep the page's order, and JS objects
    // put integer-like keys (Celery accepts any task id) first.
    const parts = page.tasks.map((t) => `${JSON.stringify(t.uuid)}:${JSON.stringify(flowerTask(t, store, showPayload))}`);
    res.type('json').send(`{${parts.join(',')}}`);
  }));

  router.get('/api/task/types', viewer, withStore((store, _req, res) => {
    res.json({ 'task-types': store.taskTypes() });
  }));

  router.get('/api/task/info/:taskid', viewer, withStore((store, req, res) => {
    const id = String(req.params.taskid);
    const task = store.get(id);
    if (!task) {
      // Flower's body, as text. The id is echoed into text/plain only.
      res.status(404).type('text/plain').send(`Unknown task '${id}'`);
      return;
    }
    res.json(flowerTask(task, store, seesPayload(req)));
  }));

  return router;
}

/** One query-string value (the last if repeated); Flower's "All" means no filter. */
function query(req: Request, name: string): string | undefined {
  const raw = req.query[name];
  const v = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new TaskQueryError(`${name} must be text`);
  return v;
}

function wholeNumber(req: Request, name: string, max: number): number | undefined {
  const v = query(req, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,12}$/.test(v.trim()) || Number(v) > max) throw new TaskQueryError(`${name} must be a whole number from 0 to ${max}, got '${v.slice(0, 40)}'`);
  return Number(v);
}

/** Flower's received_start/_end format, `YYYY-MM-DD HH:MM` in the server's local time; ISO 8601 with a zone also works. */
export function parseDate(name: string, v: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})$/.exec(v.trim());
  if (m) {
    const [y, mo, d, h, mi] = m.slice(1).map(Number) as [number, number, number, number, number];
    const date = new Date(y, mo - 1, d, h, mi);
    if (date.getFullYear() === y && date.getMonth() === mo - 1 && date.getDate() === d && date.getHours() === h && date.getMinutes() === mi) return date.getTime() / 1000;
  } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v.trim())) {
    const ms = Date.parse(v.trim());
    if (Number.isFinite(ms)) return ms / 1000;
  }
  throw new TaskQueryError(`${name} must be a date like '2024-05-01 13:45' (server local time) or ISO 8601 with a zone, got '${v.slice(0, 40)}'`);
}

export function parseTaskQuery(req: Request, showPayload: boolean): TaskQuery {
  const q: TaskQuery = {};
  const limit = wholeNumber(req, 'limit', MAX_LIMIT);
  if (limit !== undefined) q.limit = limit;
  const offset = wholeNumber(req, 'offset', MAX_LIMIT);
  if (offset !== undefined) q.offset = offset;
  const sortBy = query(req, 'sort_by');
  if (sortBy !== undefined) {
    const field = sortBy.replace(/^-/, '');
    if (!(SORT_FIELDS as readonly string[]).includes(field)) throw new TaskQueryError(`sort_by must be one of ${SORT_FIELDS.join(', ')} (prefix - for descending), got '${sortBy.slice(0, 40)}'`);
    q.sortBy = { field: field as SortField, descending: sortBy.startsWith('-') };
  }
  for (const [param, key] of [['workername', 'worker'], ['taskname', 'name'], ['state', 'state']] as const) {
    const v = query(req, param);
    if (v !== undefined && v !== 'All') q[key] = v;
  }
  for (const [param, key] of [['received_start', 'receivedStart'], ['received_end', 'receivedEnd'], ['started_start', 'startedStart'], ['started_end', 'startedEnd']] as const) {
    const v = query(req, param);
    if (v !== undefined) q[key] = parseDate(param, v);
  }
  const search = query(req, 'search');
  if (search !== undefined) {
    q.search = parseSearch(search);
    if (!showPayload) {
      // Searching a field one cannot see would reveal it a character at a time.
      const asked = [...searchFields(q.search)].filter((f) => PAYLOAD_FIELDS.includes(f));
      if (asked.length > 0) throw new TaskQueryError(`searching ${asked.join(', ')} needs a role that sees task payloads`, 403);
      q.hidden = PAYLOAD_FIELDS;
    }
  }
  return q;
}
