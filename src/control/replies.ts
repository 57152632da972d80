/**
 * Turns one worker's pidbox answer into a result a person can act on. Celery handlers answer
 * `{"ok": <text>}` or `{"error": <repr of the exception>}` (§B2), inspect commands answer their
 * data as is; the known errors (pool support matrix, §B5) get a `kind` and a plain message.
 */

export type ErrorKind =
  | 'unsupported_pool'
  | 'autoscale_enabled'
  | 'autoscale_disabled'
  | 'pool_restarts_disabled'
  | 'unknown_task'
  | 'invalid_rate_limit'
  | 'unknown_command'
  | 'pool_busy'
  | 'pool_floor'
  | 'worker_error';

export type MappedReply =
  { status: 'ok'; reply: unknown; message?: string } | { status: 'error'; reply: unknown; kind: ErrorKind; message: string };

interface KnownError {
  kind: ErrorKind;
  matches(error: string, command: string): boolean;
  message(error: string, command: string): string;
}

const KNOWN_ERRORS: KnownError[] = [
  {
    // solo and threads: AttributeError("'TaskPool' object has no attribute 'grow'")
    kind: 'unsupported_pool',
    matches: (e) => /^AttributeError\(.*'TaskPool' object has no attribute '(grow|shrink)'/.test(e),
    message: (_e, command) =>
      `${command} is not supported by this worker's pool (solo and threads pools have a fixed size; only prefork can grow or shrink)`,
  },
  {
    // A plain string, not a repr: "pool_grow is not supported with autoscale. Adjust autoscale range instead."
    kind: 'autoscale_enabled',
    matches: (e) => e.includes('is not supported with autoscale'),
    message: (_e, command) => `${command} is refused because the worker autoscales; change its autoscale range instead`,
  },
  {
    kind: 'autoscale_disabled',
    matches: (e) => e.includes('Autoscale not enabled'),
    message: () => 'the worker was not started with --autoscale, so its autoscale range cannot be changed',
  },
  {
    kind: 'pool_restarts_disabled',
    matches: (e) => e.includes('Pool restarts not enabled'),
    message: () => 'the worker was started without worker_pool_restarts, so its pool cannot be restarted remotely',
  },
  {
    // billiard's Pool.shrink when no process is idle right now: ValueError("Can't shrink pool. All
    // processes busy!"). Worth another try once a task finishes, unlike every other refusal.
    kind: 'pool_busy',
    matches: (e, command) => command === 'pool_shrink' && /^ValueError\(["']Can't shrink pool\. All processes busy!["']\)$/.test(e),
    message: () => 'every pool process is busy right now, so none can be removed; try again when a task has finished',
  },
  {
    kind: 'unknown_task',
    matches: (e) => e === 'unknown task',
    message: () => 'the worker has no task registered under that name',
  },
  {
    kind: 'invalid_rate_limit',
    matches: (e) => e.startsWith('Invalid rate limit string'),
    message: (e) => `the worker rejected the rate limit: ${e}`,
  },
  {
    // Only the KeyError naming the command we sent: another handler's KeyError is a plain failure.
    kind: 'unknown_command',
    matches: (e, command) => e === `KeyError('${command}')` || e === `KeyError("${command}")`,
    message: (_e, command) => `the worker does not know the command ${command} (older or customised Celery?)`,
  },
];

const singleKey = (value: unknown, key: string): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1 && key in value;

export function mapReply(command: string, value: unknown): MappedReply {
  if (singleKey(value, 'error')) {
    const raw = value.error;
    const error = typeof raw === 'string' ? raw : JSON.stringify(raw);
    const known = KNOWN_ERRORS.find((k) => k.matches(error, command));
    return known
      ? { status: 'error', reply: value, kind: known.kind, message: known.message(error, command) }
      : { status: 'error', reply: value, kind: 'worker_error', message: `the worker failed: ${error}` };
  }
  if (singleKey(value, 'ok') && typeof value.ok === 'string') return { status: 'ok', reply: value, message: value.ok };
  return { status: 'ok', reply: value };
}
