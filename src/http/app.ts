import express, { type Express, type Request } from 'express';
import type { AuditLog } from '../audit/audit-log.js';
import type { Auth } from '../auth/index.js';
import type { Clock } from '../clock.js';
import type { ControlClient } from '../control/client.js';
import type { CommandName } from '../control/commands.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import type { Logger } from '../log.js';
import type { ActionMetrics } from '../metrics/remediation-metrics.js';
import type { Remediator } from '../remediation/engine.js';
import type { WorkerRegistry } from '../state/workers.js';
import type { PayloadRule } from '../tasks/payload.js';
import { apiV1 } from './api-v1.js';
import { controlRoutes, sendError } from './control-routes.js';
import { flowerControlApi } from './flower-control-api.js';
import { metricsEndpoint, type MetricsSource } from './metrics-endpoint.js';
import { consoleRouter, type ConsoleDeps } from '../console/index.js';
import { landingPage } from '../console/landing.js';
import { taskReadApi, type TaskApiDeps } from './task-api.js';
import { taskSubmitApi, type TaskSubmitApiDeps } from './task-submit-api.js';
import { taskActionsApi } from './task-actions-api.js';
import { flowerWorkersApi, type FlowerWorkersApiDeps } from './flower-workers-api.js';
import { urlPrefix } from './url-prefix.js';
import { alertmanagerReceiver, remediationAdminApi, type RemediationApiDeps } from './remediation-api.js';
import { heavyReadLimit } from './heavy-reads.js';
import { securityHeaders } from './security-headers.js';
import { WebhookThrottle, type WebhookCredentials } from './webhook-auth.js';

/** Broker connection state as readiness reports it; `lastError` may name internal hosts. */
export interface Readiness {
  ready: boolean;
  broker: { connected: boolean; subscribed: boolean; reconnects: number; lastError?: string | undefined };
}

/**
 * Everything the HTTP surface needs, and nothing more: the service builds it (Service.httpDeps),
 * tests may build their own. (It used to take the whole Service, a type cycle.)
 */
export interface HttpDeps {
  readonly version: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The `trust_proxy` setting: '' (off), a hop count, true, or Express's named ranges. */
  readonly trustProxy: string;
  readonly auth: Auth;
  /** auth.public_url, if set: its origin is the one that may call, and https:// turns on HSTS. */
  readonly publicUrl: string | undefined;
  /** The process serves TLS itself (the `tls` keys): HSTS too. */
  readonly servedOverTls?: boolean;
  readonly metrics: MetricsSource;
  readiness(): Readiness;
  readonly cluster: { control: ControlClient; workers: WorkerRegistry; queues: QueueCollector };
  readonly audit: AuditLog;
  readonly controlMaxBodyBytes: number;
  readonly actionMetrics: ActionMetrics;
  /** url_prefix: every link, form action, asset and redirect carries it ('' = the root). */
  readonly urlPrefix: string;
  /** tasks.payload_role: the one rule every route that returns task payloads applies. */
  readonly payload: PayloadRule;
  /** Flower's task half (read, submit, result, abort) and its /api/workers. */
  readonly tasks: {
    readonly read: Omit<TaskApiDeps, 'auth' | 'payload' | 'heavyRead'>;
    readonly submit: Omit<TaskSubmitApiDeps, 'auth' | 'audit' | 'clock' | 'payload'>;
    readonly workers: Omit<FlowerWorkersApiDeps, 'auth' | 'workers' | 'queues' | 'payload'>;
  };
  /** The console's own wiring; the cluster, audit, auth, remediator and payload rule come from the fields above. */
  readonly console: Omit<ConsoleDeps, 'auth' | 'workers' | 'control' | 'queues' | 'audit' | 'remediator' | 'payload' | 'heavyRead'>;
  /** Present when remediation.enabled. */
  readonly remediation?: { remediator: Remediator; credentials: WebhookCredentials; maxBodyBytes: number; reloadRules: () => number };
}

/** Task lists one caller may have in flight at once (/api/tasks and /ui/tasks together); 429 beyond. */
export const TASK_LISTS_PER_CALLER = 2;

/** Liveness: the process answers. Flower's /healthcheck and the celery-exporter chart's /health are the same probe. */
const LIVENESS_PATHS = ['/-/healthy', '/healthcheck', '/health'];

/**
 * The HTTP surface: security headers on everything; probes; the Alertmanager receiver; then
 * sessions and authentication (cheap: no password is hashed until a route needs a principal);
 * the exporter endpoints, the operator page, the control API and remediation administration.
 */
