import type { Request, RequestHandler, Response } from 'express';
import { parseAuthorization } from './credentials.js';
import { crossOriginProblem, csrfProblem, expectedOrigins, insecureHostProblem, isUnsafeMethod } from './csrf.js';
import { NOT_CONFIGURED, isBrowser, refuse, type AuthContext, type AuthProblem } from './context.js';
import { roleAtLeast, type Principal, type Role, type SessionPrincipal } from './principal.js';

const INSECURE_PRINCIPAL: Principal = Object.freeze({ kind: 'anonymous-insecure', name: 'anonymous', role: 'admin', via: 'none' });

/**
 * Sets req.principal from what costs nothing: the session cookie, or insecure mode. Header
 * credentials are verified only by the routes that need a principal (requireRole), so public
 * routes (/-/healthy, probes, unprotected /metrics) never spend a password hash on anybody.
 * Never answers by itself.
 */
export function authenticate(ctx: AuthContext): RequestHandler {
  return (req, _res, next) => {
    req.principal = undefined;
    if (ctx.insecure) {
      req.principal = INSECURE_PRINCIPAL;
      return next();
    }
    // Explicit credentials win over a cookie, and failing ones do not fall back to it.
    if (req.get('authorization') !== undefined) return next();
    const fromSession = sessionPrincipal(ctx, req);
    if (fromSession) req.principal = { kind: fromSession.kind, name: fromSession.name, role: fromSession.role, via: 'session' };
    next();
  };
}

/** The session's principal while its absolute lifetime lasts; past it, the session is emptied (sign in again, and GitHub membership or the OpenID provider's claims are judged again). */
function sessionPrincipal(ctx: AuthContext, req: Request): SessionPrincipal | undefined {
  const s = req.session;
  const p = s?.principal;
  if (!s || !p) return undefined;
  const signedInAt = s.signedInAtMs ?? 0;
  if (ctx.clock.nowMs() - signedInAt < ctx.absoluteLifetimeMs) return p;
  ctx.logger.info({ principal: `${p.kind}:${p.name}` }, 'session reached its absolute lifetime: sign-in required');
  delete s.principal;
  delete s.signedInAtMs;
  return undefined;
}

/**
 * A principal found without hashing anything and without an oracle to guess against: a
 * session, insecure mode, or a bearer token (256 random bits). For routes that only add detail
 * for known callers (/-/ready). Basic auth is not looked at here: checking it against the
 * verification cache would let anyone test passwords at line speed.
 */
export function cheapPrincipal(ctx: AuthContext, req: Request): Principal | undefined {
  if (req.principal) return req.principal;
  const header = req.get('authorization');
  if (header === undefined) return undefined;
  const presented = parseAuthorization(header);
  const found = presented.scheme === 'bearer' ? ctx.verifier.verifyToken(presented.token) : undefined;
  return found ? { ...found, via: 'header' } : undefined;
}

/** Verifies the Authorization header (tokens at once, passwords through the gate); sets req.principal or says why not. */
async function authenticateHeader(ctx: AuthContext, req: Request, header: string): Promise<AuthProblem | undefined> {
  const presented = parseAuthorization(header);
  if (presented.scheme === 'unsupported') return { status: 401, reason: 'unsupported Authorization header: use Basic or Bearer' };
  const ip = req.ip ?? 'unknown';
  if (presented.scheme === 'bearer') {
    // A valid token is never throttled: it is 256 random bits, and other credentials' failures say nothing about it.
    const found = ctx.verifier.verifyToken(presented.token);
    if (found) {
      req.principal = { ...found, via: 'header' };
      return undefined;
    }
    const wait = ctx.gate.clientRetryAfterSeconds(ip);
    if (wait > 0) return { status: 429, retryAfterSeconds: wait };
    ctx.gate.recordClientFailure(ip);
    ctx.logger.info({ ip, scheme: 'bearer' }, 'authentication failed');
    return { status: 401, reason: 'invalid credentials' };
  }
  const outcome = await checkPassword(ctx, ip, presented.username, presented.password, 'basic');
  if ('principal' in outcome) {
    req.principal = { ...outcome.principal, via: 'header' };
    return undefined;
  }
  return outcome.problem;
}

