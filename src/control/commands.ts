import { parseActiveQueues, parseStats } from '../celery/worker-replies.js';
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
} from './validators.js';

/**
 * The remote-control commands celery-autopilot sends, one definition each: who may run it, how
 * its arguments are validated into exactly the pidbox `arguments` Celery's own client sends
 * (docs/wire-protocol.md §B5), whether workers answer, and how its effect can be observed afterwards.
 */

// Roles are defined once, with the rest of authorisation.
import type { Role } from '../auth/roles.js';
export { ROLES, type Role } from '../auth/roles.js';

export type WireArguments = Readonly<Record<string, unknown>>;

/**
 * How a command's effect shows in a read-only command's reply. The confirmation loop asks
 * `probe` again and again until `reached` holds or the bound passes.
 */
export interface Confirmation {
  probe(args: WireArguments): { method: string; arguments: Record<string, unknown> };
  /** For effects relative to the worker's state before the command: read from a probe reply sent first. */
  baseline?(reply: unknown): number | undefined;
  /** `reply` is undefined when the worker did not answer the probe. */
  reached(reply: unknown, args: WireArguments, baseline: number | undefined): boolean;
  /** What is waited for, for the result message, e.g. "3 pool processes". */
  expectation(args: WireArguments, baseline: number | undefined): string;
}

export interface CommandDefinition {
  readonly name: CommandName;
  readonly description: string;
  /** The least role allowed to run the command with these (validated) arguments. */
  role(args: WireArguments): Role;
  /** API arguments → wire arguments; throws CommandValidationError. Unknown keys are errors. */
  validate(raw: unknown): WireArguments;
  /**
   * Arguments whose values are numbers. The API wants real numbers; remediation rules (YAML,
   * where a quoted "1" is natural) convert numeric strings for these once, at load.
   */
  readonly numericArguments?: readonly string[];
  /** false: sent as a cast (no ticket, no reply_to); workers never answer it. */
  readonly reply: boolean;
  /** Changes what `stats` / `active_queues` report (pool size, consumed queues): re-inspect after it. */
  readonly changesInspection?: boolean;
  readonly confirmation?: Confirmation;
}

export const COMMAND_NAMES = [
  'ping',
  'stats',
  'active_queues',
  'registered',
  'active',
  'reserved',
  'scheduled',
  'revoked',
  'conf',
  'pool_grow',
  'pool_shrink',
  'autoscale',
  'add_consumer',
  'cancel_consumer',
  'rate_limit',
  'time_limit',
  'revoke',
  'shutdown',
  'pool_restart',
] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export function isCommandName(name: unknown): name is CommandName {
  return typeof name === 'string' && (COMMAND_NAMES as readonly string[]).includes(name);
}

export const MAX_POOL_DELTA = 50;
export const MAX_AUTOSCALE = 1000;
/** A day: a longer task limit is a config change, not a remote tweak. */
export const MAX_TIME_LIMIT_SECONDS = 86_400;
/** Task attributes `registered` may be asked to show (celery's `taskinfoitems`). */
export const TASK_INFO_ITEMS = ['rate_limit', 'time_limit', 'soft_time_limit', 'exchange', 'routing_key', 'acks_late', 'ignore_result', 'max_retries'] as const;
/** Declaration options `add_consumer` passes on (flattened into the arguments, like Control.add_consumer). */
export const ADD_CONSUMER_OPTIONS = ['queue_durable', 'queue_auto_delete', 'exchange_durable', 'exchange_auto_delete'] as const;

function noArguments(raw: unknown): WireArguments {
  validateObject(raw, 'arguments', []);
  return {};
}

const read = (name: CommandName, description: string, validate: (raw: unknown) => WireArguments = noArguments): CommandDefinition => ({
  name,
  description,
  role: () => 'viewer',
  validate,
  reply: true,
});

// ---- confirmations -------------------------------------------------------------------------

/** `stats.pool.processes` is the list of live prefork children; it changes within ~5 s (§B5). */
const poolProcessCount = (stats: unknown): number | undefined => parseStats(stats)?.poolProcesses;

