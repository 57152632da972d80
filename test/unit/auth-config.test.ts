import { readFileSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import { parseScryptHash, verifyPassword } from '../../src/auth/hashing.js';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

const HASH = 'scrypt$32768$8$1$ozzj1x6bXAzAJ84V_CcCxA$VuvW-hIoC8LWqbbZDVOnWqIJBGfqaLRIuFh_U2q1cRI';
const TOKEN_SHA = '5f5d516db172907cd4157393a4ef79964f5cdbdeedd9cd7b344110fbe36b7fc2';

/** The example in the auth report and docs: every key, as an operator would write it. */
const EXAMPLE = `
auth:
  public_url: https://autopilot.example.com
  protect_metrics: true
  users:
    - { username: alice, password_hash: "${HASH}", role: admin }
    - { username: flower, password: { plain: "migrated-from-flower" }, role: viewer }
  tokens:
    - { name: autoscaler, sha256: ${TOKEN_SHA}, role: operator }
  github:
    client_id: Iv1.0123456789abcdef
    client_secret: github-client-secret-value
    allow:
      - { user: octocat, role: admin }
      - { team: acme/sre, role: operator }
      - { org: acme, role: viewer }
  session:
    secret: a-session-secret-of-at-least-32-characters
  login_rate_limit: { max_failures: 10, window_seconds: 300 }
`;

function load(file: string, env: Record<string, string> = {}) {
  return loadConfig({ argv: ['--config', 'c.yaml'], env, readFile: () => file }).config!;
}

function problems(file: string, env: Record<string, string> = {}): string[] {
  try {
    load(file, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('auth config', () => {
  it('defaults: nothing configured (fail closed), metrics open, 10 failures per 5 min', () => {
    const { auth } = load('');
    expect(auth).toMatchObject({
      insecure_no_auth: false,
      protect_metrics: false,
      users: [],
      tokens: [],
      login_rate_limit: { max_failures: 10, window_seconds: 300 },
    });
    expect(auth.session).toMatchObject({ cookie_name: 'celery_autopilot_session', cookie_secure: 'auto', max_age_seconds: 28_800 });
    expect(auth.github).toBeUndefined();
  });

  it('parses the documented example, with every credential a Secret and GitHub URLs defaulted', () => {
    const { auth } = load(EXAMPLE);
    expect(auth.users[0]!.password_hash).toBeInstanceOf(Secret);
    expect(auth.users[1]!.password!.plain.reveal()).toBe('migrated-from-flower');
    expect(auth.tokens[0]).toEqual({ name: 'autoscaler', sha256: TOKEN_SHA, role: 'operator' });
    expect(auth.github!.client_secret.reveal()).toBe('github-client-secret-value');
    expect(auth.github!.authorize_url).toBe('https://github.com/login/oauth/authorize');
    expect(auth.github!.api_url).toBe('https://api.github.com');
    expect(Object.isFrozen(auth.github!.allow)).toBe(true);
  });

  it('never prints a secret or a password hash', () => {
    const config = load(EXAMPLE);
    const rendered = [JSON.stringify(config), inspect(config, { depth: 20 })].join('\n');
    for (const secret of ['migrated-from-flower', 'github-client-secret-value', 'a-session-secret-of-at-least-32-characters', HASH]) {
      expect(rendered).not.toContain(secret);
    }
  });

  it('secrets can come from the environment', () => {
    const { auth } = load('auth: { github: { client_id: x, allow: [{ org: acme, role: viewer }] }, public_url: "https://a.example" }', {
      CELERY_AUTOPILOT_AUTH_GITHUB_CLIENT_SECRET: 'from-env',
      CELERY_AUTOPILOT_AUTH_SESSION_SECRET: 'x'.repeat(32),
    });
    expect(auth.github!.client_secret.reveal()).toBe('from-env');
    expect(auth.session.secret!.reveal()).toBe('x'.repeat(32));
  });

  it.each([
    [
      'a bare plaintext password',
      'auth: { users: [{ username: a, password: hunter2, role: admin }] }',
      'auth.users.0.password: a plaintext password must be written as password: { plain: "..." } (better: password_hash)',
    ],
    [
      'no password at all',
      'auth: { users: [{ username: a, role: admin }] }',
      'auth.users.0.password_hash: give exactly one of password_hash or password: { plain: ... }',
    ],
    [
      'a hash and a plaintext password',
      `auth: { users: [{ username: a, password_hash: "${HASH}", password: { plain: x }, role: admin }] }`,
      'auth.users.0.password_hash: give exactly one of password_hash or password: { plain: ... }',
    ],
    [
      'a hash in another format',
      'auth: { users: [{ username: a, password_hash: "$2b$12$abc", role: admin }] }',
      'auth.users.0.password_hash: not a scrypt$N$r$p$salt$hash string (generate one with: node scripts/hash-secret.mjs password)',
    ],
    [
      'a colon in a username',
      `auth: { users: [{ username: "a:b", password_hash: "${HASH}", role: admin }] }`,
      'auth.users.0.username: usernames may not contain ":", spaces or control characters',
    ],
    [
      'an unknown role',
      `auth: { users: [{ username: a, password_hash: "${HASH}", role: root }] }`,
      'auth.users.0.role: Invalid option: expected one of "viewer"|"operator"|"admin"',
    ],
    [
      'duplicate usernames',
      `auth: { users: [{ username: a, password_hash: "${HASH}", role: admin }, { username: a, password_hash: "${HASH}", role: viewer }] }`,
      'auth.users.1: duplicate username "a"',
    ],
    [
      'a token given in clear instead of its hash',
      'auth: { tokens: [{ name: t, sha256: cap_abc, role: viewer }] }',
      'auth.tokens.0.sha256: must be the hex SHA-256 of the token (node scripts/hash-secret.mjs token)',
    ],
    [
      'the same token twice',
      `auth: { tokens: [{ name: a, sha256: ${TOKEN_SHA}, role: viewer }, { name: b, sha256: ${TOKEN_SHA}, role: admin }] }`,
      'auth.tokens.1: the same token hash appears twice',
    ],
    [
      'insecure mode next to real credentials',
      'auth: { insecure_no_auth: true, tokens: [{ name: a, sha256: ' + TOKEN_SHA + ', role: viewer }] }',
      'auth.insecure_no_auth: cannot be combined with users, tokens, github or oidc',
    ],
    [
      'protected metrics nobody can scrape',
      'auth: { protect_metrics: true }',
      'auth.protect_metrics: needs auth.users or auth.tokens (Prometheus authenticates with basic auth or a bearer token)',
    ],
    [
      'GitHub without public_url',
      'auth: { github: { client_id: x, client_secret: y, allow: [{ org: acme, role: viewer }] } }',
      'auth.public_url: auth.github needs auth.public_url (GitHub redirects back to <public_url>/auth/github/callback)',
    ],
    [
      'a GitHub allow entry naming two things',
      'auth: { public_url: "https://a.example", github: { client_id: x, client_secret: y, allow: [{ org: acme, user: bob, role: viewer }] } }',
      'auth.github.allow.0: each allow entry names exactly one of user, user_id, org or team',
    ],
    [
      'a team without its org',
      'auth: { public_url: "https://a.example", github: { client_id: x, client_secret: y, allow: [{ team: sre, role: viewer }] } }',
      'auth.github.allow.0.team: must be "org/team-slug"',
    ],
    [
      'an empty allow-list',
      'auth: { public_url: "https://a.example", github: { client_id: x, client_secret: y, allow: [] } }',
      'auth.github.allow: list at least one user, org or team',
    ],
    [
      'a non-http GitHub URL',
      'auth: { public_url: "https://a.example", github: { client_id: x, client_secret: y, api_url: "file:///etc", allow: [{ org: a, role: viewer }] } }',
      'auth.github.api_url: must be an http:// or https:// URL without credentials',
    ],
    [
      'a short session secret',
      'auth: { session: { secret: short } }',
      'auth.session.secret: Too small: expected string to have >=32 characters',
    ],
    ['an unknown key', 'auth: { basic_auth: "user:pass" }', 'auth: unknown key "basic_auth"'],
  ])('rejects %s with a clear message', (_scenario, file, message) => {
    expect(problems(file)).toContain(message);
  });

  it('error messages never echo a secret', () => {
    const found = problems(
      'auth: { users: [{ username: a, password: "hunter2-secret", role: admin }], session: { secret: "too-short-secret" } }',
    );
    expect(found.join('\n')).not.toMatch(/hunter2-secret|too-short-secret/);
  });
});

describe('users as one line each (flags and environment variables)', () => {
  const line = (name: string, role: string) => `${name}:${role}:${HASH}`;
  const fromArgv = (argv: string[], env: Record<string, string> = {}) => loadConfig({ argv, env }).config!.auth.users;
  const refused = (argv: string[], env: Record<string, string> = {}): string[] => {
    try {
      loadConfig({ argv, env });
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    throw new Error('expected a ConfigError');
  };

  it('takes name:role:scrypt-hash from CELERY_AUTOPILOT_AUTH_USERS and --auth-users, several separated by ","', () => {
    const users = fromArgv([], { CELERY_AUTOPILOT_AUTH_USERS: `${line('alice', 'admin')}, ${line('victor', 'viewer')}` });
    expect(users.map((u) => [u.username, u.role])).toEqual([
      ['alice', 'admin'],
      ['victor', 'viewer'],
    ]);
    expect(users[0]!.password_hash).toBeInstanceOf(Secret);
    expect(users[0]!.password_hash!.reveal()).toBe(HASH);
    // The flag wins over the variable, as for every key.
    expect(fromArgv(['--auth-users', line('olga', 'operator')], { CELERY_AUTOPILOT_AUTH_USERS: line('alice', 'admin') })).toMatchObject([
      { username: 'olga', role: 'operator' },
    ]);
  });

  it('takes the line form in YAML too, beside mappings', () => {
    const users = load(
      `auth:\n  users:\n    - "${line('alice', 'admin')}"\n    - { username: bob, password_hash: "${HASH}", role: viewer }\n`,
    ).auth.users;
    expect(users.map((u) => u.username)).toEqual(['alice', 'bob']);
  });

  it('refuses a plaintext password, an unknown role or a line without a role, and never repeats the value', () => {
    const cases: Array<[string, RegExp]> = [
      [
        'alice:admin:hunter2-secret',
        /^auth\.users\.0: user alice: a scrypt hash must follow the role, not a password: name:role:scrypt-hash/,
      ],
      [
        'alice:hunter2-secret',
        /^auth\.users\.0: not a user: write name:role:scrypt-hash \(make one with: npm run hash-secret -- user <name> <role>\)$/,
      ],
      [`alice:root:${HASH}`, /^auth\.users\.0: user alice: the role must be one of viewer, operator, admin$/],
    ];
    for (const [value, expected] of cases) {
      for (const problems of [refused(['--auth-users', value]), refused([], { CELERY_AUTOPILOT_AUTH_USERS: value })]) {
        expect(problems).toHaveLength(1);
        expect(problems[0]).toMatch(expected);
        expect(problems.join('\n')).not.toContain('hunter2');
        expect(problems.join('\n')).not.toContain(HASH.slice(-20));
      }
    }
  });

  it('the docker-compose demo config has the documented demo operator, password demo', async () => {
    const file = readFileSync(path.join(REPO_ROOT, 'docker/celery-autopilot.yaml'), 'utf8');
    const users = load(file).auth.users;
    expect(users.map((u) => [u.username, u.role])).toEqual([['demo', 'operator']]);
    const parsed = parseScryptHash(users[0]!.password_hash!.reveal());
    if (!parsed.ok) throw new Error(parsed.error);
    expect(await verifyPassword('demo', parsed.value)).toBe(true);
  });
});
