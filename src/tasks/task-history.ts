import type { TaskEvent, TaskEventType } from '../celery/events.js';

/**
 * One task as Celery's own `celery.events.state.Task` sees it, built from its events. Field names
 * are Celery's (and so Flower's), timestamps are epoch seconds on the sender's clock.
 */
export const TASK_STATES = ['PENDING', 'RECEIVED', 'STARTED', 'SUCCESS', 'FAILURE', 'RETRY', 'REVOKED', 'REJECTED'] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** A recent task's history for the task API and the console (the exporter's in-flight view is state/in-flight-tasks.ts). */
export interface TaskHistory {
  readonly uuid: string;
  name: string | null;
  state: TaskState;
  /** Timestamp of the event that set `state`. */
  timestamp: number | null;
  sent: number | null;
  received: number | null;
  started: number | null;
  succeeded: number | null;
  failed: number | null;
  retried: number | null;
  revoked: number | null;
  rejected: number | null;
  /** Python reprs, as Celery puts them in events (already cut at argsrepr_maxsize), cut again at our limits. */
  args: string | null;
  kwargs: string | null;
  result: string | null;
  exception: string | null;
  traceback: string | null;
  eta: string | null;
  expires: string | null;
  retries: number | null;
  runtime: number | null;
  /** Hostname of the worker that sent the latest worker event. */
  worker: string | null;
  /** Hostname of the client that sent task-sent. */
  client: string | null;
  exchange: string | null;
  routing_key: string | null;
  queue: string | null;
  root_id: string | null;
  parent_id: string | null;
  /** The task this one re-runs (POST /api/task/rerun): ours, not Celery's; set when we publish it. */
  rerun_of: string | null;
  clock: number;
  /** task-revoked: terminated / expired / signum. */
  terminated: boolean | null;
  expired: boolean | null;
  signum: string | null;
}

/** Per-field length caps: what one task may cost in memory is bounded by these. */
export interface FieldLimits {
  args: number;
  kwargs: number;
  result: number;
  exception: number;
  traceback: number;
}

const EVENT_STATE: Record<TaskEventType, TaskState | null> = {
  'task-sent': 'PENDING',
  'task-received': 'RECEIVED',
  'task-started': 'STARTED',
  'task-succeeded': 'SUCCESS',
  'task-failed': 'FAILURE',
  'task-retried': 'RETRY',
  'task-revoked': 'REVOKED',
  'task-rejected': 'REJECTED',
  // Not a state in celery.states; Celery records it as a custom state. Kept as a timestamp only.
  'task-cancelled': null,
};

type TimestampField = 'sent' | 'received' | 'started' | 'succeeded' | 'failed' | 'retried' | 'revoked' | 'rejected';
const EVENT_TIMESTAMP: Partial<Record<TaskEventType, TimestampField>> = {
  'task-sent': 'sent',
  'task-received': 'received',
  'task-started': 'started',
  'task-succeeded': 'succeeded',
  'task-failed': 'failed',
  'task-retried': 'retried',
  'task-revoked': 'revoked',
  'task-rejected': 'rejected',
};

/**
 * celery.states.PRECEDENCE, most final first: an event whose state comes later in this list than
 * the task's current state logically happened before it (it arrived late), so it may fill in
 * fields but not move the state back. RETRY has no place in this order (see `applyEvent`).
 */
const PRECEDENCE: readonly (TaskState | null)[] = [
  'SUCCESS',
  'FAILURE',
  null,
  'REVOKED',
  'STARTED',
  'RECEIVED',
  'REJECTED',
  'RETRY',
  'PENDING',
];
const rank = (s: TaskState): number => PRECEDENCE.indexOf(s);

/** States ordered by their event's timestamp rather than by precedence (see `applyEvent`). */
const BY_TIME = new Set<TaskState>(['RETRY', 'REJECTED']);

/** Fields a late task-received may still contribute (Celery's merge_rules for RECEIVED). */
const RECEIVED_MERGE = new Set(['name', 'args', 'kwargs', 'parent_id', 'root_id', 'retries', 'eta', 'expires']);

export function newTask(uuid: string): TaskHistory {
  return {
    uuid,
    name: null,
    state: 'PENDING',
    timestamp: null,
    sent: null,
    received: null,
    started: null,
    succeeded: null,
    failed: null,
    retried: null,
    revoked: null,
    rejected: null,
    args: null,
    kwargs: null,
    result: null,
    exception: null,
    traceback: null,
    eta: null,
    expires: null,
    retries: null,
    runtime: null,
    worker: null,
    client: null,
    exchange: null,
    routing_key: null,
    queue: null,
    root_id: null,
    parent_id: null,
    rerun_of: null,
    clock: 0,
    terminated: null,
    expired: null,
    signum: null,
  };
}