function poolSizeConfirmation(direction: 1 | -1): Confirmation {
  return {
    probe: () => ({ method: 'stats', arguments: {} }),
    baseline: poolProcessCount,
    reached: (reply, args, baseline) => baseline !== undefined && poolProcessCount(reply) === baseline + direction * (args.n as number),
    expectation: (args, baseline) =>
      baseline === undefined ? 'a pool process count in stats' : `${baseline + direction * (args.n as number)} pool processes (was ${baseline})`,
  };
}

const queueNames = (reply: unknown): string[] => parseActiveQueues(reply) ?? [];

function consumingConfirmation(consuming: boolean): Confirmation {
  return {
    probe: () => ({ method: 'active_queues', arguments: {} }),
    reached: (reply, args) => Array.isArray(reply) && queueNames(reply).includes(args.queue as string) === consuming,
    expectation: (args) => `queue ${String(args.queue)} ${consuming ? 'in' : 'gone from'} active_queues`,
  };
}

/** `registered` lists `"<task> [k=v k=v]"`, values as Python's str(); a task without set values is its bare name. */
export function registeredInfo(reply: unknown, task: string): Map<string, string> | undefined {
  if (!Array.isArray(reply)) return undefined;
  for (const entry of reply) {
    if (typeof entry !== 'string') continue;
    if (entry === task) return new Map();
    if (entry.startsWith(`${task} [`) && entry.endsWith(']')) {
      const fields = entry.slice(task.length + 2, -1).split(' ');
      return new Map(fields.map((f) => [f.slice(0, Math.max(f.indexOf('='), 0)), f.slice(f.indexOf('=') + 1)]));
    }
  }
  return undefined;
}

/** Python's str() of the JSON number we sent, for the values this module allows (no exponents). */
const pythonNumber = (n: number): string => String(n);

const rateLimitConfirmation: Confirmation = {
  probe: () => ({ method: 'registered', arguments: { taskinfoitems: ['rate_limit'] } }),
  reached: (reply, args) => {
    const info = registeredInfo(reply, args.task_name as string);
    return info !== undefined && info.get('rate_limit') === (args.rate_limit === null ? undefined : (args.rate_limit as string));
  },
  expectation: (args) =>
    args.rate_limit === null ? `no rate limit on ${String(args.task_name)} in registered` : `${String(args.task_name)} [rate_limit=${String(args.rate_limit)}] in registered`,
};

const timeLimitConfirmation: Confirmation = {
  probe: () => ({ method: 'registered', arguments: { taskinfoitems: ['soft_time_limit', 'time_limit'] } }),
  reached: (reply, args) => {
    const info = registeredInfo(reply, args.task_name as string);
    const shown = (value: unknown): string | undefined => (value === null ? undefined : pythonNumber(value as number));
    return info !== undefined && info.get('soft_time_limit') === shown(args.soft) && info.get('time_limit') === shown(args.hard);
  },
  expectation: (args) =>
    args.hard === null
      ? `no time limits on ${String(args.task_name)} in registered`
      : `${String(args.task_name)} [soft_time_limit=${String(args.soft)} time_limit=${String(args.hard)}] in registered`,
};

const autoscaleConfirmation: Confirmation = {
  probe: () => ({ method: 'stats', arguments: {} }),
  reached: (reply, args) => {
    const autoscaler = parseStats(reply)?.autoscaler;
    return autoscaler?.max === args.max && autoscaler?.min === args.min;
  },
  expectation: (args) => `stats.autoscaler max=${String(args.max)} min=${String(args.min)}`,
};

const revokeConfirmation: Confirmation = {
  probe: () => ({ method: 'revoked', arguments: {} }),
  reached: (reply, args) => {
    const ids = Array.isArray(args.task_id) ? (args.task_id as string[]) : [args.task_id as string];
    return Array.isArray(reply) && ids.every((id) => reply.includes(id));
  },
  expectation: () => 'the task ids in revoked',
};

/** A worker that stopped answering ping has gone (shutdown waits for running tasks first). */
const goneConfirmation: Confirmation = {
  probe: () => ({ method: 'ping', arguments: {} }),
  reached: (reply) => reply === undefined,
  expectation: () => 'no answer to ping',
};

