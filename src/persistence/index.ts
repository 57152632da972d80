import type { Config } from '../config/load.js';
import type { WorkerSnapshot } from '../control/worker-snapshot.js';
import type { Logger } from '../log.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { TaskStore } from '../tasks/task-store.js';
import { TaskPersistence } from './task-persistence.js';
import { WorkerPersistence } from './worker-persistence.js';

/**
 * `tasks.persist`: one SQLite file that keeps the task history (task-persistence.ts) and, in a
 * second table of the same file, the worker state (worker-persistence.ts) across a restart.
 */
export type { TaskPersistence } from './task-persistence.js';
export type { WorkerPersistence } from './worker-persistence.js';

/** The task history's file, when tasks.persist names one (history restored here; call start()). */
export function createTaskPersistence(config: Config, store: TaskStore, logger: Logger): TaskPersistence | undefined {
  const t = config.tasks;
  if (!t.persist) return undefined;
  return new TaskPersistence(
    store,
    { file: t.persist, flushMs: t.persist_interval_seconds * 1000 },
    logger.child({ component: 'task-persistence' }),
  );
}

/** Worker state in the task history's file (restored here; call start()), when tasks.persist is set. */
export function createWorkerPersistence(
  config: Config,
  tasks: TaskPersistence | undefined,
  parts: { workers: WorkerRegistry; snapshot: WorkerSnapshot },
  logger: Logger,
): WorkerPersistence | undefined {
  if (!tasks) return undefined;
  return new WorkerPersistence(
    tasks.database,
    parts.workers,
    parts.snapshot,
    { flushMs: config.tasks.persist_interval_seconds * 1000, maxWorkers: config.cardinality.max_hostnames },
    logger.child({ component: 'worker-persistence' }),
  );
}

/** Rows left out at start, per table and reason (celery_autopilot_persisted_rows_skipped_total). */
export function persistedRowsSkipped(
  tasks: TaskPersistence | undefined,
  workers: WorkerPersistence | undefined,
): [string, string, number][] {
  return [
    ...[...(tasks?.skipped ?? [])].map(([reason, n]): [string, string, number] => ['tasks', reason, n]),
    ...[...(workers?.skipped ?? [])].map(([reason, n]): [string, string, number] => ['workers', reason, n]),
  ];
}
