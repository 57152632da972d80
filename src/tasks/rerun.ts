import { MAX_TASK_IDS, validateQueueName } from '../celery/validators.js';
import { LiteralError, parsePythonLiteral } from './python-literal.js';
import { SubmitError, parseSubmitBody } from './submit-options.js';
import { SubmitRefusedError } from './submit-policy.js';
import type { TaskHistory } from './task-history.js';

/**
 * A re-run: the original's name, args, kwargs and queue, each replaceable in the request body.
 * What the store kept are Python reprs from the task's events; they are read back exactly or
 * the re-run is refused (409) with the reason — never sent half-guessed.
 */
export interface RerunRequest {
  readonly name: string;
  readonly args: unknown[];
  readonly kwargs: Record<string, unknown>;
  readonly queue: string;
  /** Which fields the caller replaced, for the audit. */
  readonly edited: readonly ('args' | 'kwargs' | 'queue')[];
}

/** Tasks one bulk request (re-run, revoke) may act on: one revoke's list of ids, so one bound. */
export const MAX_BULK_TASKS = MAX_TASK_IDS;

export const RERUN_OPTIONS = ['args', 'kwargs', 'queue'] as const;

/** The body of a re-run: `args`, `kwargs`, `queue`, each optional; anything else is an error. */
export function parseRerunBody(body: unknown): { args?: unknown[]; kwargs?: Record<string, unknown>; queue?: string } {
  const o = body === undefined || body === null ? {} : body;
  if (typeof o !== 'object' || Array.isArray(o)) throw new SubmitError('the body must be a JSON object with args, kwargs or queue');
  const b = o as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !(RERUN_OPTIONS as readonly string[]).includes(k));
  if (unknown.length > 0)
    throw new SubmitError(
      `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (a re-run takes ${RERUN_OPTIONS.join(', ')})`,
    );
  // The submission body's checks (JSON only, exact integers, queue name): one definition.
  const checked = parseSubmitBody(
    { ...(b.args !== undefined ? { args: b.args } : {}), ...(b.kwargs !== undefined ? { kwargs: b.kwargs } : {}) },
    new Date(0),
  );
  return {
    ...(b.args !== undefined ? { args: checked.args } : {}),
    ...(b.kwargs !== undefined ? { kwargs: checked.kwargs } : {}),
    ...(b.queue !== undefined ? { queue: validateQueueName(b.queue, 'queue') } : {}),
  };
}

function readBack(field: 'args' | 'kwargs', repr: string | null, id: string): unknown {
  if (repr === null)
    throw new SubmitRefusedError(409, `task '${id}' has no ${field} on record (no event carried them): give ${field} in the body`);
  try {
    return parsePythonLiteral(repr);
  } catch (e) {
    if (!(e instanceof LiteralError)) throw e;
    const why =
      e.reason === 'truncated'
        ? `its ${field} were truncated (Celery's argsrepr_maxsize or tasks.max_${field}_chars): ${e.message}`
        : `its ${field} cannot be read back as JSON (${e.message})`;
    throw new SubmitRefusedError(
      409,
      `task '${id}' cannot be re-run as is: ${why}; give ${field} in the body to re-run it with edited ${field}`,
    );
  }
}

/** The new task's contents from the original's record and the caller's edits; throws SubmitRefusedError (409). */
export function planRerun(
  original: Readonly<TaskHistory>,
  edits: { args?: unknown[]; kwargs?: Record<string, unknown>; queue?: string },
  defaultQueue: string,
): RerunRequest {
  const id = original.uuid;
  if (original.name === null)
    throw new SubmitRefusedError(409, `task '${id}' has no known name (no task-sent or task-received event was seen): it cannot be re-run`);
  const args = edits.args ?? readBack('args', original.args, id);
  const kwargs = edits.kwargs ?? readBack('kwargs', original.kwargs, id);
  // Celery reprs args as a tuple and kwargs as a dict; anything else is not what a task was sent with.
  if (!Array.isArray(args)) throw new SubmitRefusedError(409, `task '${id}' has args that are not a tuple or list: give args in the body`);
  if (kwargs === null || typeof kwargs !== 'object' || Array.isArray(kwargs))
    throw new SubmitRefusedError(409, `task '${id}' has kwargs that are not a dict: give kwargs in the body`);
  const edited = (['args', 'kwargs', 'queue'] as const).filter((k) => edits[k] !== undefined);
  return {
    name: original.name,
    args,
    kwargs: kwargs as Record<string, unknown>,
    queue: edits.queue ?? original.queue ?? original.routing_key ?? defaultQueue,
    edited,
  };
}
