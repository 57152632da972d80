import express, { type Request, type Response, type Router } from 'express';
import type { Auth } from '../auth/index.js';
import type { Secret } from '../config/secret.js';
import { CommandValidationError, validateWorkerName } from '../celery/validators.js';
import type { WorkerSnapshot } from '../control/worker-snapshot.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import type { WorkerRegistry } from '../state/workers.js';
import { ManagementApiError, managementQueues } from '../broker-api/rabbitmq-management.js';
import type { PayloadRule } from '../tasks/payload.js';
import type { BooleanWords } from '../params.js';
import { requestParams } from './params.js';

export interface FlowerWorkersApiDeps {
  snapshot: WorkerSnapshot;
  workers: WorkerRegistry;
  queues: QueueCollector;
  auth: Auth;
  /** Flower's broker_api (RabbitMQ management), when configured and the broker is RabbitMQ. */
  brokerApi: { url: Secret; vhost: string } | undefined;
  refreshSeconds: number;
  /** Active, reserved and scheduled tasks carry their arguments: tasks.payload_role decides who sees them. */
  payload: PayloadRule;
}

/** Flower's strtobool: y, yes, t, true, on, 1 / n, no, f, false, off, 0 (any case). */
const STRTOBOOL: BooleanWords = {
  yes: /^(y|yes|t|true|on|1)$/i,
  no: /^(n|no|f|false|off|0)$/i,
  problem: 'must be a boolean (y, yes, t, true, on, 1 or n, no, f, false, off, 0)',
};

/** A query-string flag as Flower's /api/workers reads it (absent: false). */
export function flowerBoolean(req: Request, name: string): boolean {
  return requestParams(req).boolean(name, false, STRTOBOOL);
}

/**
 * GET /api/workers and /api/queues/length as Flower 2.1 answers them. Workers come from a
 * snapshot refreshed in the background (src/control/worker-snapshot.ts); `refresh` waits for a
 * fresh round, `status` answers liveness from heartbeats (offline workers as false).
 */
export function flowerWorkersApi(deps: FlowerWorkersApiDeps): Router {
  const router = express.Router();
  const viewer = deps.auth.requireRole('viewer');
  const { snapshot, workers } = deps;

  const handle =
    (fn: (req: Request, res: Response) => Promise<void>) =>
    (req: Request, res: Response): void => {
      fn(req, res).catch((e: unknown) => {
        if (res.headersSent) return;
        if (e instanceof CommandValidationError) res.status(400).json({ error: e.message, ...(e.field ? { field: e.field } : {}) });
        else if (e instanceof ManagementApiError) res.status(503).json({ error: e.message });
        else res.status(503).json({ error: `Failed to update workers: ${(e as Error).message}` });
      });
    };

  /** Alive by heartbeat; a worker only the snapshot knows is alive while it keeps answering. */
  const alive = (name: string): boolean => {
    const w = workers.get(name);
    if (w) return workers.isAlive(w);
    const info = snapshot.get(name);
    if (snapshot.isRestored(name)) return false; // a file's entry says nothing about liveness
    return info !== undefined && Date.now() / 1000 - info.timestamp <= deps.refreshSeconds * 2 + 5;
  };

  router.get(
    '/api/workers',
    viewer,
    handle(async (req, res) => {
      const refresh = flowerBoolean(req, 'refresh');
      const status = flowerBoolean(req, 'status');
      const rawName = requestParams(req).text('workername', { emptyIsAbsent: true });
      const name = rawName === undefined ? undefined : validateWorkerName(rawName, 'workername');
      if (refresh) await snapshot.refresh(name);
      else await snapshot.use();
      const view = deps.payload.view(req.principal);
      if (status) {
        const names = new Set([...[...workers.all()].map((w) => w.hostname), ...snapshot.all().keys()]);
        res.json(
          Object.fromEntries(
            [...names]
              .sort()
              .filter((n) => name === undefined || n === name)
              .map((n) => [n, alive(n)]),
          ),
        );
        return;
      }
      if (name !== undefined) {
        // Flower's is_worker: one it has not seen yet is asked before the 404.
        if (!snapshot.get(name) && !refresh) await snapshot.refresh(name);
        const info = snapshot.get(name);
        if (!info) {
          res.status(404).type('text/plain').send(`Unknown worker '${name}'`);
          return;
        }
        res.json({ [name]: view.workerReplies(info) });
        return;
      }
      res.json(Object.fromEntries([...snapshot.all()].map(([worker, replies]) => [worker, view.workerReplies(replies)])));
    }),
  );

  router.get(
    '/api/queues/length',
    viewer,
    handle(async (_req, res) => {
      const names = deps.queues.queueNames();
      if (deps.brokerApi) {
        res.json({ active_queues: await managementQueues(deps.brokerApi.url, deps.brokerApi.vhost, names) });
        return;
      }
      const samples = await deps.queues.collect();
      // A depth that could not be read is left out rather than shown as an empty queue.
      res.json({ active_queues: samples.filter((q) => q.length !== null).map((q) => ({ name: q.queue, messages: q.length })) });
    }),
  );

  return router;
}
