import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { uniqueId } from '../isolation.js';

/** Debian's Celery 5.2.6 lives in the system Python; the first `python3` on PATH has none. */
export const CELERY_PYTHON = process.env.CELERY_PYTHON ?? '/usr/bin/python3';
/** Where app.py and tools.py live; Celery imports `app` from here. */
export const CELERY_DIR = path.dirname(fileURLToPath(import.meta.url));

/** How app.py and tools.py reach a broker: the CAP_* variables they read. */
export interface CeleryEnvOptions {
  brokerUrl: string;
  transportOptions?: Record<string, unknown>;
  sendSentEvent?: boolean;
  poolRestarts?: boolean;
  env?: Record<string, string>;
}

/**
 * The environment for a Celery process. Inherited CAP_* and Python path variables are dropped so
 * a developer's shell cannot change what a test runs; bytecode is not written so the source tree
 * stays clean.
 */
export function celeryEnv(opts: CeleryEnvOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('CAP_') && key !== 'PYTHONPATH' && key !== 'PYTHONHOME') env[key] = value;
  }
  return {
    ...env,
    PYTHONPATH: CELERY_DIR,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    CAP_BROKER_URL: opts.brokerUrl,
    CAP_TRANSPORT_OPTIONS: JSON.stringify(opts.transportOptions ?? {}),
    CAP_SEND_SENT_EVENT: opts.sendSentEvent ? '1' : '0',
    CAP_POOL_RESTARTS: opts.poolRestarts ? '1' : '0',
    ...opts.env,
  };
}

export interface WorkerOptions {
  brokerUrl: string;
  /** `name@host`, used verbatim (no `%h`): it is the pidbox destination tests address. */
  nodename: string;
  queues?: string[];
  pool?: 'prefork' | 'solo' | 'threads';
  concurrency?: number;
  autoscale?: [max: number, min: number];
  /** -E: task events. Default true. */
  events?: boolean;
  /** worker_pool_restarts, so `pool_restart` replies ok. */
  poolRestarts?: boolean;
  transportOptions?: Record<string, unknown>;
  /** task_send_sent_event on the worker too: a retry it republishes then emits `task-sent`. */
  sendSentEvent?: boolean;
  prefetchMultiplier?: number;
  /** Default true: no gossip consumer, less cross-talk between workers. */
  withoutGossip?: boolean;
  /** Default true: no mingle round trip at start, which also makes startup faster. */
  withoutMingle?: boolean;
  extraArgs?: string[];
  /** Extra environment, e.g. CAP_DEFAULT_QUEUE. */
  env?: Record<string, string>;
  /** How long to wait for the worker to consume before failing with its log. Default 30 s. */
  readyTimeoutMs?: number;
}

export interface CeleryWorker {
  readonly nodename: string;
  readonly pid: number;
  /** Everything the worker wrote to stdout and stderr so far. */
  logs(): string;
  /** Warm shutdown (SIGTERM); SIGKILL for the whole process group if it takes longer. */
  stop(timeoutMs?: number): Promise<void>;
  /** Signals the worker's main process only (default SIGKILL), as a crash or an operator would. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves with the exit code, or null when a signal ended the worker. */
  readonly exited: Promise<number | null>;
  /** Waits (bounded) until the log matches, e.g. `Task tasks.add[<id>] succeeded`. */
  waitForLog(match: string | RegExp, timeoutMs?: number): Promise<void>;
}

/** The line app.py logs once the event loop runs, i.e. pidbox and task queues are listened to. */
const consumingMarker = (nodename: string): string => `rig: consuming ${nodename}`;
const MAX_LOG_CHARS = 2_000_000;
const DEFAULT_STOP_TIMEOUT_MS = 10_000;

const running = new Set<CeleryWorker>();
let exitHookInstalled = false;

/** A node name unique to this run, e.g. `rig-1a2b3c4d@cap`. */
export function uniqueNodename(prefix = 'rig'): string {
  return `${uniqueId(prefix)}@cap`;
}

