import { randomBytes } from 'node:crypto';
import express, { type Request, type RequestHandler, type Router } from 'express';
import { Passport } from 'passport';
import { hasInteractiveSignIn, isBrowser, refuse, type AuthContext } from './context.js';
import { csrfProblem, ensureCsrfToken, expectedOrigins } from './csrf.js';
import { GitHubAllowList, createGitHubStrategy } from './github.js';
import { loginPage, noSignInPage } from './login-page.js';
import { checkPassword } from './middleware.js';
import type { OidcProvider } from './oidc/provider.js';
import { oidcRoutes } from './oidc/routes.js';
import type { SessionPrincipal } from './principal.js';
import { safeNext } from './redirect.js';

export const GITHUB_CALLBACK_PATH = '/auth/github/callback';

/**
 * GET+POST /login, POST /logout, GET /auth/github, /auth/oidc/<id> and their callbacks. Every
 * sign-in ends in `establishSession`, which issues a new session id (no fixation) and a new CSRF token.
 */
export function authRouter(
  ctx: AuthContext,
  cookie: { name: string; secure: boolean | 'auto' },
  oidcProviders: ReadonlyMap<string, OidcProvider> = new Map(),
): Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '8kb', parameterLimit: 20 });
  const noStore: RequestHandler = (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  };
  const sessionsOn = hasInteractiveSignIn(ctx);

  const renderLogin = loginRenderer(ctx);

  router.get('/login', noStore, (req, res) => {
    if (!sessionsOn) {
      // What to configure, rather than a dead end: 503 while nothing at all is (fail closed), 404 with tokens only.
      if (!isBrowser(req))
        return refuse(req, res, ctx.configured ? 404 : 503, 'no interactive sign-in is configured (auth.users, auth.github or auth.oidc)');
      return pageHeaders(res)
        .status(ctx.configured ? 404 : 503)
        .type('html')
        .send(noSignInPage({ tokens: ctx.verifier.tokenCount > 0, base: prefixOf(res) }));
    }
    renderLogin(req, res, 200, safeNext(req.query.next));
  });

  router.post('/login', noStore, form, async (req, res) => {
    if (!ctx.interactive.password) return refuse(req, res, 404, 'no password sign-in is configured (auth.users)');
    const body = (req.body ?? {}) as Record<string, unknown>;
    const next = safeNext(body.next);
    const why = csrfProblem(req, expectedOrigins(req, ctx.publicOrigin));
    if (why) {
      ctx.logger.info({ ip: req.ip, reason: why }, 'sign-in form refused by CSRF check');
      return renderLogin(req, res, 403, next, 'This sign-in form expired or came from another site: please try again.');
    }
    const { username, password } = body;
    if (typeof username !== 'string' || typeof password !== 'string' || username === '' || password === '') {
      return renderLogin(req, res, 400, next, 'Enter a username and a password.');
    }
    const outcome = await checkPassword(ctx, req.ip ?? 'unknown', username, password, 'form');
    if ('problem' in outcome) {
      const problem = outcome.problem;
      if (problem.status === 429) {
        res.set('Retry-After', String(problem.retryAfterSeconds));
        return renderLogin(req, res, 429, next, `Too many failed sign-ins: try again in ${problem.retryAfterSeconds} s.`);
      }
      return renderLogin(req, res, 401, next, 'Wrong username or password.');
    }
    const principal = outcome.principal;
    await establishSession(req, principal, ctx.clock.nowMs());
    ctx.logger.info({ ip: req.ip, user: principal.name, role: principal.role }, 'signed in');
    res.redirect(303, next);
  });

  router.post('/logout', noStore, form, async (req, res) => {
    if (req.session?.principal) {
      const why = csrfProblem(req, expectedOrigins(req, ctx.publicOrigin));
      if (why) return refuse(req, res, 403, why);
      ctx.logger.info({ ip: req.ip, principal: `${req.session.principal.kind}:${req.session.principal.name}` }, 'signed out');
    }
    if (req.session) await new Promise<void>((resolve, reject) => req.session.destroy((err) => (err ? reject(err as Error) : resolve())));
    res.clearCookie(cookie.name, { path: '/', httpOnly: true, sameSite: 'lax', ...(cookie.secure === true ? { secure: true } : {}) });
    res.redirect(303, '/login');
  });

  const github = ctx.config.github;
  if (github && ctx.publicOrigin) githubRoutes(router, ctx, github, ctx.config.public_url ?? ctx.publicOrigin, noStore);
  if (oidcProviders.size > 0) oidcRoutes(router, { ctx, providers: oidcProviders, noStore, renderLogin, establishSession });
  return router;
}

