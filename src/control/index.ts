export {
  ControlClient,
  validateTargets,
  MIN_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  type ControlClientOptions,
  type ControlObserver,
  type ControlOutcome,
  type ControlResult,
  type RunOptions,
  type Targets,
  type WorkerResult,
  type WorkerStatus,
} from './client.js';
export {
  COMMANDS,
  COMMAND_NAMES,
  ROLES,
  isCommandName,
  prepareCommand,
  type CommandDefinition,
  type CommandName,
  type PreparedCommand,
  type Role,
  type WireArguments,
} from './commands.js';
export { mapReply, type ErrorKind } from './replies.js';
export * from './validators.js';