// Over 80 lines on purpose: the order of the middleware is the security design (headers, probes,
// receiver, sessions, routes, errors); it reads best in one place.
export function createHttpApp(deps: HttpDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const trust = deps.trustProxy.trim();
  if (trust !== '') app.set('trust proxy', /^\d+$/.test(trust) ? Number(trust) : trust === 'true' ? true : trust);
  else app.use(warnOnceAboutForwardedFor(deps.logger));
  const { auth } = deps;
  // First: requests under url_prefix are routed as if at the root, redirects get the prefix.
  app.use(urlPrefix(deps.urlPrefix));
  app.use(...securityHeaders({ https: deps.servedOverTls === true || (deps.publicUrl?.startsWith('https:') ?? false) }));

  // Probes first: they need nobody, so no session or credential is looked at.
  for (const path of LIVENESS_PATHS) app.get(path, (_req, res) => res.type('text').send(path === '/healthcheck' ? 'OK' : 'OK\n'));

  const remediation: RemediationApiDeps | undefined = deps.remediation && {
    ...deps.remediation,
    throttle: new WebhookThrottle(deps.clock),
    publicOrigin: deps.publicUrl ? new URL(deps.publicUrl).origin : undefined,
    audit: deps.audit,
    auth,
    metrics: deps.actionMetrics,
    logger: deps.logger,
  };
  // The receiver checks Alertmanager's own credentials; ahead of the API's authentication, its
  // deliveries are never mistaken for failed logins (which would throttle the sender's IP).
  if (remediation) app.use(alertmanagerReceiver(remediation));
  app.use(auth.sessionMiddleware);
  app.use(auth.authenticate);
  app.use(auth.router);

  app.get('/', (req, res) => {
    res.type('html').send(landingPage({ version: deps.version, prefix: deps.urlPrefix, caller: auth.knownCaller(req) }));
  });
  // Browsers ask for it whatever the page says; the console's icon answers.
  app.get('/favicon.ico', (_req, res) => res.redirect(301, '/ui/static/favicon.svg'));
  app.get('/metrics', auth.protectMetrics, metricsEndpoint(deps.metrics));
  app.get('/-/ready', (req, res) => {
    const { ready, broker } = deps.readiness();
    // The broker's error names internal hosts and addresses: only for a caller we know (and the logs).
    const { lastError, ...rest } = broker;
    const detail = lastError && auth.knownCaller(req) ? { lastError } : {};
    res.status(ready ? 200 : 503).json({ ready, broker: { ...rest, ...detail } });
  });

  const { control, workers, queues } = deps.cluster;
  // One bound for both task lists: the API's and the console's are the same query.
  const heavyRead = heavyReadLimit(TASK_LISTS_PER_CALLER);
  app.use(
    consoleRouter({
      ...deps.console,
      auth,
      workers,
      control,
      queues: () => queues.collect(),
      audit: deps.audit,
      remediator: deps.remediation?.remediator,
      payload: deps.payload,
      heavyRead,
      rerun: { role: deps.tasks.submit.submitRole, allows: (name: string) => deps.tasks.submit.policy.allows(name) },
    }),
  );
  const routes = controlRoutes({
    control,
    workers,
    queues,
    audit: deps.audit,
    auth,
    maxBodyBytes: deps.controlMaxBodyBytes,
    refused: (command: CommandName) => deps.actionMetrics.controlCommands.inc({ command, outcome: 'refused' }),
    payload: deps.payload,
  });
  // Flower's task half, and its /api/workers and /api/queues/length served from the background
  // worker snapshot.
  const { payload } = deps;
  app.use(taskReadApi({ ...deps.tasks.read, auth, payload, heavyRead }));
  const submitDeps = { ...deps.tasks.submit, auth, audit: deps.audit, clock: deps.clock, payload };
  app.use(taskSubmitApi(submitDeps));
  app.use(taskActionsApi(submitDeps, routes));
  app.use(flowerWorkersApi({ ...deps.tasks.workers, auth, workers, queues, payload }));
  app.use(flowerControlApi(routes));
  app.use(apiV1(routes));
  if (remediation) app.use(remediationAdminApi(remediation));

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  // Express 5 error handler: body-parser's 4xx as they are, anything else a JSON 500 without
  // a stack trace.
  app.use((err: Error & { status?: number; type?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    if (err.type === 'entity.too.large') res.status(413).json({ error: 'request body too large' });
    else if (err.type === 'entity.parse.failed') res.status(400).json({ error: 'request body is not valid JSON' });
    else if (err.status && err.status >= 400 && err.status < 500) res.status(err.status).json({ error: err.message });
    else sendError(res, err);
  });
  return app;
}

/**
 * Behind a reverse proxy with trust_proxy unset, every client has the proxy's address: one
 * client's failed logins then throttle everyone's passwords. Said once, when it is first seen.
 */
function warnOnceAboutForwardedFor(logger: Logger): express.RequestHandler {
  let warned = false;
  return (req: Request, _res, next) => {
    if (!warned && req.get('x-forwarded-for') !== undefined) {
      warned = true;
      logger.warn(
        { ip: req.ip },
        "requests carry X-Forwarded-For but trust_proxy is unset: every client behind the proxy shares its address, so one client's failed logins throttle password logins for all (set trust_proxy to the proxy's address or hop count)",
      );
    }
    next();
  };
}
