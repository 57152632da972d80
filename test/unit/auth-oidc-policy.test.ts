import { describe, expect, it } from 'vitest';
import { AccessPolicy, claimAt, claimStrings } from '../../src/auth/oidc/access-policy.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { oidcProviderSchema, type OidcProviderConfig } from '../../src/config/oidc-schema.js';

/** Who gets in with which role, decided on claims alone (the integration suite runs it against a real provider). */

const base = { id: 'okta', name: 'Okta', issuer_url: 'https://acme.okta.com', client_id: 'client', client_secret: 's3cret' };
const provider = (extra: Record<string, unknown>): OidcProviderConfig => oidcProviderSchema.parse({ ...base, ...extra });
const verified = (email: string, more: Record<string, unknown> = {}) => ({ sub: 'u1', email, email_verified: true, ...more });

describe('claims', () => {
  const claims = {
    groups: ['sre', 'eng'],
    realm_access: { roles: ['celery-admin', 'offline_access'] },
    'https://gitlab.org/claims/groups/owner': ['platform'],
    hd: 'example.com',
    n: 7,
  };

  it.each([
    ['groups', ['sre', 'eng']],
    ['realm_access.roles', ['celery-admin', 'offline_access']],
    ['https://gitlab.org/claims/groups/owner', ['platform']],
    ['hd', ['example.com']],
    ['n', ['7']],
    ['realm_access.missing', []],
    ['__proto__.constructor', []],
    ['groups.length', []],
  ])('%s → %j', (path, values) => {
    expect(claimStrings(claimAt(claims, path))).toEqual(values);
  });

  it('ignores values that are not strings, numbers or booleans', () => {
    expect(claimStrings([{ a: 1 }, 'x', null, true])).toEqual(['x', 'true']);
  });
});

