import { z } from 'zod';
import { ROLES } from '../auth/roles.js';
import { Secret } from './secret.js';

/**
 * One entry of `auth.oidc`: an OpenID Connect provider people sign in with, and the rules that
 * decide who gets in with which role. The provider's endpoints come from discovery at
 * `issuer_url`; the client secret is a Secret (inline or read from `client_secret_file`).
 */

const role = z.enum(ROLES);

/** RFC 5321's limit for a forward path: longer addresses are refused before any pattern runs. */
export const MAX_EMAIL_LENGTH = 254;

/* eslint-disable no-control-regex -- rejecting control characters is the point */
const claimPath = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\s\x00-\x1f\x7f]+$/, 'a claim name or dotted path (e.g. groups, realm_access.roles) without spaces');
const claimValue = z
  .string()
  .min(1)
  .max(512)
  .regex(/^[^\x00-\x1f\x7f]+$/, 'no control characters');
/* eslint-enable no-control-regex */

const httpsUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' && u.username === '' && u.password === '' && u.search === '' && u.hash === '';
  } catch {
    return false;
  }
}, 'must be an https:// URL without credentials, query or fragment (the issuer identifier)');

/** The whole address must match: anchored here, as Python's re.fullmatch anchors Flower's --auth. */
export function compileEmailPattern(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'i');
}

const emailPattern = z
  .string()
  .min(1)
  .max(1024)
  .superRefine((s, ctx) => {
    try {
      compileEmailPattern(s);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(e as Error).message}` });
    }
  });

// Parameters the sign-in itself sets: a config value must never replace them.
const RESERVED_PARAMS = new Set([
  'client_id',
  'redirect_uri',
  'response_type',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
]);

export const oidcProviderSchema = z
  .object({
    /** In URLs (/auth/oidc/<id>, the callback) and the audit log: lower-case letters, digits and "-". */
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lower-case letters, digits and "-", at most 32'),
    /** What the login page's button says: "Sign in with <name>". */
    name: z.string().min(1).max(64),
    issuer_url: httpsUrl,
    client_id: z.string().min(1).max(512),
    client_secret: z
      .string()
      .min(1)
      .transform((s) => new Secret(s))
      .optional(),
    /** A file holding the client secret (trailing line breaks dropped), read at start and by --check-config. */
    client_secret_file: z.string().min(1).optional(),
    /** How the secret is sent to the token endpoint; OpenID Connect's default is client_secret_basic. */
    token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
    scopes: z
      .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/, 'not a valid OAuth scope'))
      .min(1)
      .max(32)
      .default(['openid', 'email', 'profile'])
      .refine((s) => s.includes('openid'), 'must include openid'),
    /** Extra authorization request parameters, e.g. Google's { hd: example.com } or { prompt: select_account }. */
    authorization_params: z
      .record(z.string().regex(/^[a-z_]{1,64}$/, 'a parameter name'), z.string().max(512))
      .default({})
      .refine(
        (p) => Object.keys(p).every((k) => !RESERVED_PARAMS.has(k)),
        'state, nonce, PKCE, scope, redirect_uri, client_id and response_type are set by the sign-in itself',
      ),
    /** PEM bundle of the CA that signed the issuer's certificate; unset: the system's CAs. */
    ca_file: z.string().min(1).optional(),
    /** Each request to the provider (discovery, keys, token, userinfo) gives up after this. */
    timeout_seconds: z.number().min(0.5).max(60).default(10),
    /** Add the userinfo endpoint's claims to the ID token's (groups often come only from there). */
    userinfo: z.boolean().default(true),
    /** Refuse anyone whose e-mail address the provider has not verified (email_verified: true). */
    require_verified_email: z.boolean().default(true),
    /** The claim that names the person in the audit log and on pages. */
    name_claim: claimPath.default('email'),
    /** Claims that must have exactly this value, e.g. Google's { hd: example.com }. */
    require_claims: z.record(claimPath, claimValue).default({}),
    /** Flower's --auth as a list: these addresses only (case-insensitive). */
    allow_emails: z
      .array(
        z
          .string()
          .max(MAX_EMAIL_LENGTH)
          .regex(/^[^\s@]+@[^\s@]+$/, 'not an e-mail address'),
      )
      .max(10_000)
      .default([]),
    /** Flower's --auth as a regular expression: it must match the whole address (case-insensitive). */
    allow_email_regex: emailPattern.optional(),
    /** A claim (dotted paths reach nested ones) whose values give roles; the highest match wins. */
    roles: z
      .object({
        claim: z.union([claimPath, z.array(claimPath).min(1).max(10)]),
        admin: z.array(claimValue).max(1000).default([]),
        operator: z.array(claimValue).max(1000).default([]),
        viewer: z.array(claimValue).max(1000).default([]),
      })
      .strict()
      .optional(),
    /** The role of someone let in whose claims map to no role; unset: they are refused. Needs an allow-list or require_claims. */
    default_role: role.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if ((p.client_secret === undefined) === (p.client_secret_file === undefined))
      issue('client_secret', 'give exactly one of client_secret or client_secret_file');
    const byEmail = p.allow_emails.length > 0 || p.allow_email_regex !== undefined;
    if (!p.require_verified_email && byEmail)
      issue(
        'require_verified_email',
        'an allow-list of e-mail addresses needs verified addresses: keep require_verified_email on, or decide by roles',
      );
    if (p.roles && p.roles.admin.length + p.roles.operator.length + p.roles.viewer.length === 0)
      issue('roles', 'list at least one claim value under admin, operator or viewer');
    if (!p.roles && p.default_role === undefined) issue('default_role', 'without roles, default_role is the role everyone let in gets');
    if (p.default_role !== undefined && !byEmail && Object.keys(p.require_claims).length === 0)
      issue(
        'default_role',
        `would give anyone with an account at ${p.issuer_url} a role: limit who with allow_emails, allow_email_regex or require_claims (allow_email_regex: ".*" if that is really meant)`,
      );
  });

export type OidcProviderConfig = z.output<typeof oidcProviderSchema>;
