/**
 * Authentication and authorisation: who is calling (basic-auth users, bearer tokens, GitHub
 * OAuth and OpenID Connect sessions) and what they may do (viewer: read; operator: control commands; admin: the
 * dangerous ones). Fails closed: with nothing configured, every guarded route answers 503.
 *
 * The whole surface, for src/http/app.ts:
 *
 *   const auth = createAuth(config.auth, { logger });
 *   app.use(auth.sessionMiddleware);   // cookie sessions (a no-op when only tokens are configured)
 *   app.use(auth.authenticate);        // req.principal from the session (cheap); header credentials are verified by requireRole
 *   app.use(auth.router);              // GET+POST /login, POST /logout, /auth/github, /auth/oidc/<id> and their callbacks
 *   router.get('/metrics', auth.protectMetrics, ...);         // viewer when auth.protect_metrics (http/exporter-routes.ts)
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
 *   form field `_csrf`; a route with a body uses withBody, which checks the field after the parsers).
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
import { NOT_CONFIGURED, hasInteractiveSignIn, type AuthContext } from './context.js';
import { CredentialVerifier } from './credentials.js';
import { ensureCsrfToken } from './csrf.js';
import { authenticate, cheapPrincipal, csrf, requireRole } from './middleware.js';
import { loadOidcMaterial } from './oidc/material.js';
import { OidcProvider } from './oidc/provider.js';
import { PasswordGate } from './password-gate.js';
import type { Principal, Role } from './principal.js';
import { authRouter } from './routes.js';
import { BoundedMemoryStore } from './session-store.js';

export { describePrincipal, roleAtLeast, ROLES, type Principal, type Role } from './principal.js';
export { NOT_CONFIGURED } from './context.js';
export { CSRF_FIELD, CSRF_HEADER } from './csrf.js';
export { hashPassword, generateToken } from './hashing.js';
export { safeNext } from './redirect.js';
export { loadOidcMaterial, OidcMaterialError } from './oidc/material.js';

export interface Auth {
  /** Cookie sessions; must come before `authenticate` and `router`. */
  readonly sessionMiddleware: RequestHandler;
  /** Sets req.principal from a bearer token, basic auth or the session; never rejects by itself. */
  readonly authenticate: RequestHandler;
  /** /login (GET form, POST), /logout (POST), /auth/github, /auth/oidc/<id> and their callbacks. */
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
  /** How people and scripts get in, in words, for the start-up line; `open` false when nobody can (fail closed). */
  readonly signIn: { readonly text: string; readonly open: boolean };
  /** Stops the OpenID providers' discovery retries and closes their connections. */
  stop(): Promise<void>;
}

export interface AuthDeps {
  logger: Logger;
  clock?: Clock;
  /** The service itself terminates TLS (the `tls` keys): session cookies are then Secure and __Host- by default. */
  servedOverTls?: boolean;
}

const passThrough: RequestHandler = (_req, _res, next) => next();

