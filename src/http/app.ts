import express, { type Express, type Request, type Router } from 'express';
import type { Auth } from '../auth/index.js';
import type { Logger } from '../log.js';
import { sendError } from './control-routes.js';
import { landingPage } from '../console/landing.js';
import { urlPrefix } from './url-prefix.js';
import { securityHeaders } from './security-headers.js';
import { VERSION } from '../metrics/self-metrics.js';

/** One feature's routers (src/modules/), mounted by createHttpApp in the security order. */
export interface FeatureRoutes {
  /** Ahead of sessions and authentication: a receiver that checks its own credentials. */
  readonly beforeAuth?: readonly Router[];
  /** After authentication, in the order the features are listed. */
  readonly routes?: readonly Router[];
}

/**
 * What the HTTP surface is built from: the process's own endpoints (probes, the landing page),
 * authentication, and the features' routers. The service builds it; tests may build their own.
 */
export interface HttpDeps {
  readonly logger: Logger;
  /** The `trust_proxy` setting: '' (off), a hop count, true, or Express's named ranges. */
  readonly trustProxy: string;
  readonly auth: Auth;
  /** auth.public_url, if set: its origin is the one that may call, and https:// turns on HSTS. */
  readonly publicUrl: string | undefined;
  /** The process serves TLS itself (the `tls` keys): HSTS too. */
  readonly servedOverTls?: boolean;
  /** url_prefix: every link, form action, asset and redirect carries it ('' = the root). */
  readonly urlPrefix: string;
  /** The features (exporter, console, tasks, control, remediation), in mounting order. */
  readonly features: readonly FeatureRoutes[];
}

/** Liveness: the process answers. Flower's /healthcheck and the celery-exporter chart's /health are the same probe. */
const LIVENESS_PATHS = ['/-/healthy', '/healthcheck', '/health'];

/**
 * The HTTP surface: security headers on everything; probes; the features' receivers (the
 * Alertmanager webhook); then sessions and authentication (cheap: no password is hashed until a
 * route needs a principal); the landing page; the features' routes in their listed order, the
 * exporter's first (/metrics behind `auth.protectMetrics`, /-/ready).
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

  // Receivers check their own credentials (Alertmanager's); ahead of the API's authentication,
  // their deliveries are never mistaken for failed logins (which would throttle the sender's IP).
  for (const feature of deps.features) for (const router of feature.beforeAuth ?? []) app.use(router);
  app.use(auth.sessionMiddleware);
  app.use(auth.authenticate);
  app.use(auth.router);

  app.get('/', (req, res) => {
    res.type('html').send(landingPage({ version: VERSION, prefix: deps.urlPrefix, caller: auth.knownCaller(req) }));
  });
  // Browsers ask for it whatever the page says; the console's icon answers.
  app.get('/favicon.ico', (_req, res) => res.redirect(301, '/ui/static/favicon.svg'));

  // The features in their listed order: the exporter's /metrics and /-/ready, the console,
  // Flower's task half, Flower's worker and control paths with /api/v1, remediation
  // administration (service.ts lists them).
  for (const feature of deps.features) for (const router of feature.routes ?? []) app.use(router);

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
