import type { Request, RequestHandler, Response, Router } from 'express';
import { constantTimeEqual } from '../../config/secret.js';
import { refuse, type AuthContext } from '../context.js';
import type { SessionPrincipal } from '../principal.js';
import { safeNext } from '../redirect.js';
import { SignInError, type OidcProvider, type PendingSignIn } from './provider.js';

/** A sign-in must come back within this: the state, nonce and PKCE verifier expire with it. */
export const OIDC_PENDING_TTL_MS = 10 * 60_000;

/** What a refused person can do about it (Flower says much the same). */
export const ASK_FOR_ACCESS = 'Use another account, or ask an administrator for access.';

export interface OidcRouteDeps {
  readonly ctx: AuthContext;
  readonly providers: ReadonlyMap<string, OidcProvider>;
  readonly noStore: RequestHandler;
  renderLogin(req: Request, res: Response, status: number, next: string, message?: string): void;
  establishSession(req: Request, principal: SessionPrincipal, nowMs: number): Promise<void>;
}

/**
 * GET /auth/oidc/<id> (off to the provider) and GET /auth/oidc/<id>/callback (back from it).
 * The state, nonce and PKCE verifier live in the visitor's session and are taken out at the
 * first callback, so each is used once. Every outcome other than success is the login page with
 * the reason, and one log line.
 */
export function oidcRoutes(router: Router, d: OidcRouteDeps): void {
  const { ctx } = d;

  router.get('/auth/oidc/:id', d.noStore, async (req, res, next) => {
    const provider = d.providers.get(String(req.params.id));
    if (!provider) return refuse(req, res, 404, 'no such sign-in provider');
    const target = safeNext(req.query.next);
    try {
      const { url, pending } = await provider.begin(target, ctx.clock.nowMs());
      req.session.oidcPending = pending;
      res.redirect(302, url.href);
    } catch (e) {
      if (!(e instanceof SignInError)) return next(e);
      ctx.logger.info({ ip: req.ip, provider: provider.id, ...e.log }, 'OpenID sign-in not started');
      d.renderLogin(req, res, e.status, target, e.message);
    }
  });

  router.get('/auth/oidc/:id/callback', d.noStore, async (req, res, next) => {
    const provider = d.providers.get(String(req.params.id));
    if (!provider) return refuse(req, res, 404, 'no such sign-in provider');
    const pending = req.session.oidcPending;
    delete req.session.oidcPending;
    const target = pending?.next ?? '/';
    const fail = (status: number, message: string, log: Readonly<Record<string, unknown>>) => {
      const line = { ip: req.ip, provider: provider.id, ...log };
      if (status >= 500) ctx.logger.warn(line, 'OpenID sign-in failed');
      else ctx.logger.info(line, 'OpenID sign-in refused');
      d.renderLogin(req, res, status, target, message);
    };
    const query = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?')) : '';
    const problem = pendingProblem(provider, pending, req.query, ctx.clock.nowMs());
    if (problem) return fail(problem.status, problem.message, problem.log);
    try {
      const claims = await provider.complete(query, pending!);
      const decision = provider.policy.decide(claims);
      if (!decision.allowed) return fail(403, `${decision.reason}. ${ASK_FOR_ACCESS}`, decision.log);
      await d.establishSession(req, { kind: 'oidc', name: decision.name, role: decision.role }, ctx.clock.nowMs());
      ctx.logger.info({ ip: req.ip, provider: provider.id, user: decision.name, role: decision.role }, 'OpenID sign-in allowed');
      res.redirect(303, target);
    } catch (e) {
      if (!(e instanceof SignInError)) return next(e);
      fail(e.status, e.message, e.log);
    }
  });
}

/** What is wrong with the round trip before anything is sent to the provider: no sign-in started here, expired, or a state that is not ours. */
function pendingProblem(
  provider: OidcProvider,
  pending: PendingSignIn | undefined,
  query: Request['query'],
  nowMs: number,
): { status: number; message: string; log: Record<string, unknown> } | undefined {
  const again = `start again from the sign-in page.`;
  if (!pending || pending.provider !== provider.id) {
    return {
      status: 403,
      message: `This sign-in with ${provider.name} was not started in this browser, or was already completed: ${again}`,
      log: { why: 'no_pending_sign_in' },
    };
  }
  if (nowMs - pending.issuedAtMs > OIDC_PENDING_TTL_MS) {
    return { status: 403, message: `This sign-in with ${provider.name} took more than 10 minutes: ${again}`, log: { why: 'expired' } };
  }
  const state = query.state;
  if (typeof state !== 'string' || !constantTimeEqual(pending.state, state)) {
    return {
      status: 403,
      message: `The answer from ${provider.name} does not belong to this browser's sign-in (state): ${again}`,
      log: { why: 'state_mismatch' },
    };
  }
  if (typeof query.code !== 'string' && typeof query.error !== 'string') {
    return { status: 400, message: `The answer from ${provider.name} carries no code: ${again}`, log: { why: 'no_code' } };
  }
  return undefined;
}