/** The login page with a status and, when something went wrong, why. */
function loginRenderer(ctx: AuthContext): (req: Request, res: express.Response, status: number, next: string, message?: string) => void {
  return (req, res, status, next, message) => {
    const p = req.session.principal;
    pageHeaders(res)
      .status(status)
      .type('html')
      .send(
        loginPage({
          csrfToken: ensureCsrfToken(req),
          next,
          passwordLogin: ctx.interactive.password,
          githubLogin: ctx.interactive.github,
          oidc: ctx.oidcButtons,
          base: prefixOf(res),
          ...(p ? { signedInAs: `${p.name} (${p.role})` } : {}),
          ...(message ? { message } : {}),
        }),
      );
  };
}

/** The console's stylesheet and icon (same origin) and nothing else: no script, no inline style. */
function pageHeaders(res: express.Response): express.Response {
  return res
    .set(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    .set('X-Frame-Options', 'DENY');
}

const prefixOf = (res: express.Response): string => (typeof res.locals.urlPrefix === 'string' ? (res.locals.urlPrefix as string) : '');

/** GET /auth/github and its callback, through passport-github2 with our own state store and allow list. */
function githubRoutes(
  router: Router,
  ctx: AuthContext,
  github: NonNullable<AuthContext['config']['github']>,
  publicUrl: string,
  noStore: RequestHandler,
): void {
  const passport = new Passport();
  const strategy = createGitHubStrategy({
    config: github,
    // Under public_url's path, as documented: behind a proxy with url_prefix the callback is
    // https://host/prefix/auth/github/callback, which the proxy forwards.
    callbackURL: new URL(`.${GITHUB_CALLBACK_PATH}`, publicUrl.replace(/\/*$/, '/')).toString(),
    allowList: new GitHubAllowList(github, ctx.logger),
    clock: ctx.clock,
    logger: ctx.logger,
  });
  passport.use('github', strategy);

  router.get('/auth/github', noStore, (req, res, next) => {
    req.session.loginNext = safeNext(req.query.next);
    (passport.authenticate('github', { session: false }) as RequestHandler)(req, res, next);
  });

  router.get(GITHUB_CALLBACK_PATH, noStore, (req, res, next) => {
    if (typeof req.query.code !== 'string' && typeof req.query.error !== 'string') {
      // Without a code passport would start a new round trip instead of refusing.
      return refuse(req, res, 400, 'missing OAuth code: start again from /auth/github');
    }
    const handler = passport.authenticate(
      'github',
      { session: false },
      (err: Error | null, user: SessionPrincipal | false | undefined, info: { message?: string } | undefined) => {
        if (err) {
          ctx.logger.warn({ ip: req.ip, err: err.message }, 'GitHub sign-in failed');
          return refuse(req, res, 502, 'GitHub sign-in failed: try again later');
        }
        if (!user) {
          const message = info?.message ?? 'GitHub sign-in refused';
          ctx.logger.info({ ip: req.ip, reason: message }, 'GitHub sign-in refused');
          return refuse(req, res, 403, message);
        }
        const target = safeNext(req.session.loginNext);
        establishSession(req, user, ctx.clock.nowMs()).then(() => res.redirect(303, target), next);
      },
    ) as RequestHandler;
    handler(req, res, next);
  });
}

/** A fresh session id and CSRF token for the new principal: whatever id existed before the login is discarded. */
async function establishSession(req: Request, principal: SessionPrincipal, nowMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err as Error) : resolve())));
  req.session.principal = { kind: principal.kind, name: principal.name, role: principal.role };
  req.session.signedInAtMs = nowMs;
  req.session.csrfToken = randomBytes(32).toString('base64url');
  await new Promise<void>((resolve, reject) => req.session.save((err) => (err ? reject(err as Error) : resolve())));
}
