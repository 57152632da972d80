import type { Config } from '../config/load.js';
import { brokerConnections } from '../transport/index.js';
import type { Logger } from '../log.js';
import { RedisResultBackend, type ResultBackend } from './result-backend.js';
import { TaskStore } from './task-store.js';

/**
 * Flower's task half: the store of recent tasks (task-store.ts, fed by the event processor),
 * messages to submit (task-message.ts; the broker's publisher is in transport/) and Celery's
 * result backend (result-backend.ts, connected through transport/). The service builds them
 * from the config here; the store's optional SQLite file is persistence/.
 */
export { TaskStore } from './task-store.js';
export { createTaskPublisher, type TaskPublisher } from '../transport/index.js';
export type { ResultBackend } from './result-backend.js';

/** The store of recent tasks (its optional file: persistence/). */
export function createTaskStore(config: Config): TaskStore {
  const t = config.tasks;
  return new TaskStore({
    maxTasks: t.max_tasks,
    limits: {
      args: t.max_args_chars,
      kwargs: t.max_kwargs_chars,
      result: t.max_result_chars,
      exception: t.max_exception_chars,
      traceback: t.max_traceback_chars,
    },
  });
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