// ---- argument validation -------------------------------------------------------------------

function validatePoolDelta(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['n']);
  return { n: validateInteger(args.n ?? 1, 'n', 1, MAX_POOL_DELTA) };
}

function validateAutoscale(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['max', 'min']);
  if (args.max === undefined || args.min === undefined) throw new CommandValidationError('needs both max and min');
  const max = validateInteger(args.max, 'max', 1, MAX_AUTOSCALE);
  const min = validateInteger(args.min, 'min', 0, MAX_AUTOSCALE);
  if (min > max) throw new CommandValidationError('must not be above max', 'min');
  return { max, min };
}

function validateAddConsumer(raw: unknown): WireArguments {
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

function validateRateLimitArgs(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['task_name', 'rate_limit']);
  if (!('rate_limit' in args)) throw new CommandValidationError('is required (use "" or 0 to remove the limit)', 'rate_limit');
  return { task_name: validateTaskName(args.task_name), rate_limit: validateRateLimit(args.rate_limit) };
}

function validateTimeLimit(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['task_name', 'soft', 'hard']);
  const task_name = validateTaskName(args.task_name);
  // Celery sets both at once and a missing one becomes "no limit", so a soft limit alone would
  // silently drop the hard one: both are required. Both null removes the limits.
  if (args.soft === undefined || args.hard === undefined) throw new CommandValidationError('needs both soft and hard (seconds, or both null to remove the limits)');
  if (args.soft === null && args.hard === null) return { task_name, hard: null, soft: null };
  const soft = validateSeconds(args.soft, 'soft', MAX_TIME_LIMIT_SECONDS);
  const hard = validateSeconds(args.hard, 'hard', MAX_TIME_LIMIT_SECONDS);
  if (soft > hard) throw new CommandValidationError('must not be above hard', 'soft');
  return { task_name, hard, soft };
}

function validateRevoke(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['task_id', 'terminate', 'signal']);
  const task_id = Array.isArray(args.task_id) ? validateList(args.task_id, 'task_id', MAX_TASK_IDS, validateTaskId) : validateTaskId(args.task_id);
  const terminate = args.terminate === undefined ? false : validateBoolean(args.terminate, 'terminate');
  if (args.signal !== undefined && !terminate) throw new CommandValidationError('only applies with terminate: true', 'signal');
  const signal = args.signal === undefined ? 'SIGTERM' : validateSignal(args.signal);
  return { task_id, terminate, signal };
}

function validatePoolRestart(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['modules', 'reload']);
  const modules = args.modules === undefined || args.modules === null ? null : validateList(args.modules, 'modules', MAX_MODULES, validateModuleName);
  const reload = args.reload === undefined ? false : validateBoolean(args.reload, 'reload');
  // `reloader` is a Python callable in Celery's API; its client always sends null.
  return { modules, reload, reloader: null };
}

