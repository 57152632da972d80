import type { RawEventMessage } from '../transport/transport.js';

/**
 * Celery event decoding: a RawEventMessage from either transport becomes zero or more validated
 * events. Anything else is dropped with a reason, never thrown: one bad message must not stop
 * the stream. Field names and shapes follow Celery 5.2.6 (docs/wire-protocol.md §A5) and stay
 * lenient about what older and newer Celery versions add or leave out.
 */

export const TASK_EVENT_TYPES = [
  'task-sent',
  'task-received',
  'task-started',
  'task-succeeded',
  'task-failed',
  'task-retried',
  'task-revoked',
  'task-rejected',
  'task-cancelled',
] as const;
export const WORKER_EVENT_TYPES = ['worker-online', 'worker-heartbeat', 'worker-offline'] as const;

export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];
export type WorkerEventType = (typeof WORKER_EVENT_TYPES)[number];

const TASK_TYPES = new Set<string>(TASK_EVENT_TYPES);
const WORKER_TYPES = new Set<string>(WORKER_EVENT_TYPES);

/** Fields every Celery event carries (EventDispatcher.publish adds them). */
interface EventBase {
  readonly hostname: string;
  /** Epoch seconds on the sender's clock. */
  readonly timestamp: number;
  readonly clock?: number;
  readonly utcoffset?: number;
  readonly pid?: number;
}

export interface TaskEvent extends EventBase {
  readonly type: TaskEventType;
  readonly uuid: string;
  readonly name?: string;
  readonly retries?: number;
  readonly eta?: string | null;
  readonly expires?: string | null;
  readonly queue?: string;
  readonly routing_key?: string;
  readonly exchange?: string;
  readonly runtime?: number;
  readonly exception?: string;
  readonly terminated?: boolean;
  readonly expired?: boolean;
  readonly signum?: number | string | null;
  readonly requeue?: boolean;
}

export interface WorkerEvent extends EventBase {
  readonly type: WorkerEventType;
  readonly freq?: number;
  readonly active?: number;
  readonly processed?: number;
  readonly loadavg?: readonly number[];
  readonly sw_ident?: string;
  readonly sw_ver?: string;
  readonly sw_sys?: string;
}

export type CeleryEvent = TaskEvent | WorkerEvent;

export type DecodeDropReason =
  | 'unsupported_content_type' // pickle, yaml, msgpack...: never deserialised
  | 'unsupported_encoding'
  | 'bad_json'
  | 'not_an_event' // JSON that is neither an object nor an array of objects
  | 'unknown_type'
  | 'missing_fields';

export interface DecodeTarget {
  event(event: CeleryEvent): void;
  drop(reason: DecodeDropReason): void;
}

/** Celery's default `accept_content` for events is json; nothing else is ever parsed. */
function acceptable(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType === '') return true; // kombu treats a missing type as the default (json)
  if (contentType === 'application/json') return true; // what Celery sends: skip the split below
  const base = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return base === 'application/json';
}

export function decodeEventMessage(message: RawEventMessage, target: DecodeTarget): void {
  if (!acceptable(message.contentType)) {
    target.drop('unsupported_content_type');
    return;
  }
  const encoding = message.contentEncoding?.toLowerCase();
  if (encoding !== undefined && encoding !== '' && encoding !== 'utf-8' && encoding !== 'utf8' && encoding !== 'binary') {
    target.drop('unsupported_encoding');
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(message.body.toString('utf8'));
  } catch {
    target.drop('bad_json');
    return;
  }
  if (Array.isArray(parsed)) {
    // task.multi: a worker's buffered task events, in order (§A4).
    if (parsed.length === 0) target.drop('not_an_event');
    for (const item of parsed) validate(item, target);
  } else {
    validate(parsed, target);
  }
}

function validate(item: unknown, target: DecodeTarget): void {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    target.drop('not_an_event');
    return;
  }
  const ev = item as Record<string, unknown>;
  const type = ev.type;
  if (typeof type !== 'string') {
    target.drop('missing_fields');
    return;
  }
  const isTask = TASK_TYPES.has(type);
  if (!isTask && !WORKER_TYPES.has(type)) {
    target.drop('unknown_type');
    return;
  }
  if (typeof ev.hostname !== 'string' || ev.hostname === '' || (isTask && (typeof ev.uuid !== 'string' || ev.uuid === ''))) {
    target.drop('missing_fields');
    return;
  }
  // Older Celery versions sent timestamps as strings now and then; anything unusable becomes
  // "unknown" (NaN) rather than a drop, since counters do not need it.
  if (typeof ev.timestamp !== 'number') {
    const n = typeof ev.timestamp === 'string' ? Number(ev.timestamp) : NaN;
    ev.timestamp = Number.isFinite(n) ? n : NaN;
  }
  target.event(ev as unknown as CeleryEvent);
}

export function isTaskEvent(event: CeleryEvent): event is TaskEvent {
  return TASK_TYPES.has(event.type);
}

/**
 * The exception class name from a task-failed `exception` field, which is the repr of the
 * exception: `ValueError('boom')` → `ValueError`, `mod.Err("x")` → `mod.Err`. celery-exporter
 * labels failures with the class name; a repr that does not look like one is kept whole
 * (truncated), so nothing is silently merged.
 */
export function exceptionClassName(repr: unknown): string {
  if (typeof repr !== 'string' || repr === '') return 'unknown';
  const m = /^\s*([A-Za-z_][\w.]*)\s*\(/.exec(repr);
  if (m) return m[1]!;
  const bare = /^\s*([A-Za-z_][\w.]*)\s*$/.exec(repr);
  if (bare) return bare[1]!;
  return repr.slice(0, 64);
}
