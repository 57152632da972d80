/**
 * Authentication and authorisation: who is calling (basic-auth users, bearer tokens, GitHub
 * OAuth sessions) and what they may do (viewer: read; operator: control commands; admin: the
 * dangerous ones). Fails closed: with nothing configured, every guarded route answers 503.
 *
 * The whole surface, for src/http/app.ts:
 *
 *   const auth = createAuth(config.auth, { logger });
 *   app.use(auth.sessionMiddleware);   // cookie sessions (a no-op when only tokens are configured)
 *   app.use(auth.authenticate);        // req.principal from the session (cheap); header credentials are verified by requireRole
 *   app.use(auth.router);              // GET+POST /login, POST /logout, /auth/github, /auth/github/callback
 *   app.get('/metrics', auth.protectMetrics, ...);            // viewer when auth.protect_metrics
 *   app.post('/api/...', ...auth.withBody('operator', express.json()), handler);   // caller checked before the body is read
 *   // in the handler: audit.write({ ...describePrincipal(req), action, ... })
 *
 * - requireRole(role): verifies Authorization header credentials (passwords through PasswordGate),
 *   then 503 (auth not configured) / 429 (failed-login throttle, Retry-After) /
 *   401 (JSON + WWW-Authenticate for scripts; browsers are redirected to /login on GET) /
 *   403 (role too low, or a cookie session's unsafe request without a valid CSRF token or from
 *   a foreign Origin). It runs the CSRF check itself, so `csrf` is only needed on routes that
 *   take cookie sessions without requireRole.
 * - csrfToken(req): the session's CSRF token, for pages that POST back (header X-CSRF-Token or
 *   form field `_csrf`; mount express.json()/urlencoded() before requireRole for the field).
 * - describePrincipal(req): { actor, kind, name, role, via, ip } for the audit log; never a secret.
 * - Client IPs (rate limiting, audit) come from req.ip: set `trust proxy` on the app when behind
 *   a reverse proxy.
 *
 * Order matters: sessionMiddleware, then authenticate, then the router and guarded routes.
 */
import { randomBytes } from 'node:crypto';
import session from 'express-session';
import type { Request, RequestHandler, Router } from 'express';
import { systemClock, type Clock } from '../clock.js';
import type { AuthConfig } from '../config/auth-schema.js';
import type { Logger } from '../log.js';
import { NOT_CONFIGURED, type AuthContext } from './context.js';
import { CredentialVerifier } from './credentials.js';
import { ensureCsrfToken } from './csrf.js';
import { authenticate, cheapPrincipal, csrf, requireRole } from './middleware.js';
import { PasswordGate } from './password-gate.js';
import type { Principal, Role } from './principal.js';
import { authRouter } from './routes.js';
import { BoundedMemoryStore } from './session-store.js';

export { describePrincipal, roleAtLeast, ROLES, type Principal, type Role } from './principal.js';
export { NOT_CONFIGURED } from './context.js';
export { CSRF_FIELD, CSRF_HEADER } from './csrf.js';
export { hashPassword, generateToken } from './hashing.js';
export { safeNext } from './redirect.js';

export interface Auth {
  /** Cookie sessions; must come before `authenticate` and `router`. */
  readonly sessionMiddleware: RequestHandler;
  /** Sets req.principal from a bearer token, basic auth or the session; never rejects by itself. */
  readonly authenticate: RequestHandler;
  /** /login (GET form, POST), /logout (POST), /auth/github and /auth/github/callback. */
  readonly router: Router;
  requireRole(role: Role): RequestHandler;
  /**
   * requireRole for a route with a body: the caller and role are checked before `parsers` read
   * the body (an anonymous or unauthorised caller gets 401/403, never a 400 or 413 about a body
   * it should not have been able to send), then requireRole again after them for the CSRF token.
   */
  withBody(role: Role, ...parsers: RequestHandler[]): RequestHandler[];
  /** For cookie sessions on unsafe methods (requireRole already includes it). */
  readonly csrf: RequestHandler;
  csrfToken(req: Request): string;
  /** The caller when known without hashing a password and without a guessing oracle (session, insecure mode, a valid bearer token), else undefined. */
  knownCaller(req: Request): Principal | undefined;
  /** requireRole('viewer') when auth.protect_metrics, else a pass-through. */
  readonly protectMetrics: RequestHandler;
}

export interface AuthDeps {
  logger: Logger;
  clock?: Clock;
}