function validateRegistered(raw: unknown): WireArguments {
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

function validateConf(raw: unknown): WireArguments {
  const args = validateObject(raw, 'arguments', ['with_defaults']);
  return args.with_defaults === undefined ? {} : { with_defaults: validateBoolean(args.with_defaults, 'with_defaults') };
}

// ---- the registry --------------------------------------------------------------------------

const definitions: CommandDefinition[] = [
  read('ping', 'Does the worker answer right now'),
  read('stats', 'Worker statistics: pool processes, prefetch count, totals per task, autoscaler'),
  read('active_queues', 'Queues the worker consumes from'),
  read('registered', 'Registered tasks, with rate_limit (or the requested taskinfoitems)', validateRegistered),
  read('active', 'Tasks executing now'),
  read('reserved', 'Tasks prefetched, waiting for a pool process'),
  read('scheduled', 'Tasks waiting for their ETA or countdown'),
  read('revoked', 'Task ids the worker has flagged as revoked'),
  // Celery censors settings whose names look secret (API, TOKEN, KEY, SECRET, PASS...) before replying.
  read('conf', 'The worker configuration that differs from the defaults', validateConf),
  {
    name: 'pool_grow',
    description: 'Add n pool processes (prefork without --autoscale only)',
    role: () => 'operator',
    validate: validatePoolDelta,
    numericArguments: ['n'],
    reply: true,
    changesInspection: true,
    confirmation: poolSizeConfirmation(1),
  },
  {
    name: 'pool_shrink',
    description: 'Remove n pool processes (prefork without --autoscale only)',
    role: () => 'operator',
    validate: validatePoolDelta,
    numericArguments: ['n'],
    reply: true,
    changesInspection: true,
    confirmation: poolSizeConfirmation(-1),
  },
  {
    name: 'autoscale',
    description: 'Change the autoscale range of a worker started with --autoscale',
    role: () => 'operator',
    validate: validateAutoscale,
    numericArguments: ['max', 'min'],
    reply: true,
    changesInspection: true,
    confirmation: autoscaleConfirmation,
  },
  {
    name: 'add_consumer',
    description:
      'Start consuming from a queue. Options and exchange type must match an existing queue/exchange exactly: on RabbitMQ a mismatch (e.g. durable) kills the worker after it replied ok',
    role: () => 'operator',
    validate: validateAddConsumer,
    reply: true,
    changesInspection: true,
    confirmation: consumingConfirmation(true),
  },
  {
    name: 'cancel_consumer',
    description: 'Stop consuming from a queue',
    role: () => 'operator',
    validate: (raw) => ({ queue: validateQueueName(validateObject(raw, 'arguments', ['queue']).queue) }),
    reply: true,
    changesInspection: true,
    confirmation: consumingConfirmation(false),
  },
  {
    name: 'rate_limit',
    description: 'Set (e.g. 10/m) or remove ("" or 0) the rate limit of a task type',
    role: () => 'operator',
    validate: validateRateLimitArgs,
    reply: true,
    confirmation: rateLimitConfirmation,
  },
  {
    name: 'time_limit',
    // Celery 5.2.6 sets the task attributes (registered shows them at once) but its task strategy
    // captured the limits when it was built: prefork enforces the new ones only after the
    // strategies are rebuilt, e.g. by pool_restart on a worker with worker_pool_restarts.
    description:
      'Set (or with both null, remove) the soft and hard time limits in seconds of a task type. Celery 5.2 enforces them only after the worker rebuilds its task strategies (pool_restart, or a broker reconnect)',
    role: () => 'operator',
    validate: validateTimeLimit,
    numericArguments: ['soft', 'hard'],
    reply: true,
    confirmation: timeLimitConfirmation,
  },
  {
    name: 'revoke',
    description: 'Flag tasks as revoked; with terminate, also signal the process running them',
    role: (args) => (args.terminate === true ? 'admin' : 'operator'),
    validate: validateRevoke,
    reply: true,
    confirmation: revokeConfirmation,
  },
  {
    name: 'shutdown',
    description: 'Warm shutdown: the worker finishes running tasks and exits (it never replies)',
    role: () => 'admin',
    validate: noArguments,
    reply: false,
    confirmation: goneConfirmation,
  },
  {
    name: 'pool_restart',
    description: 'Restart the pool processes, importing (and with reload, reloading) modules; needs worker_pool_restarts',
    role: () => 'admin',
    validate: validatePoolRestart,
    reply: true,
  },
];

export const COMMANDS: ReadonlyMap<CommandName, CommandDefinition> = new Map(definitions.map((d) => [d.name, d]));

/** A command ready to send: its definition, wire arguments, and the role it needs. */
export interface PreparedCommand {
  readonly definition: CommandDefinition;
  readonly arguments: WireArguments;
  readonly role: Role;
}

/**
 * Looks the command up and validates its arguments; pure, so the HTTP layer can check the
 * caller's role before anything is sent. Throws CommandValidationError.
 */
export function prepareCommand(name: unknown, rawArgs: unknown): PreparedCommand {
  if (!isCommandName(name)) throw new CommandValidationError(`unknown command; known: ${COMMAND_NAMES.join(', ')}`, 'command');
  const definition = COMMANDS.get(name)!;
  const args = Object.freeze(definition.validate(rawArgs));
  return { definition, arguments: args, role: definition.role(args) };
}
