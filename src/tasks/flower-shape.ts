import type { TaskHistory } from './task-history.js';
import type { TaskStore } from './task-store.js';

/**
 * A task in the JSON shape Flower's /api/tasks and /api/task/info give (Celery's Task.as_dict:
 * its _fields, with worker as a hostname, root/parent as ids and children as a list of ids),
 * plus `queue`, which Celery's events carry and scripts ask for, and the re-run links.
 * Payloads are whole here: callers pass it through the caller's PayloadView (payload.ts).
 */
export function flowerTask(task: Readonly<TaskHistory>, store: TaskStore): Record<string, unknown> {
  return {
    uuid: task.uuid,
    name: task.name,
    state: task.state,
    received: task.received,
    sent: task.sent,
    started: task.started,
    rejected: task.rejected,
    succeeded: task.succeeded,
    failed: task.failed,
    retried: task.retried,
    revoked: task.revoked,
    args: task.args,
    kwargs: task.kwargs,
    eta: task.eta,
    expires: task.expires,
    retries: task.retries,
    worker: task.worker,
    result: task.result,
    exception: task.exception,
    timestamp: task.timestamp,
    runtime: task.runtime,
    traceback: task.traceback,
    exchange: task.exchange,
    routing_key: task.routing_key,
    queue: task.queue,
    clock: task.clock,
    client: task.client,
    root: task.root_id,
    root_id: task.root_id,
    parent: task.parent_id,
    parent_id: task.parent_id,
    children: store.children(task.uuid),
    // Ours: the task this one re-runs, and the re-runs of this one (POST /api/task/rerun).
    rerun_of: task.rerun_of,
    reruns: store.reruns(task.uuid),
  };
}
