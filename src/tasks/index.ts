import type { Config } from '../config/load.js';
import { brokerConnections } from '../transport/index.js';
import type { Logger } from '../log.js';
import { RedisResultBackend, type ResultBackend } from './result-backend.js';
import { TaskPersistence } from './task-persistence.js';
import { TaskStore } from './task-store.js';
import { WorkerPersistence } from './worker-persistence.js';
import type { WorkerSnapshot } from '../control/worker-snapshot.js';
import type { WorkerRegistry } from '../state/workers.js';

/**
 * Flower's task half: the store of recent tasks (task-store.ts, fed by the event processor),
 * messages to submit (task-message.ts; the broker's publisher is in transport/) and Celery's
 * result backend (result-backend.ts, connected through transport/), and the store's optional
 * SQLite file (task-persistence.ts), which also keeps the worker state (worker-persistence.ts).
 * The service builds them from the config here.
 */
export { TaskStore } from './task-store.js';
export { createTaskPublisher, type TaskPublisher } from '../transport/index.js';
export type { ResultBackend } from './result-backend.js';
export type { TaskPersistence } from './task-persistence.js';
export type { WorkerPersistence } from './worker-persistence.js';

/** The store, with its persistence when tasks.persist names a file (history restored here; call start()). */
export function createTaskStore(config: Config, logger: Logger): { store: TaskStore; persistence: TaskPersistence | undefined } {
  const t = config.tasks;
  const store = new TaskStore({
    maxTasks: t.max_tasks,
    limits: {
      args: t.max_args_chars,
      kwargs: t.max_kwargs_chars,
      result: t.max_result_chars,
      exception: t.max_exception_chars,
      traceback: t.max_traceback_chars,
    },
  });
  const persistence = t.persist
    ? new TaskPersistence(
        store,
        { file: t.persist, flushMs: t.persist_interval_seconds * 1000 },
        logger.child({ component: 'task-persistence' }),
      )
    : undefined;
  return { store, persistence };
}

/** Worker state in the task history's file (restored here; call start()), when tasks.persist is set. */
export function createWorkerPersistence(
  config: Config,
  tasks: TaskPersistence | undefined,
  parts: { registry: WorkerRegistry; snapshot: WorkerSnapshot },
  logger: Logger,
): WorkerPersistence | undefined {
  if (!tasks) return undefined;
  return new WorkerPersistence(
    tasks.database,
    parts.registry,
    parts.snapshot,
    { flushMs: config.tasks.persist_interval_seconds * 1000, maxWorkers: config.cardinality.max_hostnames },
    logger.child({ component: 'worker-persistence' }),
  );
}

export function createResultBackend(config: Config, logger: Logger): ResultBackend | undefined {
  const t = config.tasks;
  if (!t.result_backend) return undefined;
  return new RedisResultBackend(
    brokerConnections(config).redisAt(t.result_backend),
    { keyPrefix: t.result_key_prefix, expiresSeconds: t.result_expires_seconds },
    logger.child({ component: 'result-backend' }),
  );
}
