import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { OnDemandRedis, type RedisServer } from '../transport/index.js';
import { pyJson, pyRepr } from './python-text.js';

/**
 * Celery's Redis result backend (celery/backends/redis.py + base.py, 5.2.6), read and, for
 * AbortableTask, written: one key per task, `<global_keyprefix>celery-task-meta-<id>`, holding
 * the JSON meta `{"status", "result", "traceback", "children", "date_done", "task_id"}`. A missing
 * key is PENDING, as in Celery. Every call is bounded: a backend that is down answers
 * BackendUnavailableError quickly instead of hanging a request.
 */

export const READY_STATES = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
const KEY_PREFIX = 'celery-task-meta-';
const CONNECT_TIMEOUT_MS = 2_000;
const COMMAND_TIMEOUT_MS = 2_000;

export interface TaskMeta {
  status: string;
  result: unknown;
  traceback: string | null;
  children?: unknown[];
  date_done?: string | null;
  task_id?: string;
}

export class BackendUnavailableError extends Error {}

export interface ResultBackend {
  /** The stored meta, or null when the backend has nothing (Celery's PENDING). */
  get(taskId: string): Promise<TaskMeta | null>;
  /** Many tasks' metas in one read (MGET), in order; a key that is not Celery's JSON is that key's error. */
  getMany(taskIds: readonly string[]): Promise<Array<TaskMeta | null | BackendUnavailableError>>;
  /** AbortableAsyncResult.abort(): stores ABORTED unless the task already succeeded. */
  abort(taskId: string): Promise<void>;
  close(): void;
}

/** A FAILURE's stored result is the exception as a dict; Flower shows its repr, so do we. */
export function resultForDisplay(meta: TaskMeta): unknown {
  const r = meta.result as { exc_type?: unknown; exc_message?: unknown } | null;
  if (meta.status === 'FAILURE' && r && typeof r === 'object' && typeof r.exc_type === 'string') {
    const args = Array.isArray(r.exc_message) ? r.exc_message : [r.exc_message];
    return `${r.exc_type}(${args.map(pyRepr).join(', ')})`;
  }
  return meta.result;
}

export class RedisResultBackend implements ResultBackend {
  readonly #redis: OnDemandRedis;

  constructor(
    server: RedisServer,
    private readonly options: { keyPrefix: string; expiresSeconds: number },
    logger: Logger,
  ) {
    this.#redis = new OnDemandRedis(
      server,
      { connectionName: 'celery-autopilot-results', connectTimeoutMs: CONNECT_TIMEOUT_MS, commandTimeoutMs: COMMAND_TIMEOUT_MS },
      logger,
    );
  }

  key(taskId: string): string {
    return `${this.options.keyPrefix}${KEY_PREFIX}${taskId}`;
  }

  async #command<T>(fn: (c: Redis) => Promise<T>): Promise<T> {
    const client = await this.#redis.client().catch((e: Error) => {
      throw new BackendUnavailableError(`the result backend is unreachable: ${e.message}`);
    });
    try {
      return await fn(client);
    } catch (e) {
      throw new BackendUnavailableError(`the result backend did not answer: ${(e as Error).message}`);
    }
  }

  async get(taskId: string): Promise<TaskMeta | null> {
    const meta = this.#parse(taskId, await this.#command((c) => c.get(this.key(taskId))));
    if (meta instanceof Error) throw meta;
    return meta;
  }

  async getMany(taskIds: readonly string[]): Promise<Array<TaskMeta | null | BackendUnavailableError>> {
    if (taskIds.length === 0) return [];
    const raws = await this.#command((c) => c.mget(taskIds.map((id) => this.key(id))));
    return taskIds.map((id, i) => this.#parse(id, raws[i] ?? null));
  }

  #parse(taskId: string, raw: string | null): TaskMeta | null | BackendUnavailableError {
    if (raw === null) return null;
    try {
      const meta = JSON.parse(raw) as TaskMeta;
      if (typeof meta?.status === 'string') return meta;
    } catch {
      // falls through: not Celery's JSON (pickle, or another app's key)
    }
    return new BackendUnavailableError(
      `the result backend holds something that is not Celery JSON under ${this.key(taskId)} (result_serializer must be json)`,
    );
  }

  async abort(taskId: string): Promise<void> {
    // base.py _store_result: a task that already succeeded keeps its result.
    const current = await this.get(taskId);
    if (current?.status === 'SUCCESS') return;
    const value = pyJson({ status: 'ABORTED', result: null, traceback: null, children: [], date_done: null, task_id: taskId });
    const key = this.key(taskId);
    // redis.py _set: SETEX (result_expires) and PUBLISH for result consumers, in one pipeline.
    await this.#command((c) => c.multi().setex(key, this.options.expiresSeconds, value).publish(key, value).exec());
  }

  close(): void {
    this.#redis.close();
  }
}