export function createAuth(config: AuthConfig, deps: AuthDeps): Auth {
  const logger = deps.logger.child({ component: 'auth' });
  const clock = deps.clock ?? systemClock;
  const verifier = new CredentialVerifier(config, clock);
  const interactive = { password: config.users.length > 0, github: config.github !== undefined, oidc: config.oidc.length > 0 };
  // Secret and CA files are read now: a missing one stops the start, as --check-config says.
  const material = loadOidcMaterial(config.oidc);
  const oidc = new Map(
    config.oidc.map((p) => [p.id, new OidcProvider(p, material.get(p.id)!, { logger, publicUrl: config.public_url ?? '' })] as const),
  );
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
    configured: config.users.length > 0 || config.tokens.length > 0 || config.github !== undefined || oidc.size > 0,
    insecure: config.insecure_no_auth,
    interactive,
    oidcButtons: [...oidc.values()],
  };
  if (config.github && !ctx.publicOrigin) throw new Error('auth.github needs auth.public_url');
  if (oidc.size > 0 && !ctx.publicOrigin) throw new Error('auth.oidc needs auth.public_url');

  announce(ctx);

  const cookie = sessionCookie(config, deps.servedOverTls === true);
  let sessionMiddleware = passThrough;
  if (hasInteractiveSignIn(ctx)) {
    sessionMiddleware = session({
      name: cookie.name,
      // In-memory sessions end with the process anyway, so a random key per start loses nothing.
      secret: config.session.secret?.reveal() ?? randomBytes(32).toString('base64url'),
      store: new BoundedMemoryStore(clock, { maxSessions: config.session.max_sessions, maxAgeMs: config.session.max_age_seconds * 1000 }),
      resave: false,
      saveUninitialized: false,
      unset: 'destroy',
      ...(cookie.proxy ? { proxy: true } : {}),
      cookie: { httpOnly: true, sameSite: 'lax', secure: cookie.secure, path: '/', maxAge: config.session.max_age_seconds * 1000 },
    });
  }

  const guards = new Map<string, RequestHandler>();
  const guard = (role: Role, beforeBody = false): RequestHandler => {
    const key = `${role}${beforeBody ? ':before-body' : ''}`;
    let h = guards.get(key);
    if (!h) guards.set(key, (h = requireRole(ctx, role, beforeBody)));
    return h;
  };

  const auth: Auth = {
    sessionMiddleware,
    authenticate: authenticate(ctx),
    router: authRouter(ctx, { name: cookie.name, secure: cookie.secure }, oidc),
    knownCaller: (req) => cheapPrincipal(ctx, req),
    requireRole: (role) => guard(role),
    withBody: (role, ...parsers) => [guard(role, true), ...parsers, guard(role)],
    csrf: csrf(ctx),
    csrfToken: ensureCsrfToken,
    protectMetrics: config.protect_metrics ? guard('viewer') : passThrough,
    signIn: describeSignIn(ctx),
    stop: async () => {
      await Promise.all([...oidc.values()].map((p) => p.stop()));
    },
  };
  for (const p of oidc.values()) p.start();
  return auth;
}

/**
 * The session cookie's name and Secure flag. `auto` means Secure when public_url is https:// (a
 * TLS-terminating proxy is implied, whose X-Forwarded-Proto is then trusted for the decision) or
 * when the service serves TLS itself. __Host-: a cookie browsers accept only with Secure, Path=/
 * and no Domain, so a sibling subdomain cannot plant or shadow it; on when asked for
 * (cookie_secure: always), and by default when we serve TLS ourselves.
 */
function sessionCookie(config: AuthConfig, overTls: boolean): { name: string; secure: boolean | 'auto'; proxy: boolean } {
  const mode = config.session.cookie_secure;
  const secure: boolean | 'auto' =
    mode === 'always' ? true : mode === 'never' ? false : overTls || config.public_url?.startsWith('https:') ? true : 'auto';
  const name = secure === true && (mode === 'always' || overTls) ? `__Host-${config.session.cookie_name}` : config.session.cookie_name;
  return { name, secure, proxy: secure === true && !overTls };
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
      logger.warn({ user: u.username }, 'plaintext password in config: store a hash instead (npm run hash-secret -- user <name> <role>)');
  }
}

/** "password (2 users), GitHub, 1 API token; /metrics open", or why nobody can get in. */
function describeSignIn(ctx: AuthContext): { text: string; open: boolean } {
  const { config } = ctx;
  if (ctx.insecure) return { text: 'AUTHENTICATION DISABLED (auth.insecure_no_auth): every caller is admin', open: true };
  if (!ctx.configured) {
    return {
      text: 'nobody can sign in: no user, token or single sign-on is configured, so the console and control API are closed (the console URL says what to set, e.g. CELERY_AUTOPILOT_AUTH_USERS)',
      open: false,
    };
  }
  const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
  const ways = [
    ...(config.users.length > 0 ? [`password (${plural(config.users.length, 'user')})`] : []),
    ...(config.github ? ['GitHub'] : []),
    ...(config.oidc.length > 0 ? [`OpenID Connect (${config.oidc.map((p) => p.id).join(', ')})`] : []),
    ...(config.tokens.length > 0 ? [plural(config.tokens.length, 'API token')] : []),
  ];
  const people = hasInteractiveSignIn(ctx) ? '' : ' (tokens only: no sign-in form for people)';
  return { text: `sign-in: ${ways.join(', ')}${people}; /metrics ${config.protect_metrics ? 'needs viewer' : 'open'}`, open: true };
}