describe('AccessPolicy', () => {
  it("Flower's --auth as a list: exact addresses, any case", () => {
    const p = new AccessPolicy(provider({ allow_emails: ['Alice@Example.com', 'bob@example.com'], default_role: 'viewer' }));
    expect(p.decide(verified('alice@example.com'))).toEqual({ allowed: true, role: 'viewer', name: 'okta/alice@example.com' });
    expect(p.decide(verified('alice@example.com.evil'))).toMatchObject({ allowed: false, log: { why: 'email_not_allowed' } });
  });

  it("Flower's --auth as a regular expression matches the whole address only", () => {
    const p = new AccessPolicy(provider({ allow_email_regex: '.*@example\\.com', default_role: 'operator' }));
    expect(p.decide(verified('carol@example.com'))).toMatchObject({ allowed: true, role: 'operator' });
    expect(p.decide(verified('carol@example.com.evil.org'))).toMatchObject({ allowed: false });
    expect(p.decide(verified('evil@notexample.com'))).toMatchObject({ allowed: false });
    // An alternation cannot escape the anchors.
    const alt = new AccessPolicy(provider({ allow_email_regex: 'a@x\\.com|b@x\\.com', default_role: 'viewer' }));
    expect(alt.decide(verified('b@x.com'))).toMatchObject({ allowed: true });
    expect(alt.decide(verified('a@x.com.evil'))).toMatchObject({ allowed: false });
  });

  it('never runs the pattern on an address longer than 254 characters, so no address can make a pattern backtrack for long', () => {
    // A pattern that would match: only the length bound refuses it (and a catastrophic pattern such
    // as (a+)+@x\.com never sees such an input).
    const p = new AccessPolicy(provider({ allow_email_regex: '.*@x\\.com', default_role: 'viewer' }));
    expect(p.decide(verified(`${'a'.repeat(248)}@x.com`))).toMatchObject({ allowed: true });
    expect(p.decide(verified(`${'a'.repeat(249)}@x.com`))).toMatchObject({ allowed: false, log: { why: 'email_not_allowed' } });
  });

  it('requires a verified e-mail address by default, and says which problem it is', () => {
    const p = new AccessPolicy(provider({ allow_emails: ['alice@example.com'], default_role: 'viewer' }));
    const unverified = p.decide({ sub: 'u1', email: 'alice@example.com', email_verified: false });
    expect(unverified).toMatchObject({ allowed: false, log: { why: 'email_not_verified' } });
    expect(unverified.allowed ? '' : unverified.reason).toBe('Okta account alice@example.com: Okta has not verified this e-mail address');
    // "true" as a string is not a verification.
    expect(p.decide({ sub: 'u1', email: 'alice@example.com', email_verified: 'true' })).toMatchObject({ allowed: false });
    expect(p.decide({ sub: 'u1' })).toMatchObject({ allowed: false, log: { why: 'no_email' } });
  });

  it('maps a nested claim to the highest role any value gives; the default applies only when nothing maps', () => {
    const p = new AccessPolicy(
      provider({ roles: { claim: 'realm_access.roles', admin: ['celery-admin'], operator: ['celery-op'], viewer: ['staff'] } }),
    );
    expect(p.decide(verified('a@x.com', { realm_access: { roles: ['staff', 'celery-admin'] } }))).toMatchObject({ role: 'admin' });
    expect(p.decide(verified('a@x.com', { realm_access: { roles: ['celery-op'] } }))).toMatchObject({ role: 'operator' });
    const none = p.decide(verified('a@x.com', { realm_access: { roles: ['offline_access'] } }));
    expect(none).toMatchObject({ allowed: false, log: { why: 'no_role', values: ['offline_access'] } });
    expect(none.allowed ? '' : none.reason).toBe('Okta account a@x.com: none of its realm_access.roles (offline_access) gives a role here');
    const withDefault = new AccessPolicy(
      provider({ roles: { claim: 'groups', admin: ['admins'] }, default_role: 'viewer', allow_email_regex: '.*@x\\.com' }),
    );
    expect(withDefault.decide(verified('a@x.com', { groups: ['eng'] }))).toMatchObject({ allowed: true, role: 'viewer' });
  });

  it('several claims at once (GitLab sends one per access level)', () => {
    const p = new AccessPolicy(
      provider({
        roles: { claim: ['https://gitlab.org/claims/groups/owner', 'https://gitlab.org/claims/groups/maintainer'], operator: ['platform'] },
      }),
    );
    expect(p.decide(verified('a@x.com', { 'https://gitlab.org/claims/groups/maintainer': ['platform'] }))).toMatchObject({
      role: 'operator',
    });
  });

  it('a refusal shows only the first ten of the person’s own values', () => {
    const p = new AccessPolicy(provider({ roles: { claim: 'groups', admin: ['admins'] } }));
    const groups = Array.from({ length: 25 }, (_, i) => `g${i}`);
    const d = p.decide(verified('a@x.com', { groups }));
    expect(d.allowed ? '' : d.reason).toContain('g0, g1, g2, g3, g4, g5, g6, g7, g8, g9 and 15 more');
    expect(d.allowed ? '' : d.reason).not.toContain('admins');
  });

  it("Entra ID's group overage (a link instead of the groups) is named as such", () => {
    const p = new AccessPolicy(provider({ require_verified_email: false, roles: { claim: 'groups', admin: ['0000'] } }));
    const d = p.decide({ sub: 'u1', _claim_names: { groups: 'src1' } });
    expect(d).toMatchObject({ allowed: false, log: { why: 'no_role', overage: true } });
  });

  it('required claims (Google hd) are checked without revealing the expected value', () => {
    const p = new AccessPolicy(provider({ require_claims: { hd: 'example.com' }, default_role: 'viewer' }));
    expect(p.decide(verified('a@example.com', { hd: 'example.com' }))).toMatchObject({ allowed: true });
    const d = p.decide(verified('a@gmail.com'));
    expect(d).toMatchObject({ allowed: false, log: { why: 'required_claim', claim: 'hd' } });
    expect(d.allowed ? '' : d.reason).toBe('Okta account a@gmail.com: its hd (none) is not one allowed here');
  });

  it('names the person by name_claim, falling back to the subject', () => {
    const p = new AccessPolicy(
      provider({ require_verified_email: false, name_claim: 'preferred_username', roles: { claim: 'groups', viewer: ['g'] } }),
    );
    expect(p.decide({ sub: 'u1', preferred_username: 'alice@contoso.com', groups: ['g'] })).toMatchObject({
      name: 'okta/alice@contoso.com',
    });
    expect(p.decide({ sub: 'u1', groups: ['g'] })).toMatchObject({ name: 'okta/u1' });
  });
});

