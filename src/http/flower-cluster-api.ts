import express, { type Router } from 'express';
import { validateWorkerName } from '../control/validators.js';
import { handle, type ControlRoutes } from './control-routes.js';
import { booleanParam, stringParam } from './params.js';

/** Flower's cluster reads: GET /api/workers and GET /api/queues/length, moved here as they were. */
export function flowerClusterApi(routes: ControlRoutes): Router {
  const { viewer, liveWorkers, requireWorker } = routes;
  const { control } = routes.deps;
  const deps = routes.deps;
  const router = express.Router();

  router.get('/api/workers', viewer, handle(async (req, res) => {
    const only = stringParam(req, 'workername');
    const names = only ? [await requireWorkerOrEmpty(only)] : await liveWorkers(booleanParam(req, 'refresh', false));
    if (booleanParam(req, 'status', false)) {
      const alive = names.length > 0 ? await control.ping(names) : new Map<string, boolean>();
      res.json(Object.fromEntries(names.map((n) => [n, alive.get(n) ?? false])));
      return;
    }
    const out: Record<string, Record<string, unknown>> = Object.fromEntries(names.map((n) => [n, {}]));
    if (names.length > 0) {
      for (const method of ['stats', 'active_queues', 'registered', 'scheduled', 'active', 'reserved', 'revoked', 'conf'] as const) {
        const result = await control.run(method, {}, { workers: names });
        for (const r of result.results) if (r.status === 'ok') out[r.worker]![method] = r.reply;
      }
    }
    for (const n of names) out[n]!.timestamp = Date.now() / 1000;
    res.json(out);
  }));

  router.get('/api/queues/length', viewer, handle(async (_req, res) => {
    const samples = await deps.queues.collect();
    // A depth that could not be read is left out rather than shown as an empty queue.
    res.json({ active_queues: samples.filter((q) => q.length !== null).map((q) => ({ name: q.queue, messages: q.length })) });
  }));

  async function requireWorkerOrEmpty(name: string): Promise<string> {
    return requireWorker(validateWorkerName(name, 'workername'));
  }

  return router;
}
