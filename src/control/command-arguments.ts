import {
  CommandValidationError,
  MAX_MODULES,
  MAX_TASK_IDS,
  validateBoolean,
  validateExchangeName,
  validateExchangeType,
  validateInteger,
  validateList,
  validateModuleName,
  validateObject,
  validateQueueName,
  validateRateLimit,
  validateRoutingKey,
  validateSeconds,
  validateSignal,
  validateTaskId,
  validateTaskName,
} from '../celery/validators.js';

/**
 * Argument shaping per command: API arguments in, exactly the pidbox `arguments` Celery's own
 * client sends out (docs/wire-protocol.md §B5). Each function throws CommandValidationError.
 */

export type WireArguments = Readonly<Record<string, unknown>>;

export const MAX_POOL_DELTA = 50;
export const MAX_AUTOSCALE = 1000;
/** A day: a longer task limit is a config change, not a remote tweak. */
export const MAX_TIME_LIMIT_SECONDS = 86_400;
/** Task attributes `registered` may be asked to show (celery's `taskinfoitems`). */
export const TASK_INFO_ITEMS = [
  'rate_limit',
  'time_limit',
  'soft_time_limit',
  'exchange',
  'routing_key',
  'acks_late',
  'ignore_result',
  'max_retries',
] as const;
/** Declaration options `add_consumer` passes on (flattened into the arguments, like Control.add_consumer). */
export const ADD_CONSUMER_OPTIONS = ['queue_durable', 'queue_auto_delete', 'exchange_durable', 'exchange_auto_delete'] as const;

export function noArguments(raw: unknown): WireArguments {
  validateObject(raw, 'arguments', []);
  return {};
}

export function validatePoolDelta(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['n']);
  return { n: validateInteger(args.n ?? 1, 'n', 1, MAX_POOL_DELTA) };
}

export function validateAutoscale(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['max', 'min']);
  if (args.max === undefined || args.min === undefined) throw new CommandValidationError('needs both max and min');
  const max = validateInteger(args.max, 'max', 1, MAX_AUTOSCALE);
  const min = validateInteger(args.min, 'min', 0, MAX_AUTOSCALE);
  if (min > max) throw new CommandValidationError('must not be above max', 'min');
  return { max, min };
}

export function validateAddConsumer(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['queue', 'exchange', 'exchange_type', 'routing_key', 'options']);
  const options = validateObject(args.options, 'options', ADD_CONSUMER_OPTIONS);
  const flattened: Record<string, boolean> = {};
  for (const key of ADD_CONSUMER_OPTIONS) {
    if (options[key] !== undefined) flattened[key] = validateBoolean(options[key], `options.${key}`);
  }
  // Celery's Control.add_consumer: the four named arguments (null when not given, the worker then
  // uses the queue name as exchange and routing key), then the options flattened beside them.
  return {
    queue: validateQueueName(args.queue, 'queue'),
    exchange: args.exchange === undefined || args.exchange === null ? null : validateExchangeName(args.exchange, 'exchange'),
    exchange_type: args.exchange_type === undefined || args.exchange_type === null ? 'direct' : validateExchangeType(args.exchange_type),
    routing_key: args.routing_key === undefined || args.routing_key === null ? null : validateRoutingKey(args.routing_key),
    ...flattened,
  };
}

export function validateRateLimitArgs(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['task_name', 'rate_limit']);
  if (!('rate_limit' in args)) throw new CommandValidationError('is required (use "" or 0 to remove the limit)', 'rate_limit');
  return { task_name: validateTaskName(args.task_name), rate_limit: validateRateLimit(args.rate_limit) };
}

export function validateTimeLimit(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['task_name', 'soft', 'hard']);
  const task_name = validateTaskName(args.task_name);
  // Celery sets both at once and a missing one becomes "no limit", so a soft limit alone would
  // silently drop the hard one: both are required. Both null removes the limits.
  if (args.soft === undefined || args.hard === undefined)
    throw new CommandValidationError('needs both soft and hard (seconds, or both null to remove the limits)');
  if (args.soft === null && args.hard === null) return { task_name, hard: null, soft: null };
  const soft = validateSeconds(args.soft, 'soft', MAX_TIME_LIMIT_SECONDS);
  const hard = validateSeconds(args.hard, 'hard', MAX_TIME_LIMIT_SECONDS);
  if (soft > hard) throw new CommandValidationError('must not be above hard', 'soft');
  return { task_name, hard, soft };
}

export function validateRevoke(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['task_id', 'terminate', 'signal']);
  const task_id = Array.isArray(args.task_id)
    ? validateList(args.task_id, 'task_id', MAX_TASK_IDS, validateTaskId)
    : validateTaskId(args.task_id);
  const terminate = args.terminate === undefined ? false : validateBoolean(args.terminate, 'terminate');
  if (args.signal !== undefined && !terminate) throw new CommandValidationError('only applies with terminate: true', 'signal');
  const signal = args.signal === undefined ? 'SIGTERM' : validateSignal(args.signal);
  return { task_id, terminate, signal };
}

export function validatePoolRestart(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['modules', 'reload']);
  const modules =
    args.modules === undefined || args.modules === null ? null : validateList(args.modules, 'modules', MAX_MODULES, validateModuleName);
  const reload = args.reload === undefined ? false : validateBoolean(args.reload, 'reload');
  // `reloader` is a Python callable in Celery's API; its client always sends null.
  return { modules, reload, reloader: null };
}

export function validateRegistered(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['taskinfoitems']);
  if (args.taskinfoitems === undefined) return {};
  const items = validateList(args.taskinfoitems, 'taskinfoitems', TASK_INFO_ITEMS.length, (value, field) => {
    if (typeof value !== 'string' || !(TASK_INFO_ITEMS as readonly string[]).includes(value)) {
      throw new CommandValidationError(`must be one of ${TASK_INFO_ITEMS.join(', ')}`, field);
    }
    return value;
  });
  return { taskinfoitems: items };
}

export function validateConf(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['with_defaults']);
  return args.with_defaults === undefined ? {} : { with_defaults: validateBoolean(args.with_defaults, 'with_defaults') };
}
