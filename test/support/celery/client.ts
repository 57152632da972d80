import { spawn } from 'node:child_process';
import path from 'node:path';
import { CELERY_DIR, CELERY_PYTHON, celeryEnv } from './worker.js';

/** Which broker a Celery client talks to, and how (tools.py reads the same CAP_* variables). */
export interface CeleryTarget {
  brokerUrl: string;
  transportOptions?: Record<string, unknown>;
  /** task_send_sent_event: the client publishes a real `task-sent` event per task. */
  sendSentEvent?: boolean;
}

/** One `app.send_task` call. */
export interface TaskSpec {
  /** e.g. `tasks.add`. */
  name: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  queue?: string;
  priority?: number;
  countdown?: number;
  /** Seconds from now. */
  expires?: number;
  /** A fixed task id; Celery makes a uuid4 otherwise. */
  taskId?: string;
  /** What the message and its events show as args / kwargs (Celery: saferepr cut at 1024 characters). */
  argsrepr?: string;
  kwargsrepr?: string;
}

/** One worker's answer as kombu returns it: `{"<nodename>": <value>}`. */
export type ControlReplies = Array<Record<string, unknown>>;

const TOOLS = path.join(CELERY_DIR, 'tools.py');
/** Far above a tools.py call (~0.15 s here) plus the command's own reply timeout. */
const PROCESS_MARGIN_MS = 20_000;

/** Sends real task messages as a Celery client does; resolves with their ids, in order. */
export async function sendTasks(target: CeleryTarget, tasks: TaskSpec[]): Promise<string[]> {
  const request = tasks.map(({ taskId, ...spec }) => ({ ...spec, task_id: taskId }));
  return (await runTool(target, 'send', request, PROCESS_MARGIN_MS)) as string[];
}

/**
 * Broadcasts a pidbox command from a real Celery client (`app.control.broadcast`) and returns the
 * replies. A destination is required: on a shared broker an undirected command reaches other
 * suites' workers. With `reply: false` it is a cast (e.g. `shutdown`) and resolves with [].
 */
export async function celeryControl(
  target: CeleryTarget,
  method: string,
  args: Record<string, unknown>,
  destination: string[],
  timeoutSeconds = 1,
  options: { reply?: boolean } = {},
): Promise<ControlReplies> {
  requireDestination(destination);
  const reply = options.reply ?? true;
  const request = { method, arguments: args, destination, timeout: timeoutSeconds, reply };
  const answer = await runTool(target, 'control', request, timeoutSeconds * 1000 + PROCESS_MARGIN_MS);
  return reply ? (answer as ControlReplies) : [];
}

/** Like `celery inspect <method>`: the replies merged into one `{nodename: value}` object. */
export async function celeryInspect(
  target: CeleryTarget,
  method: string,
  destination: string[],
  timeoutSeconds = 1,
  args: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  requireDestination(destination);
  const request = { method, arguments: args, destination, timeout: timeoutSeconds };
  return (await runTool(target, 'inspect', request, timeoutSeconds * 1000 + PROCESS_MARGIN_MS)) as Record<string, unknown>;
}

/** The fields of a `stats` reply tests tend to look at; the rest is kept as unknown. */
export interface WorkerStats {
  total: Record<string, number>;
  pid: number;
  pool: { 'max-concurrency'?: number; processes?: number[]; [key: string]: unknown };
  prefetch_count: number;
  [key: string]: unknown;
}

export async function inspectStats(target: CeleryTarget, destination: string[], timeoutSeconds = 1): Promise<Record<string, WorkerStats>> {
  return (await celeryInspect(target, 'stats', destination, timeoutSeconds)) as Record<string, WorkerStats>;
}

/** Each worker's consumed queues, as `Queue.as_dict(recurse=True)` objects. */
export async function inspectActiveQueues(
  target: CeleryTarget,
  destination: string[],
  timeoutSeconds = 1,
): Promise<Record<string, Array<{ name: string; [key: string]: unknown }>>> {
  return (await celeryInspect(target, 'active_queues', destination, timeoutSeconds)) as Record<
    string,
    Array<{ name: string; [key: string]: unknown }>
  >;
}

function requireDestination(destination: readonly string[]): void {
  if (destination.length === 0 || destination.some((node) => node === '')) {
    throw new Error('a control command in a test must name its destination workers');
  }
}

/** One tools.py process per call: a JSON request on stdin, one JSON answer on stdout. */
async function runTool(target: CeleryTarget, command: string, request: unknown, timeoutMs: number): Promise<unknown> {
  const child = spawn(CELERY_PYTHON, [TOOLS, command], {
    cwd: CELERY_DIR,
    env: celeryEnv(target),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  child.stdin.on('error', () => undefined); // the process may die before reading; 'close' reports it
  child.stdin.end(JSON.stringify(request));

  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (code !== 0) {
      throw new Error(`tools.py ${command} failed (exit ${code ?? 'by signal, after ' + timeoutMs + ' ms'}):\n${stderr}`);
    }
    return JSON.parse(stdout) as unknown;
  } finally {
    clearTimeout(timer);
  }
}