/** One password check for basic auth and the login form: cache, gate, scrypt, failure accounting and logs. */
export async function checkPassword(
  ctx: AuthContext,
  ip: string,
  username: string,
  password: string,
  scheme: 'basic' | 'form',
): Promise<{ principal: SessionPrincipal } | { problem: AuthProblem }> {
  // A client over its failure limit is refused before anything, the verification cache included:
  // a cache lookup is cheap, and answering from it would let a throttled client test a recently
  // used password at line speed.
  const wait = ctx.gate.clientRetryAfterSeconds(ip);
  if (wait > 0) return { problem: { status: 429, retryAfterSeconds: wait } };
  const cached = ctx.verifier.cached(username, password);
  if (cached) return { principal: cached };
  // A name typed into the wrong field can be a password: only configured usernames are logged.
  const user = ctx.verifier.hasUser(username) ? username : '<unknown>';
  const entry = await ctx.gate.enter(ip, username);
  if (!entry.admitted) {
    ctx.logger.debug({ ip, user, scheme, why: entry.why }, 'password check refused: throttled');
    return { problem: { status: 429, retryAfterSeconds: entry.retryAfterSeconds } };
  }
  let principal: SessionPrincipal | undefined;
  try {
    principal = await ctx.verifier.verifyPassword(username, password);
  } catch (e) {
    entry.release('error');
    throw e;
  }
  entry.release(principal ? 'success' : 'failure');
  if (principal) return { principal };
  ctx.logger.info({ ip, scheme, user }, 'authentication failed');
  if (ctx.gate.clientRetryAfterSeconds(ip) > 0) ctx.logger.warn({ ip, user }, 'too many failed logins: throttling');
  return { problem: { status: 401, reason: 'invalid credentials' } };
}

/**
 * Lets the request through when its principal has at least `role`; otherwise 503 (nothing
 * configured; a browser's GET is sent to /login, which says what to configure), 429 (throttled), 401 (no or wrong credentials: browsers are sent to /login,
 * others get WWW-Authenticate challenges) or 403 (CSRF or cross-origin, or role too low).
 * Cookie sessions on unsafe methods must pass the CSRF check here too, so a route guarded by
 * requireRole is safe even where `csrf` was not mounted. With `beforeBody`, the session's CSRF
 * token is not looked for yet (it may come as a `_csrf` form field of a body not read yet; the
 * same-origin check is made): for the pass in front of the body parsers (see Auth.withBody).
 */
export function requireRole(ctx: AuthContext, role: Role, beforeBody = false): RequestHandler {
  return async (req, res, next) => {
    if (!ctx.configured && !ctx.insecure) {
      // Still closed; a person at a browser is sent to the page that says what to configure.
      if (isBrowser(req) && req.method === 'GET') res.redirect(302, `/login?next=${encodeURIComponent(req.originalUrl)}`);
      else res.status(503).json({ error: NOT_CONFIGURED });
      return;
    }
    const header = req.get('authorization');
    const problem = !req.principal && header !== undefined ? await authenticateHeader(ctx, req, header) : undefined;
    if (problem?.status === 429) {
      res.set('Retry-After', String(problem.retryAfterSeconds));
      refuse(req, res, 429, `too many failed logins: retry in ${problem.retryAfterSeconds} s`);
      return;
    }
    const principal = req.principal;
    if (principal?.kind === 'anonymous-insecure') {
      const why = insecureHostProblem(req, ctx.publicOrigin);
      if (why) {
        ctx.logger.info({ ip: req.ip, host: req.get('host'), reason: why }, 'insecure mode: request for a foreign Host refused');
        refuse(req, res, 403, why);
        return;
      }
    }
    if (!principal) {
      unauthenticated(ctx, req, res, problem?.reason ?? 'authentication required');
      return;
    }
    if (isUnsafeMethod(req.method)) {
      const origins = expectedOrigins(req, ctx.publicOrigin);
      // Insecure mode has no cookie to protect, but a foreign page must still not drive the API through a browser.
      const why =
        principal.via === 'session'
          ? beforeBody
            ? crossOriginProblem(req, origins)
            : csrfProblem(req, origins)
          : principal.kind === 'anonymous-insecure'
            ? crossOriginProblem(req, origins)
            : undefined;
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
  if (isBrowser(req)) {
    // With tokens only, /login says how people get in; with a sign-in method, it is the form.
    if (req.method === 'GET' && reason === 'authentication required') {
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
    // Explicit credentials win over the cookie (see authenticate), so a request carrying them is not cookie-authenticated.
    const cookieAuthenticated = req.principal
      ? req.principal.via === 'session'
      : req.get('authorization') === undefined && Boolean(req.session?.principal);
    if (cookieAuthenticated && isUnsafeMethod(req.method)) {
      const why = csrfProblem(req, expectedOrigins(req, ctx.publicOrigin));
      if (why) {
        refuse(req, res, 403, why);
        return;
      }
    }
    next();
  };
}
