import { CommandValidationError, validateObject, validateQueueName } from '../celery/validators.js';
import {
  noArguments,
  validateAddConsumer,
  validateAutoscale,
  validateConf,
  validatePoolDelta,
  validatePoolRestart,
  validateRateLimitArgs,
  validateRegistered,
  validateRevoke,
  validateTimeLimit,
  type WireArguments,
} from './command-arguments.js';
import {
  autoscaleConfirmation,
  consumingConfirmation,
  goneConfirmation,
  poolSizeConfirmation,
  rateLimitConfirmation,
  revokeConfirmation,
  timeLimitConfirmation,
  type Confirmation,
} from './confirmations.js';

/**
 * The remote-control commands celery-autopilot sends, one definition each: who may run it, how
 * its arguments are validated into exactly the pidbox `arguments` Celery's own client sends
 * (docs/wire-protocol.md §B5), whether workers answer, and how its effect can be observed afterwards.
 */

// Roles are defined once, with the rest of authorisation.
import type { Role } from '../auth/roles.js';
export { ROLES, type Role } from '../auth/roles.js';

export type { WireArguments } from './command-arguments.js';
export type { Confirmation } from './confirmations.js';
export { ADD_CONSUMER_OPTIONS, MAX_AUTOSCALE, MAX_POOL_DELTA, MAX_TIME_LIMIT_SECONDS, TASK_INFO_ITEMS } from './command-arguments.js';

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

/** Read-only commands (inspect): they change nothing on the worker. */
export const READ_COMMAND_NAMES = [
  'ping',
  'stats',
  'active_queues',
  'registered',
  'active',
  'reserved',
  'scheduled',
  'revoked',
  'conf',
] as const;
/** Commands that change a worker: the ones a remediation rule may take as its action. */
export const WRITE_COMMAND_NAMES = [
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
export const COMMAND_NAMES = [...READ_COMMAND_NAMES, ...WRITE_COMMAND_NAMES] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export function isCommandName(name: unknown): name is CommandName {
  return typeof name === 'string' && (COMMAND_NAMES as readonly string[]).includes(name);
}

const read = (name: CommandName, description: string, validate: (raw: unknown) => WireArguments = noArguments): CommandDefinition => ({
  name,
  description,
  role: () => 'viewer',
  validate,
  reply: true,
});

/** pool_grow and pool_shrink: the same command in two directions. */
const poolResize = (name: CommandName, description: string, direction: 1 | -1): CommandDefinition => ({
  name,
  description,
  role: () => 'operator',
  validate: validatePoolDelta,
  numericArguments: ['n'],
  reply: true,
  changesInspection: true,
  confirmation: poolSizeConfirmation(direction),
});

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
  poolResize('pool_grow', 'Add n pool processes (prefork without --autoscale only)', 1),
  poolResize('pool_shrink', 'Remove n pool processes (prefork without --autoscale only)', -1),
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
