import { hasKwarg, searched } from './kwargs-repr.js';
import { PAYLOAD_FIELDS as PAYLOAD } from './payload.js';
import type { TaskHistory } from './task-history.js';

/**
 * /api/tasks as Flower 2.1 answers it: exact filters (name, worker, state, received/started
 * ranges), its search syntax, a sort, and a page. Flower's defaults: newest state change first.
 */

export const SORT_FIELDS = ['name', 'state', 'received', 'started', 'runtime', 'timestamp'] as const;
export type SortField = (typeof SORT_FIELDS)[number];

/** Fields a search term can name (Flower's). */
export const SEARCH_FIELDS = ['name', 'state', 'worker', 'args', 'kwargs', 'result'] as const;
export type SearchField = (typeof SEARCH_FIELDS)[number];

/** Search fields that may hold personal data: only shown (and so only searchable) with the payload role. */
export const PAYLOAD_FIELDS: readonly SearchField[] = PAYLOAD;

export type SearchExpr =
  { kind: 'all' } | { kind: 'term'; field: SearchField | null; value: string } | { kind: 'and' | 'or'; children: SearchExpr[] };

export interface TaskQuery {
  limit?: number;
  offset?: number;
  sortBy?: { field: SortField; descending: boolean };
  name?: string;
  worker?: string;
  state?: string;
  /** Epoch seconds, inclusive; a task without the timestamp passes (as in Flower). */
  receivedStart?: number;
  receivedEnd?: number;
  startedStart?: number;
  startedEnd?: number;
  search?: SearchExpr;
  /** Fields unqualified search terms must not look into (the caller may not see them). */
  hidden?: readonly SearchField[];
}

export interface TaskPage {
  tasks: Readonly<TaskHistory>[];
  /** How many matched before paging. */
  filtered: number;
  total: number;
}

/** A query a client got wrong: 400 (or 403 when it asks about fields its role cannot see). */
export class TaskQueryError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 403 = 400,
  ) {
    super(message);
  }
}

const MAX_QUERY_LENGTH = 2048;
const MAX_TOKENS = 128;
const MAX_DEPTH = 5;
/** Shorter substrings match nearly everything and cost a full scan for nothing. */
const MIN_SUBSTRING = 3;

type Token = { kind: 'term' | 'and' | 'or' | '(' | ')'; value: string; at: number };

function tokenize(raw: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const push = (t: Token) => {
    tokens.push(t);
    if (tokens.length > MAX_TOKENS) throw new TaskQueryError(`search has more than ${MAX_TOKENS} terms`);
  };
  while (i < raw.length) {
    const c = raw[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(' || c === ')') {
      push({ kind: c, value: c, at: i++ });
      continue;
    }
    const at = i;
    let value = '';
    let quoted = false;
    let open = false;
    while (i < raw.length) {
      const ch = raw[i]!;
      if (ch === '\\' && (raw[i + 1] === '"' || raw[i + 1] === '\\')) {
        value += raw[i + 1];
        i += 2;
        continue;
      }
      if (ch === '"') {
        quoted = true;
        open = !open;
        i++;
        continue;
      }
      if (!open && (/\s/.test(ch) || ch === '(' || ch === ')')) break;
      value += ch;
      i++;
    }
    if (open) throw new TaskQueryError(`unterminated quote at position ${at}`);
    if (value === '') throw new TaskQueryError(`empty search term at position ${at}`);
    if (!quoted && value === 'NOT') throw new TaskQueryError(`NOT is not supported (position ${at})`);
    push({ kind: !quoted && value === 'AND' ? 'and' : !quoted && value === 'OR' ? 'or' : 'term', value, at });
  }
  return tokens;
}

