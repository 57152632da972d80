import { z } from 'zod';
import { parseScryptHash } from '../auth/hashing.js';
import { ROLES } from '../auth/roles.js';
import { oidcProviderSchema } from './oidc-schema.js';
import { Secret } from './secret.js';

/**
 * The `auth:` section. Every credential is either a hash or a Secret, so the parsed config can be
 * printed or logged without revealing anything. With nothing configured, control endpoints refuse
 * to run (fail closed) unless `insecure_no_auth` says otherwise.
 */

const role = z.enum(ROLES);

/* eslint-disable no-control-regex -- rejecting control characters is the point */
const printable = /^[^\s\x00-\x1f\x7f]+$/;
// Basic auth splits user and password at the first ":".
const usernameChars = /^[^:\s\x00-\x1f\x7f]+$/;
/* eslint-enable no-control-regex */
const secret = (minLength: number) =>
  z
    .string()
    .min(minLength)
    .transform((s) => new Secret(s));

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL without credentials');

const passwordHash = z
  .string()
  .superRefine((s, ctx) => {
    const parsed = parseScryptHash(s);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.error });
  })
  .transform((s) => new Secret(s));

const userObject = z
  .object({
    username: z.string().min(1).max(128).regex(usernameChars, 'usernames may not contain ":", spaces or control characters'),
    password_hash: passwordHash.optional(),
    /** Flower's --basic-auth takes plaintext; accepted only when marked as such, with a warning at start. */
    password: z
      .object(
        { plain: secret(1) },
        {
          error: (iss) =>
            iss.code === 'invalid_type'
              ? 'a plaintext password must be written as password: { plain: "..." } (better: password_hash)'
              : undefined,
        },
      )
      .strict()
      .optional(),
    role,
  })
  .strict()
  .refine((u) => (u.password_hash === undefined) !== (u.password === undefined), {
    message: 'give exactly one of password_hash or password: { plain: ... }',
    path: ['password_hash'],
  });

/**
 * The one-line form of a user, for a flag or an environment variable where YAML cannot go:
 * `name:role:scrypt$N$r$p$salt$hash` (what `npm run hash-secret -- user <name> <role>` prints),
 * several separated by ",". Only a hash is accepted here: a plaintext password on a command
 * line is seen by `ps` and shell history. The value is never repeated in an error, in case a
 * password was typed where the hash belongs.
 */
// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const USER_LINE = /^([^:\s\x00-\x1f\x7f]+):([a-z]+):(.+)$/;
export const USER_LINE_FORMAT = 'name:role:scrypt-hash (make one with: npm run hash-secret -- user <name> <role>)';
function parseUserLine(value: unknown, ctx: z.RefinementCtx): unknown {
  if (typeof value !== 'string') return value;
  const m = USER_LINE.exec(value.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `not a user: write ${USER_LINE_FORMAT}` });
    return z.NEVER;
  }
  const [, username, roleName, hash] = m;
  if (!(ROLES as readonly string[]).includes(roleName!)) {
    ctx.addIssue({ code: 'custom', message: `user ${username}: the role must be one of ${ROLES.join(', ')}` });
    return z.NEVER;
  }
  if (!parseScryptHash(hash!).ok) {
    ctx.addIssue({ code: 'custom', message: `user ${username}: a scrypt hash must follow the role, not a password: ${USER_LINE_FORMAT}` });
    return z.NEVER;
  }
  return { username, password_hash: hash, role: roleName };
}

/** A user as a mapping (YAML) or as one line (flags, environment variables, YAML too). */
const user = z.preprocess(parseUserLine, userObject);

const token = z
  .object({
    name: z.string().min(1).max(128).regex(printable, 'token names may not contain spaces or control characters'),
    /** Hex SHA-256 of the token; the token itself is never stored. */
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be the hex SHA-256 of the token (node scripts/hash-secret.mjs token)')
      .transform((s) => s.toLowerCase()),
    role,
  })
  .strict();

const githubLogin = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const githubAllow = z
  .object({
    /** A GitHub login (case-insensitive). A renamed login can be claimed by someone else: prefer user_id. */
    user: z.string().regex(githubLogin, 'not a GitHub login').optional(),
    /** A GitHub account's numeric id (GET https://api.github.com/users/<login> → id), which never changes hands. */
    user_id: z.number().int().positive().optional(),
    /** Active members of this organisation, checked with GitHub's API. */
    org: z.string().regex(githubLogin, 'not a GitHub organisation name').optional(),
    /** Active members of this team, written "org/team-slug". */
    team: z
      .string()
      .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/[A-Za-z0-9_.-]{1,100}$/, 'must be "org/team-slug"')
      .optional(),
    role,
  })
  .strict()
  .refine(
    (e) => [e.user, e.user_id, e.org, e.team].filter((v) => v !== undefined).length === 1,
    'each allow entry names exactly one of user, user_id, org or team',
  );

const github = z
  .object({
    client_id: z.string().min(1).max(256).describe("The GitHub OAuth app's client id."),
    client_secret: secret(1).describe("The GitHub OAuth app's client secret."),
    allow: z
      .array(githubAllow)
      .min(1, 'list at least one user, org or team')
      .max(1000)
      .describe(
        'Who may sign in and with which role: entries of user_id, user, org or team (org/slug), each with a role; the highest role of all matching entries wins. YAML only.',
      ),
    // Overridable for GitHub Enterprise Server (and for tests).
    authorize_url: httpUrl
      .default('https://github.com/login/oauth/authorize')
      .describe("GitHub's authorization endpoint (GitHub Enterprise Server: your host's)."),
    token_url: httpUrl.default('https://github.com/login/oauth/access_token').describe("GitHub's token endpoint."),
    user_profile_url: httpUrl.default('https://api.github.com/user').describe("GitHub's user profile endpoint."),
    api_url: httpUrl.default('https://api.github.com').describe("GitHub's API, for organisation and team membership."),
    timeout_seconds: z.number().min(0.1).max(60).default(10).describe('Upper bound on one request to GitHub.'),
  })
  .strict();

