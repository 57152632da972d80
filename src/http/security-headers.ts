import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * Headers on every answer, through helmet (a well-kept library for exactly this, rather than a
 * list of our own to keep current): a CSP that allows only this origin's scripts and styles and
 * no framing, X-Frame-Options, nosniff, Referrer-Policy same-origin (the CSRF check may read
 * Referer, so same-origin requests keep it), and Cache-Control: no-store, since pages and API
 * answers show live cluster state and who is signed in. Inline script or style needs the
 * per-response nonce in `res.locals.cspNonce`; 'unsafe-inline' is never allowed. HSTS only
 * when public_url is https:// or the service serves TLS itself (over plain HTTP it means nothing
 * and would only mislead).
 */
export function securityHeaders(options: { https: boolean }): RequestHandler[] {
  const nonce = (_req: IncomingMessage, res: ServerResponse) =>
    `'nonce-${(res as ServerResponse & { locals: { cspNonce: string } }).locals.cspNonce}'`;
  return [
    (_req, res, next) => {
      res.locals.cspNonce = randomBytes(16).toString('base64');
      res.set('Cache-Control', 'no-store');
      next();
    },
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'", nonce],
          styleSrc: ["'self'", nonce],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'none'"],
          objectSrc: ["'none'"],
        },
      },
      frameguard: { action: 'deny' },
      referrerPolicy: { policy: 'same-origin' },
      strictTransportSecurity: options.https ? { maxAge: 180 * 86_400, includeSubDomains: false } : false,
    }),
  ];
}