/** Parses Flower's search syntax: terms, "quoted phrases", field:value, AND (implicit), OR, parentheses. */
export function parseSearch(raw: string): SearchExpr {
  const query = raw.trim();
  if (query.length > MAX_QUERY_LENGTH) throw new TaskQueryError(`search is longer than ${MAX_QUERY_LENGTH} characters`);
  const tokens = tokenize(query);
  if (tokens.length === 0) return { kind: 'all' };
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const where = (t: Token | undefined) => (t ? `position ${t.at}` : 'the end');

  const parseOr = (depth: number): SearchExpr => {
    const children = [parseAnd(depth)];
    while (peek()?.kind === 'or') {
      const op = tokens[pos++]!;
      if (!peek() || peek()!.kind === ')' || peek()!.kind === 'or' || peek()!.kind === 'and')
        throw new TaskQueryError(`OR at position ${op.at} must be followed by a search term`);
      children.push(parseAnd(depth));
    }
    return children.length === 1 ? children[0]! : { kind: 'or', children };
  };
  const parseAnd = (depth: number): SearchExpr => {
    const children = [parsePrimary(depth)];
    for (let t = peek(); t && t.kind !== ')' && t.kind !== 'or'; t = peek()) {
      if (t.kind === 'and') {
        pos++;
        const next = peek();
        if (!next || next.kind === ')' || next.kind === 'or' || next.kind === 'and')
          throw new TaskQueryError(`AND at position ${t.at} must be followed by a search term`);
      }
      children.push(parsePrimary(depth));
    }
    return children.length === 1 ? children[0]! : { kind: 'and', children };
  };
  const parsePrimary = (depth: number): SearchExpr => {
    const t = peek();
    if (t?.kind === '(') {
      if (depth >= MAX_DEPTH) throw new TaskQueryError(`search nests deeper than ${MAX_DEPTH} levels (position ${t.at})`);
      pos++;
      if (peek()?.kind === ')') throw new TaskQueryError(`empty group at position ${t.at}`);
      const inner = parseOr(depth + 1);
      if (peek()?.kind !== ')') throw new TaskQueryError(`missing closing parenthesis for position ${t.at}`);
      pos++;
      return inner;
    }
    if (t?.kind !== 'term') throw new TaskQueryError(`expected a search term at ${where(t)}`);
    pos++;
    return parseTerm(t);
  };
  const expr = parseOr(0);
  if (pos < tokens.length) throw new TaskQueryError(`unexpected '${tokens[pos]!.value}' at position ${tokens[pos]!.at}`);
  return expr;
}

function parseTerm(t: Token): SearchExpr {
  let field: SearchField | null = null;
  let value = t.value;
  const colon = value.indexOf(':');
  if (colon > 0) {
    const candidate = value.slice(0, colon).toLowerCase();
    if ((SEARCH_FIELDS as readonly string[]).includes(candidate)) {
      field = candidate as SearchField;
      value = value.slice(colon + 1);
    }
  }
  if (field === null && value.startsWith('-')) throw new TaskQueryError(`negation with '-' is not supported (position ${t.at})`);
  if (value === '') throw new TaskQueryError(`${field}: needs a value (position ${t.at})`);
  const exact = field === 'state' || (field === 'kwargs' && value.includes('='));
  if (!exact && value.trim().length < MIN_SUBSTRING)
    throw new TaskQueryError(`search terms need at least ${MIN_SUBSTRING} characters (position ${t.at})`);
  return { kind: 'term', field, value: value.toLowerCase() };
}

/** The fields a search expression names explicitly. */
export function searchFields(expr: SearchExpr): Set<SearchField> {
  const out = new Set<SearchField>();
  const walk = (e: SearchExpr) => {
    if (e.kind === 'term' && e.field) out.add(e.field);
    else if (e.kind === 'and' || e.kind === 'or') e.children.forEach(walk);
  };
  walk(expr);
  return out;
}

function matches(task: Readonly<TaskHistory>, e: SearchExpr, hidden: readonly SearchField[]): boolean {
  switch (e.kind) {
    case 'all':
      return true;
    case 'and':
      return e.children.every((c) => matches(task, c, hidden));
    case 'or':
      return e.children.some((c) => matches(task, c, hidden));
    case 'term':
      break;
  }
  const v = e.value;
  switch (e.field) {
    case 'state':
      return task.state.toLowerCase() === v;
    case 'kwargs':
      if (v.includes('=')) {
        const eq = v.indexOf('=');
        return hasKwarg(task.kwargs, v.slice(0, eq).trim(), v.slice(eq + 1).trim());
      }
      return searched(task.kwargs).includes(v);
    case 'name':
    case 'worker':
    case 'args':
    case 'result':
      return searched(task[e.field]).includes(v);
    case null: {
      const fields: Array<string | null> = [task.uuid, task.name, task.state, task.worker];
      for (const f of PAYLOAD_FIELDS) if (!hidden.includes(f)) fields.push(task[f]);
      return fields.some((f) => f !== null && searched(f).includes(v));
    }
  }
}

