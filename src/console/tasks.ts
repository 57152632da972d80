import type { Request } from 'express';
import { paramValue } from '../params.js';
import { parseTaskQuery } from '../tasks/query-params.js';
import type { Role } from '../auth/index.js';
import { SORT_FIELDS, type TaskPage, type TaskQuery } from '../tasks/task-query.js';
import { TASK_STATES, text, type TaskHistory } from '../tasks/task-history.js';
import type { TaskStore } from '../tasks/task-store.js';
import { html, isoTime, type Html, rowsOr } from './html.js';
import { layout, type ConsoleContext } from './layout.js';
import { taskHref } from './worker-tasks.js';
import { roleFor } from './actions.js';
import type { RerunRule } from './task.js';
import { MAX_BULK_TASKS } from '../tasks/rerun.js';
import { workerHref } from './workers.js';

const PAGE_SIZES = [25, 50, 100, 500];
const DEFAULT_LIMIT = 50;
/** The console's own page sizes bound a list page: a larger `limit` is a 400, as in the API past its maximum. */
const CONSOLE_PAGE = { defaultLimit: DEFAULT_LIMIT, maxLimit: Math.max(...PAGE_SIZES) };
/** Payload text per row: the list is for scanning, the task page has it whole. */
const ROW_PAYLOAD_CHARS = 300;

/** The page's query string, as Flower's /api/tasks takes it: the console and scripts speak one language. */
const PARAMS = ['state', 'taskname', 'workername', 'received_start', 'received_end', 'search', 'sort_by', 'limit', 'offset'] as const;
type Params = Partial<Record<(typeof PARAMS)[number], string>>;

/** Read as /api/tasks reads them (src/params.ts): the last value of a repeated parameter. */
function paramsOf(req: Request): Params {
  const out: Params = {};
  for (const p of PARAMS) {
    const v = paramValue(p, req.query);
    if (typeof v === 'string' && v !== '') out[p] = v;
  }
  return out;
}

/**
 * The console shows every time in UTC, so its filter boxes are UTC too: a zone-less
 * `YYYY-MM-DDTHH:MM` (what a datetime-local box sends) is read as UTC here, where Flower's API
 * reads it in the server's local time. A value with a zone keeps it.
 */
export function inUtc(p: Params): Params {
  const out: Params = {};
  for (const name of ['received_start', 'received_end'] as const) {
    const v = p[name]?.trim();
    if (v !== undefined && /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}$/.test(v)) out[name] = `${v.replace(' ', 'T')}Z`;
  }
  return out;
}

/** The console's own defaults on top of Flower's: a page of 50, newest first. */
export function tasksQuery(req: Request, seesPayload: boolean): { query: TaskQuery; params: Params; limit: number; offset: number } {
  const params = paramsOf(req);
  const query = parseTaskQuery({ ...req.query, ...inUtc(params) }, seesPayload, CONSOLE_PAGE);
  query.sortBy ??= { field: 'timestamp', descending: true };
  return { query, params, limit: query.limit ?? DEFAULT_LIMIT, offset: query.offset ?? 0 };
}

/** "12-01 23:08:18", UTC (the header says so), the full timestamp on hover: dense, one line. */
const when = (seconds: number | null): Html => {
  const full = seconds === null ? '' : isoTime(seconds * 1000);
  return full ? html`<span title="${full}">${full.slice(5, 19).replace('T', ' ')}</span>` : html``;
};

function select(name: string, label: string, options: readonly string[], chosen: string | undefined, all = 'All'): Html {
  return html`<label>${label}<select name="${name}"><option value="">${all}</option>${options.map((o) => html`<option${o === chosen ? html` selected` : ''}>${o}</option>`)}</select></label>`;
}

function filters(ctx: ConsoleContext, p: Params, taskTypes: string[], workers: string[]): Html {
  const input = (name: keyof Params, label: string, type = 'text', cls = '') =>
    html`<label>${label}<input name="${name}" type="${type}" value="${p[name] ?? ''}"${cls ? html` class="${cls}"` : ''}></label>`;
  return html`<form class="filters" method="get" action="${ctx.href('/ui/tasks')}" id="task-filters">
${select('state', 'state', TASK_STATES, p.state)}${select('taskname', 'task', taskTypes, p.taskname)}${select('workername', 'worker', workers, p.workername)}
${input('received_start', 'received from (UTC)', 'datetime-local')}${input('received_end', 'received until (UTC)', 'datetime-local')}
${input('search', 'search (name, state:, worker:, args:, kwargs:, result:)', 'search', 'wide')}
${select(
  'sort_by',
  'sort',
  SORT_FIELDS.flatMap((f) => [`-${f}`, f]),
  p.sort_by,
  'newest change',
)}
<label>per page<select name="limit">${PAGE_SIZES.map((n) => html`<option${String(n) === (p.limit ?? String(DEFAULT_LIMIT)) ? html` selected` : ''}>${n}</option>`)}</select></label>
<button type="submit">Filter</button><a href="${ctx.href('/ui/tasks')}">reset</a></form>`;
}

/** A column header that sorts by its field, descending first, and flips on a second click. */
function sortable(ctx: ConsoleContext, p: Params, field: (typeof SORT_FIELDS)[number], label: string, cls = ''): Html {
  const current = p.sort_by;
  const next = current === `-${field}` ? field : `-${field}`;
  const mark = current === `-${field}` ? ' ↓' : current === field ? ' ↑' : '';
  return html`<th${cls ? html` class="${cls}"` : ''}><a href="${ctx.href('/ui/tasks', { ...p, sort_by: next, offset: undefined })}">${label}${mark}</a></th>`;
}

const short = (value: string | null): string => text(value, ROW_PAYLOAD_CHARS) ?? '';