describe('auth.oidc config', () => {
  const problems = (oidc: Record<string, unknown>, publicUrl = 'https://autopilot.example.com'): string[] => {
    try {
      loadConfig({
        argv: ['--config', 'c.yaml'],
        env: {},
        readFile: () => JSON.stringify({ auth: { ...(publicUrl ? { public_url: publicUrl } : {}), oidc: [{ ...base, ...oidc }] } }),
      });
      return [];
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
  };

  it('accepts a minimal provider and fills the defaults', () => {
    expect(problems({ allow_emails: ['a@x.com'], default_role: 'viewer' })).toEqual([]);
    expect(provider({ allow_emails: ['a@x.com'], default_role: 'viewer' })).toMatchObject({
      scopes: ['openid', 'email', 'profile'],
      token_endpoint_auth_method: 'client_secret_basic',
      require_verified_email: true,
      userinfo: true,
      name_claim: 'email',
      timeout_seconds: 10,
    });
  });

  it.each([
    [{ default_role: 'viewer' }, 'auth.oidc.0.default_role: would give anyone with an account at https://acme.okta.com a role'],
    [
      { roles: { claim: 'groups', admin: ['admins'] }, default_role: 'viewer' },
      'auth.oidc.0.default_role: would give anyone with an account at https://acme.okta.com a role',
    ],
    [{ allow_emails: ['a@x.com'] }, 'auth.oidc.0.default_role: without roles, default_role is the role everyone let in gets'],
    [{ allow_email_regex: '(', default_role: 'viewer' }, 'auth.oidc.0.allow_email_regex: not a valid regular expression'],
    [
      { allow_emails: ['a@x.com'], default_role: 'viewer', require_verified_email: false },
      'auth.oidc.0.require_verified_email: an allow-list of e-mail addresses needs verified addresses',
    ],
    [{ roles: { claim: 'groups' } }, 'auth.oidc.0.roles: list at least one claim value'],
    [
      { issuer_url: 'http://acme.okta.com', default_role: 'viewer', allow_emails: ['a@x.com'] },
      'auth.oidc.0.issuer_url: must be an https:// URL',
    ],
    [
      { client_secret_file: '/run/secrets/x', allow_emails: ['a@x.com'], default_role: 'viewer' },
      'auth.oidc.0.client_secret: give exactly one of',
    ],
    [{ scopes: ['email'], allow_emails: ['a@x.com'], default_role: 'viewer' }, 'auth.oidc.0.scopes: must include openid'],
    [
      { authorization_params: { state: 'x' }, allow_emails: ['a@x.com'], default_role: 'viewer' },
      'auth.oidc.0.authorization_params: state, nonce',
    ],
    [{ id: 'Okta!', allow_emails: ['a@x.com'], default_role: 'viewer' }, 'auth.oidc.0.id: lower-case letters'],
  ])('refuses %j', (oidc, message) => {
    expect(problems(oidc).join('\n')).toContain(message);
  });

  it('needs auth.public_url, and refuses two providers with one id', () => {
    expect(problems({ allow_emails: ['a@x.com'], default_role: 'viewer' }, '')).toContain(
      'auth.public_url: auth.oidc needs auth.public_url (providers redirect back to <public_url>/auth/oidc/<id>/callback)',
    );
    const two = loadConfig.bind(undefined, {
      argv: ['--config', 'c.yaml'],
      env: {},
      readFile: () =>
        JSON.stringify({
          auth: {
            public_url: 'https://a.example',
            oidc: [1, 2].map(() => ({ ...base, allow_emails: ['a@x.com'], default_role: 'viewer' })),
          },
        }),
    });
    expect(two).toThrow(/auth.oidc.1: duplicate provider id "okta"/);
  });
});