function sortValue(task: Readonly<TaskHistory>, field: SortField): string | number | null {
  const v = task[field];
  return typeof v === 'string' ? v.toLowerCase() : v;
}

function comparator(sortBy: TaskQuery['sortBy']): (a: Readonly<TaskHistory>, b: Readonly<TaskHistory>) => number {
  const { field, descending } = sortBy ?? { field: 'timestamp' as const, descending: true };
  const sign = descending ? -1 : 1;
  return (a, b) => {
    const va = sortValue(a, field);
    const vb = sortValue(b, field);
    // Tasks without the value come first ascending (last descending), as in Flower; ties by id.
    if (va === null || vb === null) {
      if (va !== vb) return sign * (va === null ? -1 : 1);
    } else if (va !== vb) {
      return sign * (va < vb ? -1 : 1);
    }
    return sign * (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);
  };
}

function inRange(value: number | null, start: number | undefined, end: number | undefined): boolean {
  if (value === null) return true;
  return !((start !== undefined && value < start) || (end !== undefined && value > end));
}

/** Whether a task passes the query's filters and search. */
function filterOf(q: TaskQuery): (t: Readonly<TaskHistory>) => boolean {
  const hidden = q.hidden ?? [];
  const search = q.search && q.search.kind !== 'all' ? q.search : undefined;
  const state = q.state?.toUpperCase();
  return (t) =>
    (q.name === undefined || t.name === q.name) &&
    (q.worker === undefined || t.worker === q.worker) &&
    (state === undefined || t.state === state) &&
    inRange(t.received, q.receivedStart, q.receivedEnd) &&
    inRange(t.started, q.startedStart, q.startedEnd) &&
    (search === undefined || matches(t, search, hidden));
}

/** The requested page of the tasks that passed, in the query's order. */
function pageOf(hits: Readonly<TaskHistory>[], q: TaskQuery, total: number): TaskPage {
  const offset = q.offset ?? 0;
  const end = q.limit === undefined ? hits.length : Math.min(hits.length, offset + q.limit);
  const cmp = comparator(q.sortBy);
  const ordered = end < hits.length / 4 ? smallest(hits, end, cmp) : hits.sort(cmp);
  return { tasks: ordered.slice(offset, end), filtered: hits.length, total };
}

export function runQuery(tasks: ReadonlyMap<string, Readonly<TaskHistory>>, q: TaskQuery): TaskPage {
  const keep = filterOf(q);
  const hits: Readonly<TaskHistory>[] = [];
  for (const t of tasks.values()) if (keep(t)) hits.push(t);
  return pageOf(hits, q, tasks.size);
}

/** Tasks looked at between two pauses of runQueryInSlices: a few milliseconds of searching. */
export const QUERY_SLICE = 1000;

/**
 * runQuery for HTTP requests: the tasks are looked at QUERY_SLICE at a time, with `pause()` (the
 * event loop's turn) in between, so a search over a full store never holds the process for
 * longer than one slice: probes, scrapes and other requests are answered meanwhile. The tasks are
 * taken as they are at the start (the store changes while this waits).
 */
export async function runQueryInSlices(
  tasks: ReadonlyMap<string, Readonly<TaskHistory>>,
  q: TaskQuery,
  pause: () => Promise<void>,
): Promise<TaskPage> {
  const keep = filterOf(q);
  const all = [...tasks.values()];
  const hits: Readonly<TaskHistory>[] = [];
  for (let from = 0; from < all.length; from += QUERY_SLICE) {
    if (from > 0) await pause();
    const to = Math.min(all.length, from + QUERY_SLICE);
    for (let i = from; i < to; i++) if (keep(all[i]!)) hits.push(all[i]!);
  }
  return pageOf(hits, q, all.length);
}

/** The k first items under `cmp`, in order, without sorting everything (a page of 100 from 10 000). */
function smallest<T>(items: readonly T[], k: number, cmp: (a: T, b: T) => number): T[] {
  const top: T[] = [];
  if (k <= 0) return top;
  for (const item of items) {
    if (top.length === k && cmp(item, top[k - 1]!) >= 0) continue;
    let lo = 0;
    let hi = top.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp(item, top[mid]!) < 0) hi = mid;
      else lo = mid + 1;
    }
    top.splice(lo, 0, item);
    if (top.length > k) top.pop();
  }
  return top;
}
