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

/**
 * This service's origins: public_url's when set; otherwise the loopback names and the address
 * this connection actually reached, on its port. Never the Host header: a DNS-rebinding page
 * chooses it (its own name resolving to us), so an origin derived from Host is the attacker's.
 * Behind a reverse proxy, set auth.public_url.
 */
export function expectedOrigins(req: Request, publicOrigin: string | undefined): readonly string[] {
  if (publicOrigin) return [publicOrigin];
  const proto = req.protocol;
  const port = req.socket.localPort;
  const suffix = port === undefined || port === (proto === 'https' ? 443 : 80) ? '' : `:${port}`;
  const hosts = ['localhost', '127.0.0.1', '[::1]'];
  const local = localAddress(req);
  if (local) hosts.push(local.includes(':') ? `[${local}]` : local);
  return hosts.map((h) => `${proto}://${h}${suffix}`);
}

const localAddress = (req: Request): string | undefined => req.socket.localAddress?.replace(/^::ffff:/, '');

/**
 * In insecure mode (everyone is admin) only requests addressed to a loopback name or address,
 * the address this connection reached, or public_url's host are served: a DNS-rebinding page
 * sends its own name as Host, and is refused here.
 */
export function insecureHostProblem(req: Request, publicOrigin: string | undefined): string | undefined {
  const host = req.get('host')?.toLowerCase();
  if (!host) return 'refused: no Host header';
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname;
  } catch {
    return 'refused: unparsable Host header';
  }
  if (publicOrigin && new URL(publicOrigin).host === host) return undefined;
  const bare = hostname.replace(/^\[|\]$/g, '');
  if (hostname === 'localhost' || /^127(\.\d{1,3}){3}$/.test(hostname) || bare === '::1' || bare === localAddress(req)) return undefined;
  return `refused: Host ${hostname} is not a loopback name; without authentication only loopback names are served (set auth.public_url to name this one)`;
}

/** Why a request fails the Origin/Referer check, or undefined when it passes. Neither header: passes (the token still decides). */
export function crossOriginProblem(req: Request, origins: readonly string[]): string | undefined {
  const sent = req.get('origin');
  if (sent !== undefined) return origins.includes(sent) ? undefined : 'cross-origin request refused';
  const referer = req.get('referer');
  if (referer !== undefined) {
    try {
      if (origins.includes(new URL(referer).origin)) return undefined;
    } catch {
      // An unparsable Referer is treated as foreign.
    }
    return 'cross-origin request refused';
  }
  return undefined;
}

export function csrfProblem(req: Request, origins: readonly string[]): string | undefined {
  const cross = crossOriginProblem(req, origins);
  if (cross) return cross;
  const expected = req.session?.csrfToken;
  const body: unknown = req.body;
  const fromBody = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[CSRF_FIELD] : undefined;
  const sent = req.get(CSRF_HEADER) ?? (typeof fromBody === 'string' ? fromBody : undefined);
  if (!sent) return 'missing CSRF token (send the X-CSRF-Token header or a _csrf form field)';
  if (!expected || !constantTimeEqual(expected, sent)) return 'invalid CSRF token';
  return undefined;
}
