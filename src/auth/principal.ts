import type { Request } from 'express';
import type { PendingSignIn } from './oidc/provider.js';
import type { Role } from './roles.js';

export { ROLES, compareRolesDescending, roleAtLeast, type Role } from './roles.js';

export type PrincipalKind = 'basic' | 'token' | 'github' | 'oidc' | 'anonymous-insecure';

/** Who is calling. `via` tells how the credentials arrived, which decides whether CSRF applies. */
export interface Principal {
  readonly kind: PrincipalKind;
  /** Username, token name, GitHub login, "<provider id>/<name claim>" for OpenID Connect, or "anonymous". Never a secret. */
  readonly name: string;
  readonly role: Role;
  readonly via: 'header' | 'session' | 'none';
}

/** What a logged-in session remembers (the session store holds no credential). */
export type SessionPrincipal = Pick<Principal, 'kind' | 'name' | 'role'>;

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by `authenticate`; undefined when the request carried no valid credentials. */
    principal?: Principal;
  }
}

declare module 'express-session' {
  interface SessionData {
    principal: SessionPrincipal;
    csrfToken: string;
    /** Where to go after an OAuth round trip (already checked by safeNext). */
    loginNext: string;
    /** OAuth `state` for the GitHub round trip in progress, and when it was issued. */
    githubState: { value: string; issuedAtMs: number };
    /** The OpenID Connect sign-in in progress: state, nonce and PKCE verifier, used once. */
    oidcPending: PendingSignIn;
    /** When the principal signed in (clock ms): the session's absolute lifetime counts from here. */
    signedInAtMs: number;
  }
}

/** Who did it, for the audit log: never a credential. */
export interface AuditActor {
  /** "kind:name", e.g. "github:octocat", "token:autoscaler", "oidc:okta/alice@example.com"; "unauthenticated" without a principal. */
  actor: string;
  kind: PrincipalKind | 'none';
  name: string | null;
  role: Role | null;
  via: Principal['via'];
  /** req.ip: honours the app's `trust proxy` setting. */
  ip: string | null;
}

export function describePrincipal(req: Request): AuditActor {
  const p = req.principal;
  const ip = req.ip ?? req.socket.remoteAddress ?? null;
  if (!p) return { actor: 'unauthenticated', kind: 'none', name: null, role: null, via: 'none', ip };
  return { actor: `${p.kind}:${p.name}`, kind: p.kind, name: p.name, role: p.role, via: p.via, ip };
}