const passThrough: RequestHandler = (_req, _res, next) => next();

export function createAuth(config: AuthConfig, deps: AuthDeps): Auth {
  const logger = deps.logger.child({ component: 'auth' });
  const clock = deps.clock ?? systemClock;
  const verifier = new CredentialVerifier(config, clock);
  const interactive = { password: config.users.length > 0, github: config.github !== undefined };
  const ctx: AuthContext = {
    config,
    logger,
    clock,
    verifier,
    gate: new PasswordGate(clock, {
      maxFailures: config.login_rate_limit.max_failures,
      windowSeconds: config.login_rate_limit.window_seconds,
    }),
    absoluteLifetimeMs: (config.session.absolute_lifetime_seconds ?? config.session.max_age_seconds) * 1000,
    publicOrigin: config.public_url ? new URL(config.public_url).origin : undefined,
    configured: config.users.length > 0 || config.tokens.length > 0 || config.github !== undefined,
    insecure: config.insecure_no_auth,
    interactive,
  };
  if (config.github && !ctx.publicOrigin) throw new Error('auth.github needs auth.public_url');

  announce(ctx);

  const cookieSecure: boolean | 'auto' =
    config.session.cookie_secure === 'always'
      ? true
      : config.session.cookie_secure === 'never'
        ? false
        : config.public_url?.startsWith('https:')
          ? true
          : 'auto';
  // __Host-: a cookie browsers accept only with Secure, Path=/ and no Domain, so a sibling subdomain cannot plant or shadow it.
  const cookieName =
    cookieSecure === true && config.session.cookie_secure === 'always'
      ? `__Host-${config.session.cookie_name}`
      : config.session.cookie_name;
  let sessionMiddleware = passThrough;
  if (interactive.password || interactive.github) {
    sessionMiddleware = session({
      name: cookieName,
      // In-memory sessions end with the process anyway, so a random key per start loses nothing.
      secret: config.session.secret?.reveal() ?? randomBytes(32).toString('base64url'),
      store: new BoundedMemoryStore(clock, { maxSessions: config.session.max_sessions, maxAgeMs: config.session.max_age_seconds * 1000 }),
      resave: false,
      saveUninitialized: false,
      unset: 'destroy',
      // With public_url on https:// a TLS-terminating proxy is implied: trust its X-Forwarded-Proto for the Secure decision.
      ...(cookieSecure === true ? { proxy: true } : {}),
      cookie: { httpOnly: true, sameSite: 'lax', secure: cookieSecure, path: '/', maxAge: config.session.max_age_seconds * 1000 },
    });
  }

  const guards = new Map<string, RequestHandler>();
  const guard = (role: Role, beforeBody = false): RequestHandler => {
    const key = `${role}${beforeBody ? ':before-body' : ''}`;
    let h = guards.get(key);
    if (!h) guards.set(key, (h = requireRole(ctx, role, beforeBody)));
    return h;
  };

  return {
    sessionMiddleware,
    authenticate: authenticate(ctx),
    router: authRouter(ctx, { name: cookieName, secure: cookieSecure }),
    knownCaller: (req) => cheapPrincipal(ctx, req),
    requireRole: (role) => guard(role),
    withBody: (role, ...parsers) => [guard(role, true), ...parsers, guard(role)],
    csrf: csrf(ctx),
    csrfToken: ensureCsrfToken,
    protectMetrics: config.protect_metrics ? guard('viewer') : passThrough,
  };
}

/** Start-up lines an operator needs to see: insecure mode, plaintext passwords, nothing configured. */
function announce(ctx: AuthContext): void {
  const { config, logger } = ctx;
  if (ctx.insecure) {
    logger.warn(
      'AUTHENTICATION DISABLED (auth.insecure_no_auth: true): every request is treated as admin and may shut workers down. Never run this way on a shared network.',
    );
  } else if (!ctx.configured) {
    logger.warn(
      NOT_CONFIGURED.replace('authentication is not configured', 'authentication is not configured, so control endpoints answer 503'),
    );
  }
  for (const u of config.users) {
    if (u.password)
      logger.warn({ user: u.username }, 'plaintext password in config: store a hash instead (node scripts/hash-secret.mjs password)');
  }
  logger.info(
    {
      users: config.users.length,
      tokens: config.tokens.length,
      github: config.github !== undefined,
      protectMetrics: config.protect_metrics,
    },
    'authentication configured',
  );
}
