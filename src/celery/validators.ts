/**
 * Validators for every value that can reach the broker: remote-control commands, submitted tasks,
 * remediation targets and discovered queue names all pass through them. They are strict on
 * purpose: a remote-control command goes to live workers, and what Celery would accept is wider
 * than what an operator ever needs (Python's float() takes "1e3", "inf" and " 10 "; a queue name
 * that collides with an existing queue's arguments kills the worker, §B5). Each one throws a
 * CommandValidationError naming the field; none echoes the rejected value in full.
 */

/** A request the caller must fix (HTTP 400); nothing was sent. */
export class CommandValidationError extends Error {
  constructor(
    message: string,
    /** The argument or target field at fault, e.g. `n`, `options.queue_durable`, `workers[2]`. */
    readonly field?: string,
  ) {
    super(field ? `${field}: ${message}` : message);
    this.name = 'CommandValidationError';
  }
}

export const MAX_NAME_LENGTH = 200;
/** Workers one command may name; far above a real cluster, low enough to bound the reply wait. */
export const MAX_WORKERS_PER_COMMAND = 1000;
export const MAX_TASK_IDS = 100;
export const MAX_MODULES = 50;

// Node names are `name@host` as `celery worker -n` sets them after %h expansion. Host parts are
// DNS-like; `*`, `?`, quotes, spaces and control characters are never part of a real node name.
const NODE_PART = '[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?';
const WORKER_NAME = new RegExp(`^${NODE_PART}@${NODE_PART}$`);
// fnmatch (kombu's "glob" matcher) also knows [seq] classes; `*` and `?` cover real use.
const GLOB_PATTERN = /^[A-Za-z0-9_.@*?-]+$/;
// RabbitMQ allows any UTF-8 up to 255 bytes; Celery users stick to this set, and `#`/`*` would be
// read as topic wildcards in the default routing key (the queue name).
const QUEUE_NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_.:-]*[A-Za-z0-9_])?$/;
const ROUTING_KEY = /^[A-Za-z0-9_.:*#-]+$/;
const IDENTIFIER = '[A-Za-z_][A-Za-z0-9_]*';
const DOTTED_NAME = new RegExp(`^${IDENTIFIER}(?:\\.${IDENTIFIER})*$`);
/** Longest task id accepted: Celery has no limit, but an id is a key in every worker's revoked set. */
export const MAX_TASK_ID_LENGTH = 255;
// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f-\x9f]/;
// celery.utils.time.rate: "<float>[/s|/m|/h]". Python's float() is looser; this is the useful part.
const RATE_LIMIT = /^(\d{1,9}(?:\.\d{1,6})?|\.\d{1,6})(?:\/([smh]))?$/;

/**
 * Broker objects a command must never declare: redeclaring Celery's own exchanges/queues with
 * other arguments is a 406 that kills the worker's connection, and `amq.` names are reserved.
 */
const RESERVED_EXCHANGES = new Set(['celeryev', 'celery.pidbox', 'reply.celery.pidbox']);
const isReservedBrokerName = (name: string): boolean =>
  name.startsWith('amq.') || name.startsWith('celeryev.') || name.endsWith('.pidbox') || RESERVED_EXCHANGES.has(name);

export const EXCHANGE_TYPES = ['direct', 'topic', 'fanout', 'headers'] as const;
export type ExchangeType = (typeof EXCHANGE_TYPES)[number];

/** Signals `revoke(terminate=True)` may send, by name (numbers differ between platforms). */
export const REVOKE_SIGNALS = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] as const;
export type RevokeSignal = (typeof REVOKE_SIGNALS)[number];

function requireString(value: unknown, field: string, what: string): string {
  if (typeof value !== 'string') throw new CommandValidationError(`must be ${what} (a string)`, field);
  if (value.length === 0) throw new CommandValidationError(`must be ${what}, not empty`, field);
  if (value.length > MAX_NAME_LENGTH) throw new CommandValidationError(`must be at most ${MAX_NAME_LENGTH} characters`, field);
  return value;
}

/** A Celery node name, `name@host`, exactly as the worker's `-n` made it. */
export function validateWorkerName(value: unknown, field = 'worker'): string {
  const name = requireString(value, field, 'a worker name like celery@host');
  if (!WORKER_NAME.test(name)) {
    throw new CommandValidationError('must be a worker name like celery@host (letters, digits, _ . -; no wildcards)', field);
  }
  return name;
}

/**
 * A glob over node names (kombu's fnmatch matcher). A pattern made only of wildcards is "every
 * worker" in disguise and is refused: that must be asked for explicitly with `{ all: true }`.
 */
export function validateWorkerPattern(value: unknown, field = 'pattern'): string {
  const pattern = requireString(value, field, 'a glob pattern like celery@web-*');
  if (!GLOB_PATTERN.test(pattern)) {
    throw new CommandValidationError('may only hold letters, digits, _ . - @ and the wildcards * ?', field);
  }
  if (!/[A-Za-z0-9]/.test(pattern)) {
    throw new CommandValidationError('matches every worker; target all workers explicitly instead', field);
  }
  return pattern;
}

/** A task queue name a worker may consume from (`add_consumer`, `cancel_consumer`). */
export function validateQueueName(value: unknown, field = 'queue'): string {
  const name = requireString(value, field, 'a queue name');
  if (!QUEUE_NAME.test(name)) throw new CommandValidationError('must be a queue name (letters, digits, _ . : -)', field);
  if (isReservedBrokerName(name)) throw new CommandValidationError('is reserved for the broker or Celery itself', field);
  return name;
}

