import type { Config } from '../config/load.js';
import { parseBrokerUrl } from '../config/broker-url.js';
import type { Logger } from '../log.js';
import { RedisResultBackend, type ResultBackend } from './result-backend.js';
import { TaskStore } from './task-store.js';

/**
 * Flower's task half: the store of recent tasks (task-store.ts, fed by the event processor),
 * the task publisher (publisher.ts, messages from task-message.ts) and Celery's result backend
 * (result-backend.ts). The service builds them from the config here; the store's optional
 * SQLite file is persistence/.
 */
export { TaskStore } from './task-store.js';
export { createTaskPublisher, type TaskPublisher } from './publisher.js';
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
  // The schema allows only redis:// and rediss:// URLs, which parse as a Redis endpoint.
  const endpoint = parseBrokerUrl(t.result_backend.reveal());
  if (endpoint.kind !== 'redis') return undefined;
  return new RedisResultBackend(
    endpoint,
    {
      keyPrefix: t.result_key_prefix,
      expiresSeconds: t.result_expires_seconds,
      ...(config.broker_transport_options.master_name ? { masterName: config.broker_transport_options.master_name } : {}),
    },
    logger.child({ component: 'result-backend' }),
  );
}
