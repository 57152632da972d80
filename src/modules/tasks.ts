import type { RequestHandler } from 'express';
import type { AuditLog } from '../audit/audit-log.js';
import type { Auth } from '../auth/index.js';
import type { Role } from '../auth/roles.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/load.js';
import type { WorkerSnapshot } from '../control/worker-snapshot.js';
import type { ControlRoutes } from '../http/control-routes.js';
import { taskActionsApi } from '../http/task-actions-api.js';
import { taskReadApi } from '../http/task-api.js';
import { taskSubmitApi, type TaskSubmitApiDeps } from '../http/task-submit-api.js';
import type { Logger } from '../log.js';
import type { WorkerRegistry } from '../state/workers.js';
import { createResultBackend, createTaskPublisher, type TaskStore } from '../tasks/index.js';
import type { PayloadRule } from '../tasks/payload.js';
import { ResultWaiters } from '../tasks/result-waiters.js';
import { SubmitPolicy } from '../tasks/submit-policy.js';
import type { FeatureModule } from './module.js';

/** How often waited results are read (one MGET for all of them). */
const RESULT_POLL_MS = 100;

export interface TasksModuleParts {
  /** The recent tasks (fed by the event processor); undefined when tasks.enabled is false. */
  store: TaskStore | undefined;
  workers: WorkerRegistry;
  snapshot: WorkerSnapshot;
  /** Revoke and bulk actions run as control commands, through the control routes' checks. */
  controlRoutes: ControlRoutes;
  auth: Auth;
  audit: AuditLog;
  payload: PayloadRule;
  /** One bound for the API's and the console's task lists together. */
  heavyRead: RequestHandler;
  clock: Clock;
  logger: Logger;
}

export interface TasksModule extends FeatureModule {
  /** A result backend is configured: AbortableTask's abort can work. */
  readonly abortable: boolean;
  /** Who may re-run which task (tasks.submit's role and allow-list), for the console's buttons. */
  readonly rerun: { role: Role; allows: (name: string) => boolean };
}

/** Flower's task half: read, submit (publisher, result backend, bounded waits), re-run, revoke, abort. */
export function createTasksModule(config: Config, parts: TasksModuleParts): TasksModule {
  const t = config.tasks;
  const publisher = createTaskPublisher(config, parts.logger.child({ component: 'task-publisher' }));
  const backend = createResultBackend(config, parts.logger);
  const submit: TaskSubmitApiDeps = {
    publisher,
    policy: new SubmitPolicy(
      { allow: t.submit.allow, createMissingQueues: t.submit.create_missing_queues, listedQueues: config.metrics.queues },
      (queue) => parts.workers.consumersOf(queue).length > 0,
    ),
    submitRole: t.submit.role,
    store: parts.store,
    backend,
    waiters: backend ? new ResultWaiters(backend, { maxWaiters: t.max_result_waiters, pollMs: RESULT_POLL_MS }) : undefined,
    snapshot: parts.snapshot,
    defaultQueue: config.metrics.default_queue_name,
    maxWaitSeconds: t.max_result_wait_seconds,
    maxBodyBytes: config.control.max_body_bytes,
    auth: parts.auth,
    audit: parts.audit,
    clock: parts.clock,
    payload: parts.payload,
  };
  return {
    name: 'tasks',
    telemetry: [],
    abortable: backend !== undefined,
    rerun: { role: submit.submitRole, allows: (name) => submit.policy.allows(name) },
    routers: {
      routes: [
        taskReadApi({ store: parts.store, auth: parts.auth, payload: parts.payload, heavyRead: parts.heavyRead }),
        taskSubmitApi(submit),
        taskActionsApi(submit, parts.controlRoutes),
      ],
    },
    async stop() {
      await publisher.close();
      backend?.close();
    },
  };
}