export function validateExchangeName(value: unknown, field = 'exchange'): string {
  const name = requireString(value, field, 'an exchange name');
  if (!QUEUE_NAME.test(name)) throw new CommandValidationError('must be an exchange name (letters, digits, _ . : -)', field);
  if (isReservedBrokerName(name)) throw new CommandValidationError('is reserved for the broker or Celery itself', field);
  return name;
}

export function validateExchangeType(value: unknown, field = 'exchange_type'): ExchangeType {
  if (typeof value !== 'string' || !(EXCHANGE_TYPES as readonly string[]).includes(value)) {
    throw new CommandValidationError(`must be one of ${EXCHANGE_TYPES.join(', ')}`, field);
  }
  return value as ExchangeType;
}

export function validateRoutingKey(value: unknown, field = 'routing_key'): string {
  const key = requireString(value, field, 'a routing key');
  if (!ROUTING_KEY.test(key)) throw new CommandValidationError('must be a routing key (letters, digits, _ . : - * #)', field);
  return key;
}

/** A registered task name: dotted Python identifiers, e.g. `proj.tasks.add`. */
export function validateTaskName(value: unknown, field = 'task_name'): string {
  const name = requireString(value, field, 'a task name like proj.tasks.add');
  if (!DOTTED_NAME.test(name)) throw new CommandValidationError('must be a task name of dotted identifiers, e.g. proj.tasks.add', field);
  return name;
}

/** A Python module to import on `pool_restart`, e.g. `proj.tasks`. */
export function validateModuleName(value: unknown, field = 'module'): string {
  const name = requireString(value, field, 'a module name like proj.tasks');
  if (!DOTTED_NAME.test(name)) throw new CommandValidationError('must be a module name of dotted identifiers, e.g. proj.tasks', field);
  return name;
}

/**
 * A task id as Celery accepts one: any string (apply_async(task_id=...) takes custom ids, not only
 * UUIDs), kept exactly as given since Celery compares ids as strings. Still bounded: not empty, not
 * only spaces, at most MAX_TASK_ID_LENGTH characters, no control characters.
 */
export function validateTaskId(value: unknown, field = 'task_id'): string {
  if (typeof value !== 'string' || value.trim() === '') throw new CommandValidationError('must be a task id (a non-empty string)', field);
  if (value.length > MAX_TASK_ID_LENGTH)
    throw new CommandValidationError(`must be a task id of at most ${MAX_TASK_ID_LENGTH} characters`, field);
  if (CONTROL_CHARACTERS.test(value)) throw new CommandValidationError('must be a task id without control characters', field);
  return value;
}

export const MAX_RATE_PER_UNIT = 1_000_000;

/**
 * A Celery rate limit, returned as the wire value: `"10/m"`, `"0.5/s"`, `"100"` (per second),
 * or null to remove the limit (given as "", "0", 0 or null). Anything Celery's `rate()` would
 * reject, and values Python reads differently from us, are refused here so they never reach a
 * worker.
 */
export function validateRateLimit(value: unknown, field = 'rate_limit'): string | null {
  if (value === null || value === '' || value === 0) return null;
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0)
      throw new CommandValidationError('must be a positive number of tasks per second, or 0 to disable', field);
    text = String(value);
  } else if (typeof value === 'string') {
    text = value;
  } else {
    throw new CommandValidationError('must be a rate like 10/m, 0.5/s or 100, or empty to disable', field);
  }
  const match = RATE_LIMIT.exec(text);
  if (!match) throw new CommandValidationError('must be a rate like 10/m, 0.5/s or 100 (tasks per s, m or h), or empty to disable', field);
  const amount = Number(match[1]);
  if (amount === 0) return null;
  if (amount > MAX_RATE_PER_UNIT) throw new CommandValidationError(`must be at most ${MAX_RATE_PER_UNIT} per unit`, field);
  return text;
}

export function validateSignal(value: unknown, field = 'signal'): RevokeSignal {
  if (typeof value !== 'string' || !(REVOKE_SIGNALS as readonly string[]).includes(value)) {
    throw new CommandValidationError(`must be one of ${REVOKE_SIGNALS.join(', ')}`, field);
  }
  return value as RevokeSignal;
}

export function validateInteger(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new CommandValidationError(`must be an integer from ${min} to ${max}`, field);
  }
  return value;
}

/** A duration in seconds, > 0 and at most `max`, with at most millisecond precision. */
export function validateSeconds(value: unknown, field: string, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new CommandValidationError(`must be a number of seconds above 0 and at most ${max}`, field);
  }
  if (Math.round(value * 1000) !== value * 1000) throw new CommandValidationError('must have at most millisecond precision', field);
  return value;
}

export function validateBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw new CommandValidationError('must be true or false', field);
  return value;
}

/** A plain JSON object with only the allowed keys; missing is `{}`. */
export function validateObject(value: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new CommandValidationError('must be an object', field);
  }
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    const names = unknown
      .slice(0, 3)
      .map((key) => JSON.stringify(key.slice(0, 40)))
      .join(', ');
    const where = field === 'arguments' ? '' : ` in ${field}`;
    throw new CommandValidationError(
      allowed.length === 0 ? `takes no arguments, got ${names}` : `unknown argument ${names}${where}; allowed: ${allowed.join(', ')}`,
      field === 'arguments' ? undefined : field,
    );
  }
  return record;
}

/** A non-empty list of at most `max` items, each validated, duplicates removed (first wins). */
export function validateList<T>(value: unknown, field: string, max: number, item: (v: unknown, field: string) => T): T[] {
  if (!Array.isArray(value)) throw new CommandValidationError('must be a list', field);
  if (value.length === 0) throw new CommandValidationError('must not be empty', field);
  if (value.length > max) throw new CommandValidationError(`must hold at most ${max} items`, field);
  return [...new Set(value.map((v, i) => item(v, `${field}[${i}]`)))];
}