/** What applying one event did: the store counts duplicates and keeps its name index right. */
export type ApplyOutcome = 'applied' | 'merged' | 'duplicate';

/**
 * Celery's Task.event, with two refinements so replays and reordering cannot leave a wrong state:
 *  - a redelivered event (same type, same sender timestamp as already recorded) changes nothing;
 *  - around RETRY and REJECTED, which end an attempt but not always the task (a retry or a
 *    requeue brings it back), the sender timestamps decide: an event older than the current
 *    state's only fills in fields, a newer one (the next attempt's) moves the state. Celery's
 *    precedence lets any event overwrite RETRY and ranks REJECTED below STARTED, so a task
 *    rejected while running would stay STARTED there.
 * Otherwise: an event that logically precedes the current state fills in fields (task-received
 * only its own: name, args, ...), and one that follows it sets state, timestamp and fields.
 */
export function applyEvent(task: TaskHistory, event: TaskEvent, limits: FieldLimits): ApplyOutcome {
  const ts = Number.isFinite(event.timestamp) ? event.timestamp : null;
  const tsField = EVENT_TIMESTAMP[event.type];
  if (tsField !== undefined && ts !== null && task[tsField] === ts) return 'duplicate';
  if (tsField !== undefined) task[tsField] = ts;
  const state = EVENT_STATE[event.type];
  let advances: boolean;
  if (state === null) advances = false;
  else if (BY_TIME.has(state) || BY_TIME.has(task.state)) advances = task.timestamp === null || ts === null || ts >= task.timestamp;
  else advances = !(rank(state) > rank(task.state));
  if (advances && state !== null) {
    task.state = state;
    task.timestamp = ts;
    copyFields(task, event, limits, undefined);
    return 'applied';
  }
  copyFields(task, event, limits, state === 'RECEIVED' ? RECEIVED_MERGE : undefined);
  return 'merged';
}

/** Copies what the event carries; `only` restricts it to a merge rule's fields. */
function copyFields(task: TaskHistory, e: TaskEvent, limits: FieldLimits, only: Set<string> | undefined): void {
  const raw = e as unknown as Record<string, unknown>;
  // task-sent and task-received carry these; a merge rule may not allow them all (see RECEIVED_MERGE).
  if (e.type === 'task-sent' || e.type === 'task-received') {
    if (raw.name !== undefined && (only === undefined || only.has('name'))) task.name = text(raw.name, 512) ?? task.name;
    if (raw.args !== undefined && (only === undefined || only.has('args'))) task.args = text(raw.args, limits.args);
    if (raw.kwargs !== undefined && (only === undefined || only.has('kwargs'))) task.kwargs = text(raw.kwargs, limits.kwargs);
    if (raw.parent_id !== undefined && (only === undefined || only.has('parent_id'))) task.parent_id = text(raw.parent_id, 255);
    if (raw.root_id !== undefined && (only === undefined || only.has('root_id'))) task.root_id = text(raw.root_id, 255);
    if (typeof raw.retries === 'number' && Number.isFinite(raw.retries) && (only === undefined || only.has('retries')))
      task.retries = raw.retries;
    if (raw.eta !== undefined && (only === undefined || only.has('eta'))) task.eta = text(raw.eta, 64);
    if (raw.expires !== undefined && (only === undefined || only.has('expires'))) task.expires = text(raw.expires, 64);
  }
  if (only !== undefined) return;
  if (e.type === 'task-sent') task.client = text(e.hostname, 255);
  else task.worker = text(e.hostname, 255);
  if (typeof raw.clock === 'number' && Number.isFinite(raw.clock)) task.clock = raw.clock;
  if (raw.result !== undefined) task.result = text(raw.result, limits.result);
  if (raw.exception !== undefined) task.exception = text(raw.exception, limits.exception);
  if (raw.traceback !== undefined) task.traceback = text(raw.traceback, limits.traceback);
  if (typeof raw.runtime === 'number' && Number.isFinite(raw.runtime)) task.runtime = raw.runtime;
  if (raw.exchange !== undefined) task.exchange = text(raw.exchange, 255);
  if (raw.routing_key !== undefined) task.routing_key = text(raw.routing_key, 255);
  if (raw.queue !== undefined) task.queue = text(raw.queue, 255);
  if (typeof raw.terminated === 'boolean') task.terminated = raw.terminated;
  if (typeof raw.expired === 'boolean') task.expired = raw.expired;
  if (raw.signum !== undefined && raw.signum !== null) task.signum = text(String(raw.signum), 32);
}

/** A string field from the wire, cut to `max` characters (an ellipsis marks the cut); anything else is null. */
export function text(value: unknown, max: number): string | null {
  if (typeof value !== 'string') return null;
  return value.length > max ? `${value.slice(0, Math.max(0, max - 1))}…` : value;
}
