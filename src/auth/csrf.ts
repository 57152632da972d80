import { randomBytes } from 'node:crypto';
import type { Request } from 'express';
import { constantTimeEqual } from '../config/secret.js';

/**
 * CSRF defence for cookie sessions: a synchronizer token kept in the session (sent back as the
 * `X-CSRF-Token` header or a `_csrf` form field) plus a same-origin check of Origin, or Referer
 * when a browser sends no Origin. Requests with credentials in the Authorization header are not
 * ambient (a browser never adds them by itself), so they need neither.
 */

export const CSRF_HEADER = 'x-csrf-token';
export const CSRF_FIELD = '_csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
export const isUnsafeMethod = (method: string): boolean => !SAFE_METHODS.has(method.toUpperCase());

/** The session's token, created on first use (the session is then saved). */
export function ensureCsrfToken(req: Request): string {
  if (!req.session) throw new Error('csrfToken needs the auth session middleware in front of this route');
  req.session.csrfToken ??= randomBytes(32).toString('base64url');
  return req.session.csrfToken;
}

/** This service's origin: from public_url when known, else from the request's own Host (which a cross-site page cannot choose). */
export function expectedOrigin(req: Request, publicOrigin: string | undefined): string {
  return publicOrigin ?? `${req.protocol}://${req.get('host') ?? ''}`;
}

/** Why a request fails the Origin/Referer check, or undefined when it passes. Neither header: passes (the token still decides). */
export function crossOriginProblem(req: Request, origin: string): string | undefined {
  const sent = req.get('origin');
  if (sent !== undefined) return sent === origin ? undefined : 'cross-origin request refused';
  const referer = req.get('referer');
  if (referer !== undefined) {
    try {
      if (new URL(referer).origin === origin) return undefined;
    } catch {
      // An unparsable Referer is treated as foreign.
    }
    return 'cross-origin request refused';
  }
  return undefined;
}

export function csrfProblem(req: Request, origin: string): string | undefined {
  const cross = crossOriginProblem(req, origin);
  if (cross) return cross;
  const expected = req.session?.csrfToken;
  const body: unknown = req.body;
  const fromBody = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[CSRF_FIELD] : undefined;
  const sent = req.get(CSRF_HEADER) ?? (typeof fromBody === 'string' ? fromBody : undefined);
  if (!sent) return 'missing CSRF token (send the X-CSRF-Token header or a _csrf form field)';
  if (!expected || !constantTimeEqual(expected, sent)) return 'invalid CSRF token';
  return undefined;
}
