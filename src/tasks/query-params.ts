import { ParamReader, paramValue, type Params } from '../params.js';
import { PAYLOAD_FIELDS, SORT_FIELDS, TaskQueryError, parseSearch, searchFields, type SortField, type TaskQuery } from './task-query.js';
import { TASK_STATES } from './task-history.js';

/** How many tasks one answer may hold: without `limit`, and at most. */
export interface PageBounds {
  readonly defaultLimit: number;
  readonly maxLimit: number;
}

/**
 * /api/tasks: Flower's console pages hold 10 to 100 tasks; 100 is the default (Flower's API had
 * none and answered the whole store: 510 MB for 50 000 failed tasks, beyond V8's longest string
 * with payloads). 1000 keeps a script's page cheap to build and send (about 12 MB with the
 * default field limits) and far above any page a person reads; more is paging with `offset`.
 */
export const TASK_API_PAGE: PageBounds = { defaultLimit: 100, maxLimit: 1000 };

/** Far above any store's size; a bigger number is a typo, not a wish. */
const MAX_OFFSET = 10_000_000;

/** Flower's received_start/_end format, `YYYY-MM-DD HH:MM` in the server's local time; ISO 8601 with a zone also works. */
export function parseDate(name: string, v: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})$/.exec(v.trim());
  if (m) {
    const [y, mo, d, h, mi] = m.slice(1).map(Number) as [number, number, number, number, number];
    const date = new Date(y, mo - 1, d, h, mi);
    if (date.getFullYear() === y && date.getMonth() === mo - 1 && date.getDate() === d && date.getHours() === h && date.getMinutes() === mi)
      return date.getTime() / 1000;
  } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v.trim())) {
    const ms = Date.parse(v.trim());
    if (Number.isFinite(ms)) return ms / 1000;
  }
  throw new TaskQueryError(
    `${name} must be a date like '2024-05-01 13:45' (server local time) or ISO 8601 with a zone, got '${v.slice(0, 40)}'`,
  );
}

/** Flower's /api/tasks parameters (the console's task list uses the same) → a store query; throws TaskQueryError. */
export function parseTaskQuery(params: Params, showPayload: boolean, page: PageBounds = TASK_API_PAGE): TaskQuery {
  const read = new ParamReader(
    (name) => paramValue(name, params),
    (name, problem) => new TaskQueryError(`${name} ${problem}`),
  );
  // Flower's "All" means no filter, as does an empty value.
  const query = (name: string): string | undefined => read.text(name, { emptyIsAbsent: true });
  const wholeNumber = (name: string, max: number): number | undefined =>
    query(name) === undefined ? undefined : read.integer(name, { min: 0, max });
  const q: TaskQuery = { limit: wholeNumber('limit', page.maxLimit) ?? page.defaultLimit };
  const offset = wholeNumber('offset', MAX_OFFSET);
  if (offset !== undefined) q.offset = offset;
  const sortBy = query('sort_by');
  if (sortBy !== undefined) {
    const field = sortBy.replace(/^-/, '');
    if (!(SORT_FIELDS as readonly string[]).includes(field))
      throw new TaskQueryError(`sort_by must be one of ${SORT_FIELDS.join(', ')} (prefix - for descending), got '${sortBy.slice(0, 40)}'`);
    q.sortBy = { field: field as SortField, descending: sortBy.startsWith('-') };
  }
  for (const [param, key] of [
    ['workername', 'worker'],
    ['taskname', 'name'],
    ['state', 'state'],
  ] as const) {
    const v = query(param);
    if (v !== undefined && v !== 'All') q[key] = v;
  }
  // Task events only ever carry Celery's own states: any other value could only match nothing,
  // which reads as "no such task" when it is a typo.
  if (q.state !== undefined && !(TASK_STATES as readonly string[]).includes(q.state))
    throw new TaskQueryError(`state must be one of ${TASK_STATES.join(', ')}, got '${q.state.slice(0, 40)}'`);
  for (const [param, key] of [
    ['received_start', 'receivedStart'],
    ['received_end', 'receivedEnd'],
    ['started_start', 'startedStart'],
    ['started_end', 'startedEnd'],
  ] as const) {
    const v = query(param);
    if (v !== undefined) q[key] = parseDate(param, v);
  }
  const search = query('search');
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
