import express, { type Router } from 'express';
import type { Targets } from '../control/client.js';
import type { CommandName } from '../control/commands.js';
import { CommandValidationError, validateQueueName } from '../celery/validators.js';
import { describePrincipal } from '../auth/index.js';
import { BrokerUnavailableError, QueueNotFoundError } from '../transport/transport.js';
import { handle, HttpError, type ControlRoutes } from './control-routes.js';
import { auditKind, auditLimit, booleanParam } from './params.js';

/** A purge is one broker operation; past this the answer is an error and the queue as the broker left it. */
const PURGE_TIMEOUT_MS = 10_000;

/**
 * The versioned API: reports each worker's reply and can target several workers, a glob or a
 * queue's consumers; plus the audit trail and a plain queue list.
 */
// Over 80 lines on purpose: one route per versioned path, a flat table read top to bottom; each
// handler is a few lines over the shared control routes.
export function apiV1(routes: ControlRoutes): Router {
  const { operator, viewer, execute, liveWorkers } = routes;
  const { workers, audit } = routes.deps;
  const deps = routes.deps;
  const router = express.Router();

  /** A plain JSON list, for scripts that just want depths. */
  router.get(
    '/api/queues',
    viewer,
    handle(async (_req, res) => {
      const samples = await deps.queues.collect();
      res.json(samples.map((q) => ({ name: q.queue, messages: q.length })));
    }),
  );

  router.get(
    '/api/v1/workers',
    viewer,
    handle(async (req, res) => {
      const names = new Set(await liveWorkers(booleanParam(req, 'refresh', false)));
      for (const w of workers.all()) names.add(w.hostname);
      res.json(
        [...names].sort().map((name) => {
          const w = workers.get(name);
          return {
            name,
            up: w ? workers.isAlive(w) : true,
            pool_processes: w?.processes ?? null,
            active: w?.active ?? null,
            processed: w?.processed ?? null,
            queues: w?.queues ?? null,
            last_heartbeat: w?.lastHeartbeatAt !== undefined ? new Date(w.lastHeartbeatAt).toISOString() : null,
            heartbeat_seconds: w?.freq ?? null,
            software: w?.swVersion ?? null,
            clock_skew_seconds: w?.clockSkewSeconds ?? null,
          };
        }),
      );
    }),
  );

  router.get(
    '/api/v1/queues',
    viewer,
    handle(async (_req, res) => {
      res.json(await deps.queues.collect());
    }),
  );

  router.post(
    '/api/v1/actions',
    ...operator,
    handle(async (req, res) => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      if (typeof b !== 'object' || Array.isArray(b)) throw new CommandValidationError('the body must be a JSON object');
      const unknownKeys = Object.keys(b).filter(
        (k) => !['command', 'arguments', 'targets', 'dry_run', 'confirm', 'timeout_ms', 'keep_processes'].includes(k),
      );
      if (unknownKeys.length)
        throw new CommandValidationError(`unknown field${unknownKeys.length > 1 ? 's' : ''} ${unknownKeys.join(', ')}`);
      if (typeof b.command !== 'string') throw new CommandValidationError('must name a command', 'command');
      // Queue targets are resolved after validation and the role check, like every other target.
      const result = await execute(
        req,
        b.command as CommandName,
        (b.arguments ?? {}) as Record<string, unknown>,
        async () => resolveTargets(b.targets),
        {
          dryRun: b.dry_run === true,
          confirm: b.confirm === true,
          ...(b.timeout_ms !== undefined ? { timeoutMs: b.timeout_ms as number } : {}),
          ...(b.keep_processes !== undefined ? { keepProcesses: b.keep_processes as number } : {}),
        },
      );
      // active, reserved and scheduled list tasks with their arguments: the payload rule applies.
      const view = deps.payload.view(req.principal);
      res.json({
        ...result,
        results: result.results.map((r) => (r.reply === undefined ? r : { ...r, reply: view.inspectReply(result.command, r.reply) })),
      });
    }),
  );

  const admin = deps.auth.withBody(
    'admin',
    express.json({ limit: deps.maxBodyBytes }),
    express.urlencoded({ extended: false, limit: deps.maxBodyBytes }),
  );
  router.post(
    '/api/v1/queues/:name/purge',
    ...admin,
    handle(async (req, res) => {
      const queue = validateQueueName(req.params.name, 'name');
      const by = describePrincipal(req);
      // Only queues this service reports: a typo must not reach the broker as a purge.
      if (!deps.queues.queueNames().includes(queue))
        throw new HttpError(404, `unknown queue '${queue}': not in metrics.queues, consumed by a live worker, or seen in task-sent`);
      if (booleanParam(req, 'dry_run', false)) {
        const depth = await deps.queues.depthNow(queue);
        if (depth.messages === null)
          throw new HttpError(503, `the depth of '${queue}' cannot be read: ${depth.error ?? 'broker unavailable'}`);
        res.json({ queue, dry_run: true, messages: depth.messages });
        return;
      }
      let removed: number;
      try {
        removed = await deps.queues.purge(queue, PURGE_TIMEOUT_MS);
      } catch (e) {
        const outcome =
          e instanceof BrokerUnavailableError ? 'broker_unavailable' : e instanceof QueueNotFoundError ? 'not_found' : 'failed';
        audit.write({
          kind: 'control',
          by,
          command: 'purge',
          arguments: { queue },
          outcome,
          ...(outcome === 'failed' ? { error: (e as Error).message } : {}),
        });
        if (e instanceof QueueNotFoundError) throw new HttpError(404, e.message);
        throw e;
      }
      audit.write({ kind: 'control', by, command: 'purge', arguments: { queue }, outcome: 'ok', removed });
      res.json({ queue, purged: removed });
    }),
  );

  router.get('/api/v1/audit', viewer, (req, res) => {
    res.json(audit.recent(auditKind(req), auditLimit(req)));
  });

  /** `{ queue }` becomes the live workers consuming it; never an empty (= everyone) destination. */
  function resolveTargets(raw: unknown): Targets {
    if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'queue' in raw) {
      const keys = Object.keys(raw);
      if (keys.length !== 1) throw new CommandValidationError('give only one of workers, pattern, queue, all', 'targets');
      const queue = validateQueueName((raw as { queue: unknown }).queue, 'targets.queue');
      const consumers = workers.consumersOf(queue).map((w) => w.hostname);
      if (consumers.length === 0) throw new HttpError(404, `no live worker consumes queue '${queue}'`);
      return { workers: consumers };
    }
    return raw as Targets;
  }

  return router;
}