export function workerArgs(opts: WorkerOptions): string[] {
  const args = ['-m', 'celery', '-A', 'app', 'worker', '-n', opts.nodename, '-l', 'info'];
  if (opts.queues?.length) args.push('-Q', opts.queues.join(','));
  if (opts.pool) args.push('--pool', opts.pool);
  if (opts.concurrency !== undefined) args.push('-c', String(opts.concurrency));
  if (opts.autoscale) args.push(`--autoscale=${opts.autoscale[0]},${opts.autoscale[1]}`);
  if (opts.events ?? true) args.push('-E');
  if (opts.prefetchMultiplier !== undefined) args.push('--prefetch-multiplier', String(opts.prefetchMultiplier));
  if (opts.withoutGossip ?? true) args.push('--without-gossip');
  if (opts.withoutMingle ?? true) args.push('--without-mingle');
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/** Starts a real Celery worker and resolves once it consumes; rejects with its log otherwise. */
export async function startWorker(opts: WorkerOptions): Promise<CeleryWorker> {
  if (!/^[^@%\s]+@[^@%\s]+$/.test(opts.nodename)) {
    throw new Error(`nodename must be a literal name@host, got ${JSON.stringify(opts.nodename)}`);
  }
  installExitHook();
  const child = spawn(CELERY_PYTHON, workerArgs(opts), {
    cwd: CELERY_DIR,
    env: {
      ...celeryEnv(opts),
      // app.py arms the kernel's parent-death signal: the worker dies with this process, however
      // it died, and its pool children die with the worker.
      CAP_PARENT_PID: String(process.pid),
    },
    // Own process group: pool children can be killed with the worker and never with us.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new Error(`could not spawn ${CELERY_PYTHON}: ${error.message}`);
  }

  let log = '';
  // Re-checked on every chunk of output and once more at exit.
  const watchers = new Set<() => void>();
  const append = (chunk: Buffer): void => {
    log += chunk.toString('utf8');
    if (log.length > MAX_LOG_CHARS) log = log.slice(log.length - MAX_LOG_CHARS);
    for (const watcher of watchers) watcher();
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  child.on('error', (error) => append(Buffer.from(`\n[rig] ${error.message}\n`)));

  let alive = true;
  const killGroup = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // ESRCH: the group is already gone.
    }
  };
  child.once('exit', () => {
    alive = false;
    // Reaps pool children that outlived the main process (after a kill -9 of the worker).
    killGroup();
  });
  // 'close' comes after the pipes are drained, so logs() is complete once `exited` resolves.
  const exited = new Promise<number | null>((resolve) => {
    child.once('close', (code) => {
      running.delete(worker);
      resolve(code);
    });
  });

  const waitForLog = async (match: string | RegExp, timeoutMs = 30_000): Promise<void> => {
    // Without the g flag so test() keeps no state between calls.
    const pattern = typeof match === 'string' ? undefined : new RegExp(match.source, match.flags.replace('g', ''));
    const matches = (): boolean => (pattern ? pattern.test(log) : log.includes(match as string));
    if (matches()) return;
    await new Promise<void>((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        watchers.delete(watch);
        if (error) reject(error);
        else resolve();
      };
      const watch = (): void => {
        if (matches()) finish();
      };
      const timer = setTimeout(
        () => finish(new Error(`worker ${opts.nodename}: no log line matching ${String(match)} within ${timeoutMs} ms\n${log}`)),
        timeoutMs,
      );
      watchers.add(watch);
      exited.then(() => {
        if (matches()) finish();
        else finish(new Error(`worker ${opts.nodename} exited before logging ${String(match)}\n${log}`));
      }, finish);
    });
  };

  const worker: CeleryWorker = {
    nodename: opts.nodename,
    pid,
    logs: () => log,
    exited,
    waitForLog,
    kill: (signal: NodeJS.Signals = 'SIGKILL') => {
      if (alive) process.kill(pid, signal);
    },
    stop: async (timeoutMs = DEFAULT_STOP_TIMEOUT_MS) => {
      if (alive) {
        process.kill(pid, 'SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => {
          timer = setTimeout(() => resolve('late'), timeoutMs);
        });
        // A warm shutdown waits for running tasks; a test's cleanup must not.
        if ((await Promise.race([exited, late])) === 'late') killGroup();
        clearTimeout(timer);
      }
      await exited;
    },
  };
  running.add(worker);

  try {
    await waitForLog(consumingMarker(opts.nodename), opts.readyTimeoutMs ?? 30_000);
  } catch (error) {
    killGroup();
    await exited;
    throw error;
  }
  return worker;
}

/** Stops every worker this process started; for afterAll hooks. */
export async function stopAllWorkers(): Promise<void> {
  await Promise.all([...running].map((worker) => worker.stop()));
}

/**
 * Last resort when the test process exits without stopping its workers: `exit` handlers must be
 * synchronous, so each worker's whole process group gets SIGKILL. (If this process is killed
 * outright, the parent-death signal app.py arms does the same from the worker's side.)
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const worker of running) {
      try {
        process.kill(-worker.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}
