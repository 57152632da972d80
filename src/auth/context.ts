import type { Request, Response } from 'express';
import type { Clock } from '../clock.js';
import type { AuthConfig } from '../config/auth-schema.js';
import type { Logger } from '../log.js';
import type { CredentialVerifier } from './credentials.js';
import type { PasswordGate } from './password-gate.js';
import { escapeHtml } from '../html.js';

/** Why header credentials did not produce a principal; requireRole turns it into the answer. */
export type AuthProblem = { status: 401; reason: string } | { status: 429; retryAfterSeconds: number };

/** What the middleware and routes share; built once by createAuth. */
export interface AuthContext {
  readonly config: AuthConfig;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly verifier: CredentialVerifier;
  readonly gate: PasswordGate;
  /** Sessions end this long after sign-in, however active (auth.session.absolute_lifetime_seconds). */
  readonly absoluteLifetimeMs: number;
  /** Origin of auth.public_url, when set: the only origin unsafe cookie requests may come from. */
  readonly publicOrigin: string | undefined;
  /** Any users, tokens, GitHub or OpenID providers: without them (and without insecure mode) everything is refused. */
  readonly configured: boolean;
  readonly insecure: boolean;
  /** Which sign-in methods the login page offers (and whether there are sessions at all). */
  readonly interactive: { readonly password: boolean; readonly github: boolean; readonly oidc: boolean };
  /** The OpenID Connect providers' buttons, in config order; `available` once discovery worked. */
  readonly oidcButtons: ReadonlyArray<OidcButton>;
}

export interface OidcButton {
  readonly id: string;
  readonly name: string;
  readonly available: boolean;
}

/** Whether the login page (and so cookie sessions) exists at all. */
export const hasInteractiveSignIn = (ctx: AuthContext): boolean =>
  ctx.interactive.password || ctx.interactive.github || ctx.interactive.oidc;

export const NOT_CONFIGURED =
  'authentication is not configured: add auth.users, auth.tokens, auth.github or auth.oidc to the config ' +
  '(or set auth.insecure_no_auth: true to run without authentication, for local experiments only)';

/**
 * A browser navigating (rather than curl, a script, Prometheus or a page's own fetch): it asks for
 * HTML first, and gets pages and a redirect to /login rather than JSON and Basic challenges.
 * (Sec-Fetch-* headers cannot tell: Node's fetch sends them too.)
 */
export function isBrowser(req: Request): boolean {
  return req.accepts(['json', 'html']) === 'html';
}

/** An error answer: a short page for browsers, JSON for everything else. */
export function refuse(req: Request, res: Response, status: number, message: string): void {
  if (isBrowser(req)) {
    res
      .status(status)
      .type('html')
      .send(
        `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>celery-autopilot</title></head>\n<body><p>${escapeHtml(message)}</p><p><a href="${escapeHtml(typeof res.locals.urlPrefix === 'string' ? (res.locals.urlPrefix as string) : '')}/login">Sign in</a></p></body></html>\n`,
      );
  } else {
    res.status(status).json({ error: message });
  }
}