function row(ctx: ConsoleContext, t: Readonly<TaskHistory>, seesPayload: boolean): Html {
  return html`<tr data-task-id="${t.uuid}"><td>${t.name ?? ''}</td><td class="mono nowrap"><a href="${taskHref(ctx, t.uuid)}">${t.uuid}</a></td>
<td><span class="state state-${t.state}">${t.state}</span></td>
${seesPayload ? html`<td class="mono truncate">${short(t.args)} ${short(t.kwargs)}</td><td class="mono truncate">${short(t.result ?? t.exception)}</td>` : ''}
<td class="nowrap">${when(t.received)}</td><td class="nowrap">${when(t.started)}</td><td class="num">${t.runtime === null ? '' : t.runtime.toFixed(3)}</td>
<td class="nowrap">${t.worker ? html`<a href="${workerHref(ctx, t.worker)}">${t.worker}</a>` : ''}</td></tr>`;
}

/** The /api/tasks filters a bulk action takes (paging and sorting are not part of "what matches"). */
const BULK_FILTERS = ['state', 'taskname', 'workername', 'received_start', 'received_end', 'search'] as const;

/**
 * "Re-run / revoke all N matching": offered only under a filter (the API refuses none), each a
 * dry run first whose count the confirmation shows (console.js twoStep).
 */
function bulkForms(ctx: ConsoleContext, p: Params, matching: number, rerun: RerunRule | undefined): Html {
  const filter = Object.fromEntries(BULK_FILTERS.filter((f) => p[f] !== undefined).map((f) => [f, p[f]]));
  if (Object.keys(filter).length === 0 || matching === 0) return html``;
  const form = (path: string, label: string, args: Record<string, unknown>, name: string, danger = false) =>
    html`<form class="action" data-post="${path}" data-two-step="1" data-noun="tasks" data-label="${label}" data-args="${JSON.stringify({ ...filter, ...args })}"><button type="submit" name="${name}"${danger ? html` class="danger"` : ''}>${label}</button></form>`;
  const forms = [
    rerun && ctx.can(rerun.role) ? form('/api/tasks/rerun', `Re-run all ${matching} matching`, {}, 'bulk-rerun') : html``,
    ctx.can(roleFor('revoke')) ? form('/api/tasks/revoke', `Revoke all ${matching} matching`, {}, 'bulk-revoke') : html``,
    ctx.can(roleFor('revoke', { terminate: true }))
      ? form('/api/tasks/revoke', `Revoke and terminate all ${matching} matching`, { terminate: true }, 'bulk-terminate', true)
      : html``,
  ];
  if (forms.every((f) => f.text === '')) return html``;
  return html`<div class="actions bulk" id="bulk-actions">${forms}<span class="muted">at most ${MAX_BULK_TASKS} per request; a dry run shows the count first</span></div>`;
}

/**
 * Flower's task list, server-rendered: filters (state, name, worker, time range), its search
 * syntax, sortable columns, paging, and a live refresh of the rows. Payload columns only for
 * roles that may see args and results.
 */
export function tasksPage(
  ctx: ConsoleContext,
  store: TaskStore,
  req: Request,
  o: { seesPayload: boolean; payloadRole: Role; workers: string[]; page?: TaskPage; rerun?: RerunRule },
): string {
  const { query, params, limit, offset } = tasksQuery(req, o.seesPayload);
  // The route searches in slices beforehand (store.queryInSlices) and hands the page in.
  const page = o.page ?? store.query(query);
  const pager = (to: number) => ctx.href('/ui/tasks', { ...params, offset: to > 0 ? to : undefined });
  const last = offset + page.tasks.length;
  // Past the end (an old link, a shrunk list): say so and offer the last page, not "5001–5000 of 51".
  const range = page.tasks.length
    ? html`<strong>${offset + 1}–${last}</strong> of <strong>${page.filtered}</strong> matching`
    : offset > 0 && page.filtered > 0
      ? html`nothing from <strong>${offset + 1}</strong>: only <strong>${page.filtered}</strong> match`
      : html`<strong>0</strong> matching`;
  const lastPage = Math.max(0, Math.floor((page.filtered - 1) / limit) * limit);
  const body = html`${filters(ctx, params, store.taskTypes(), o.workers)}
<div class="pager" id="pager"><span>${range} (${page.total} kept, at most ${store.capacity})</span>
${offset > 0 ? html`<a href="${pager(Math.min(Math.max(0, offset - limit), lastPage))}" rel="prev">← newer</a>` : ''}${last < page.filtered ? html`<a href="${pager(offset + limit)}" rel="next">older →</a>` : ''}
<label><input type="checkbox" id="live-toggle"> live</label></div>
${bulkForms(ctx, params, page.filtered, o.rerun)}
<div class="scroll"><table id="tasks"><thead><tr>${sortable(ctx, params, 'name', 'name')}<th>uuid</th>${sortable(ctx, params, 'state', 'state')}
${o.seesPayload ? html`<th>args, kwargs</th><th>result</th>` : ''}${sortable(ctx, params, 'received', 'received (UTC)')}${sortable(ctx, params, 'started', 'started (UTC)')}${sortable(ctx, params, 'runtime', 'runtime s', 'num')}<th>worker</th></tr></thead>
<tbody data-live="3">${rowsOr(
    page.tasks.map((t) => row(ctx, t, o.seesPayload)),
    9,
    'no task matches',
  )}</tbody></table></div>
${o.seesPayload ? '' : html`<p class="muted">Arguments and results are shown from the ${o.payloadRole} role up (tasks.payload_role).</p>`}`;
  return layout(ctx, { title: 'Tasks', section: 'tasks', body });
}
