import { validateQueueName, validateTaskId, CommandValidationError } from '../celery/validators.js';
import { NotJsonError, assertJson } from './python-text.js';

/**
 * The body of Flower's POST /api/task/{apply,async-apply,send-task}/<name>: `args`, `kwargs` and
 * the apply_async options Flower passes through, checked strictly (an unknown option is an error
 * here, where Flower would hand it to Celery unseen).
 */
export interface SubmitRequest {
  args: unknown[];
  kwargs: Record<string, unknown>;
  taskId?: string;
  queue?: string;
  priority: number;
  eta?: Date;
  expires?: Date;
  timeLimit?: [number | null, number | null];
  ignoreResult?: boolean;
}

export class SubmitError extends Error {}

export const SUBMIT_OPTIONS = [
  'args',
  'kwargs',
  'countdown',
  'eta',
  'expires',
  'queue',
  'routing_key',
  'priority',
  'task_id',
  'time_limit',
  'soft_time_limit',
  'shadow',
  'ignore_result',
] as const;

const MAX_DELAY_SECONDS = 366 * 86_400;

/**
 * A date as Flower takes it (`%Y-%m-%d %H:%M:%S.%f`, read as UTC, which is Celery's default
 * timezone) or ISO 8601 with a zone; or, for `expires` and `countdown`, seconds from now.
 */
function parseDate(field: string, value: unknown, now: Date, secondsAllowed: boolean): Date {
  if (secondsAllowed && typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0 || value > MAX_DELAY_SECONDS)
      throw new SubmitError(`${field} must be seconds from 0 to ${MAX_DELAY_SECONDS}`);
    return new Date(now.getTime() + value * 1000);
  }
  if (typeof value === 'string') {
    const v = value.trim();
    if (secondsAllowed && /^\d+(\.\d+)?$/.test(v)) return parseDate(field, Number(v), now, true);
    const flower = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(v);
    if (flower) {
      const [y, mo, d, h, mi, s] = flower.slice(1, 7).map(Number) as [number, number, number, number, number, number];
      const ms = flower[7] ? Math.floor(Number(flower[7].padEnd(6, '0')) / 1000) : 0;
      const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms));
      if (date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && s < 60) return date;
    } else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v) && Number.isFinite(Date.parse(v))) {
      return new Date(Date.parse(v));
    }
  }
  throw new SubmitError(
    `${field} must be ${secondsAllowed ? 'seconds from now or ' : ''}a date like '2024-05-01 13:45:00.000000' (UTC) or ISO 8601 with a zone`,
  );
}

function seconds(field: string, value: unknown): number | null {
  if (value === null) return null;
  const n = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > 1_000_000)
    throw new SubmitError(`${field} must be seconds above 0 and at most 1000000`);
  return n;
}

export function parseSubmitBody(body: unknown, now: Date): SubmitRequest {
  const o = body === undefined || body === null ? {} : body;
  if (typeof o !== 'object' || Array.isArray(o)) throw new SubmitError('the body must be a JSON object of args, kwargs and options');
  const b = o as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !(SUBMIT_OPTIONS as readonly string[]).includes(k));
  if (unknown.length > 0)
    throw new SubmitError(`unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${SUBMIT_OPTIONS.join(', ')})`);
  const args = b.args ?? [];
  const kwargs = b.kwargs ?? {};
  if (!Array.isArray(args)) throw new SubmitError('args must be an array');
  if (typeof kwargs !== 'object' || kwargs === null || Array.isArray(kwargs)) throw new SubmitError('kwargs must be an object');
  try {
    assertJson(args, 'args');
    assertJson(kwargs, 'kwargs');
  } catch (e) {
    if (e instanceof NotJsonError) throw new SubmitError(e.message);
    throw e;
  }
  const out: SubmitRequest = { args, kwargs: kwargs as Record<string, unknown>, priority: 0 };
  const validated = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof CommandValidationError) throw new SubmitError(`${e.field ?? 'value'}: ${e.message}`);
      throw e;
    }
  };
  if (b.task_id !== undefined) out.taskId = validated(() => validateTaskId(b.task_id, 'task_id'));
  if (b.queue !== undefined && b.routing_key !== undefined && b.queue !== b.routing_key)
    throw new SubmitError('give queue or routing_key, not two different ones');
  const queue = b.queue ?? b.routing_key;
  if (queue !== undefined) out.queue = validated(() => validateQueueName(queue, b.queue !== undefined ? 'queue' : 'routing_key'));
  if (b.priority !== undefined) {
    if (typeof b.priority !== 'number' || !Number.isInteger(b.priority) || b.priority < 0 || b.priority > 255)
      throw new SubmitError('priority must be a whole number from 0 to 255');
    out.priority = b.priority;
  }
  if (b.countdown !== undefined && b.eta !== undefined) throw new SubmitError('give countdown or eta, not both');
  if (b.countdown !== undefined) out.eta = parseDate('countdown', b.countdown, now, true);
  if (b.eta !== undefined) out.eta = parseDate('eta', b.eta, now, false);
  if (b.expires !== undefined) out.expires = parseDate('expires', b.expires, now, true);
  if (b.time_limit !== undefined || b.soft_time_limit !== undefined) {
    out.timeLimit = [
      b.time_limit === undefined ? null : seconds('time_limit', b.time_limit),
      b.soft_time_limit === undefined ? null : seconds('soft_time_limit', b.soft_time_limit),
    ];
  }
  // Celery logs and reports a shadowed task under the shadow name: the console and the audit would
  // show a name other than the code that ran.
  if (b.shadow !== undefined) throw new SubmitError('shadow is not accepted: a task is shown under the name it runs as');
  if (b.ignore_result !== undefined) {
    if (typeof b.ignore_result !== 'boolean') throw new SubmitError('ignore_result must be true or false');
    out.ignoreResult = b.ignore_result;
  }
  return out;
}
