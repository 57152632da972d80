import type { Request, RequestHandler, Response } from 'express';
import { parseAuthorization } from './credentials.js';
import { crossOriginProblem, csrfProblem, expectedOrigin, isUnsafeMethod } from './csrf.js';
import { NOT_CONFIGURED, isBrowser, refuse, type AuthContext } from './context.js';
import { ipKey, userKey } from './login-limiter.js';
import { roleAtLeast, type Principal, type Role } from './principal.js';

const INSECURE_PRINCIPAL: Principal = Object.freeze({ kind: 'anonymous-insecure', name: 'anonymous', role: 'admin', via: 'none' });

/**
 * Sets req.principal from, in order: the Authorization header (Bearer or Basic), the session
 * cookie, or insecure mode. Never answers by itself: a wrong or throttled credential is noted
 * for requireRole, so public routes keep working whatever a client sends.
 */
export function authenticate(ctx: AuthContext): RequestHandler {
  return async (req, _res, next) => {
    req.principal = undefined;
    if (ctx.insecure) {
      req.principal = INSECURE_PRINCIPAL;
      return next();
    }
    const header = req.get('authorization');
    if (header !== undefined) {
      // Explicit credentials win over a cookie, and failing ones do not fall back to it.
      await authenticateHeader(ctx, req, header);
      return next();
    }
    const fromSession = req.session?.principal;
    if (fromSession) req.principal = { kind: fromSession.kind, name: fromSession.name, role: fromSession.role, via: 'session' };
    next();
  };
}

async function authenticateHeader(ctx: AuthContext, req: Request, header: string): Promise<void> {
  const presented = parseAuthorization(header);
  if (presented.scheme === 'unsupported') {
    ctx.problems.set(req, { status: 401, reason: 'unsupported Authorization header: use Basic or Bearer' });
    return;
  }
  const keys = presented.scheme === 'basic' ? [ipKey(req.ip), userKey(presented.username)] : [ipKey(req.ip)];
  const wait = ctx.limiter.retryAfterSeconds(keys);
  if (wait > 0) {
    ctx.problems.set(req, { status: 429, retryAfterSeconds: wait });
    return;
  }
  const found =
    presented.scheme === 'basic' ? await ctx.verifier.verifyPassword(presented.username, presented.password) : ctx.verifier.verifyToken(presented.token);
  if (found) {
    req.principal = { ...found, via: 'header' };
    if (presented.scheme === 'basic') ctx.limiter.reset(userKey(presented.username));
    return;
  }
  ctx.limiter.recordFailure(keys);
  ctx.problems.set(req, { status: 401, reason: 'invalid credentials' });
  // A name typed into the wrong field can be a password: only configured usernames are logged.
  const user = presented.scheme === 'basic' ? (ctx.verifier.hasUser(presented.username) ? presented.username : '<unknown>') : undefined;
  ctx.logger.info({ ip: req.ip, scheme: presented.scheme, ...(user ? { user } : {}) }, 'authentication failed');
  if (ctx.limiter.retryAfterSeconds(keys) > 0) ctx.logger.warn({ ip: req.ip, ...(user ? { user } : {}) }, 'too many failed logins: throttling');
}

/**
 * Lets the request through when its principal has at least `role`; otherwise 503 (nothing
 * configured), 429 (throttled), 401 (no or wrong credentials: browsers are sent to /login,
 * others get WWW-Authenticate challenges) or 403 (CSRF or cross-origin, or role too low).
 * Cookie sessions on unsafe methods must pass the CSRF check here too, so a route guarded by
 * requireRole is safe even where `csrf` was not mounted.
 */
export function requireRole(ctx: AuthContext, role: Role): RequestHandler {
  return (req, res, next) => {
    if (!ctx.configured && !ctx.insecure) {
      res.status(503).json({ error: NOT_CONFIGURED });
      return;
    }
    const problem = ctx.problems.get(req);
    if (problem?.status === 429) {
      res.set('Retry-After', String(problem.retryAfterSeconds));
      refuse(req, res, 429, `too many failed logins: retry in ${problem.retryAfterSeconds} s`);
      return;
    }
    const principal = req.principal;
    if (!principal) {
      unauthenticated(ctx, req, res, problem?.reason ?? 'authentication required');
      return;
    }
    if (isUnsafeMethod(req.method)) {
      const origin = expectedOrigin(req, ctx.publicOrigin);
      // Insecure mode has no cookie to protect, but a foreign page must still not drive the API through a browser.
      const why = principal.via === 'session' ? csrfProblem(req, origin) : principal.kind === 'anonymous-insecure' ? crossOriginProblem(req, origin) : undefined;
      if (why) {
        ctx.logger.info({ ip: req.ip, principal: `${principal.kind}:${principal.name}`, reason: why }, 'request refused by CSRF check');
        refuse(req, res, 403, why);
        return;
      }
    }
    if (!roleAtLeast(principal.role, role)) {
      refuse(req, res, 403, `forbidden: this needs the ${role} role; ${principal.kind} ${principal.name} has ${principal.role}`);
      return;
    }
    next();
  };
}

function unauthenticated(ctx: AuthContext, req: Request, res: Response, reason: string): void {
  const interactive = ctx.interactive.password || ctx.interactive.github;
  if (isBrowser(req)) {
    if (interactive && req.method === 'GET' && reason === 'authentication required') {
      res.redirect(302, `/login?next=${encodeURIComponent(req.originalUrl)}`);
      return;
    }
    refuse(req, res, 401, reason);
    return;
  }
  // A challenge per method a script can use; browsers get none, so they show no password dialog.
  if (ctx.verifier.userCount > 0) res.append('WWW-Authenticate', 'Basic realm="celery-autopilot", charset="UTF-8"');
  if (ctx.verifier.tokenCount > 0) res.append('WWW-Authenticate', 'Bearer realm="celery-autopilot"');
  res.status(401).json({ error: reason });
}

/** CSRF check for cookie sessions on unsafe methods; header-authenticated requests pass untouched. */
export function csrf(ctx: AuthContext): RequestHandler {
  return (req, res, next) => {
    const cookieAuthenticated = req.principal ? req.principal.via === 'session' : Boolean(req.session?.principal);
    if (cookieAuthenticated && isUnsafeMethod(req.method)) {
      const why = csrfProblem(req, expectedOrigin(req, ctx.publicOrigin));
      if (why) {
        refuse(req, res, 403, why);
        return;
      }
    }
    next();
  };
}