export const authSchema = z
  .object({
    insecure_no_auth: z
      .boolean()
      .default(false)
      .describe(
        'With no users, tokens, GitHub or OpenID providers: treat every request as admin, with a loud warning. For local experiments only.',
      ),
    protect_metrics: z
      .boolean()
      .default(false)
      .describe('Require the viewer role on /metrics (Prometheus sends basic auth or a bearer token).'),
    public_url: httpUrl
      .optional()
      .describe(
        'The external URL people reach this service at (with url_prefix, if any): GitHub and OpenID providers redirect back under it, and it is the one origin browsers may post from.',
      ),
    users: z
      .array(user)
      .max(1000)
      .default([])
      .describe(
        'People (the sign-in form) and basic-auth scripts: {username, password_hash, role} entries, or lines name:role:scrypt-hash, several separated by "," (npm run hash-secret -- user <name> <role> prints one). Roles: viewer, operator, admin.',
      ),
    tokens: z
      .array(token)
      .max(1000)
      .default([])
      .describe(
        'API tokens for scripts, sent as Authorization: Bearer: {name, sha256, role} entries (node scripts/hash-secret.mjs token makes one). YAML only.',
      ),
    github: github
      .optional()
      .describe('Sign-in with GitHub (OAuth): client id and secret, and who may sign in with which role. Needs auth.public_url.'),
    oidc: z
      .array(oidcProviderSchema)
      .max(16)
      .default([])
      .describe(
        'OpenID Connect providers (Google, Okta, GitLab, Entra ID, Keycloak, ...), each with its own button: see the README, OpenID Connect. YAML only.',
      ),
    session: z
      .object({
        secret: secret(32)
          .optional()
          .describe('Signs session cookies. Unset: random per start (sessions live in memory, so a restart ends them anyway).'),
        cookie_name: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, "_", "." and "-" only')
          .default('celery_autopilot_session')
          .describe('Name of the session cookie.'),
        cookie_secure: z
          .enum(['auto', 'always', 'never'])
          .default('auto')
          .describe(
            'auto: Secure when public_url is https:// or the request came over TLS; always: Secure, and the name gets the __Host- prefix; never.',
          ),
        max_age_seconds: z
          .number()
          .int()
          .min(60)
          .max(30 * 86_400)
          .default(8 * 3600)
          .describe('Idle lifetime: each request moves the expiry this far ahead.'),
        absolute_lifetime_seconds: z
          .number()
          .int()
          .min(60)
          .max(30 * 86_400)
          .optional()
          .describe(
            'Sessions end this long after sign-in however active they are (GitHub membership and OpenID claims are then judged again). Unset: max_age_seconds.',
          ),
        max_sessions: z
          .number()
          .int()
          .min(10)
          .max(1_000_000)
          .default(10_000)
          .describe('Sessions kept in memory; the oldest are dropped beyond this.'),
      })
      .strict()
      .prefault({})
      .describe('Browser sessions (the console): cookie, lifetimes and how many are kept.'),
    login_rate_limit: z
      .object({
        max_failures: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(10)
          .describe('Failed logins a client may have within window_seconds before it is answered 429.'),
        window_seconds: z.number().min(1).max(86_400).default(300).describe('The window failed logins are counted over.'),
      })
      .strict()
      .prefault({})
      .describe('Failed logins (basic auth, bearer tokens, the login form) per client IP and per username.'),
  })
  .strict()
  .superRefine((a, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const configured = a.users.length > 0 || a.tokens.length > 0 || a.github !== undefined || a.oidc.length > 0;
    if (a.insecure_no_auth && configured) issue(['insecure_no_auth'], 'cannot be combined with users, tokens, github or oidc');
    if (a.protect_metrics && a.users.length === 0 && a.tokens.length === 0) {
      issue(['protect_metrics'], 'needs auth.users or auth.tokens (Prometheus authenticates with basic auth or a bearer token)');
    }
    if (a.github && !a.public_url)
      issue(['public_url'], 'auth.github needs auth.public_url (GitHub redirects back to <public_url>/auth/github/callback)');
    if (a.oidc.length > 0 && !a.public_url)
      issue(['public_url'], 'auth.oidc needs auth.public_url (providers redirect back to <public_url>/auth/oidc/<id>/callback)');
    const dup = (values: string[], path: string, describe: (v: string) => string) => {
      const seen = new Set<string>();
      values.forEach((v, i) => {
        if (seen.has(v)) issue([path, i], describe(v));
        seen.add(v);
      });
    };
    dup(
      a.users.map((u) => u.username),
      'users',
      (v) => `duplicate username "${v}"`,
    );
    dup(
      a.tokens.map((t) => t.name),
      'tokens',
      (v) => `duplicate token name "${v}"`,
    );
    dup(
      a.oidc.map((p) => p.id),
      'oidc',
      (v) => `duplicate provider id "${v}"`,
    );
    dup(
      a.tokens.map((t) => t.sha256),
      'tokens',
      () => 'the same token hash appears twice',
    );
  });

export type AuthConfig = z.output<typeof authSchema>;
export type AuthConfigInput = z.input<typeof authSchema>;
