import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASK_FOR_ACCESS } from '../../src/auth/oidc/routes.js';
import { ManualClock } from '../../src/clock.js';
import { waitFor } from '../support/exporter.js';
import { capturingLogger, startAuthApp, type AuthTestApp } from '../support/fake-github.js';
import { TestOidcProvider, type TestOidcUser } from '../support/oidc-provider.js';
import { freePort, issueServerCertificate, makeCertificates, type TestCertificates } from '../support/tls-endpoints.js';
import { WebClient } from '../support/web-client.js';

/**
 * OpenID Connect sign-in against a real OpenID Provider (oidc-provider) over HTTPS with a CA made
 * for the suite, through real HTTP redirects: our app → the provider's authorize endpoint → its
 * login screen → back to our callback, where openid-client exchanges the code and checks the ID
 * token. Nothing inside the app is mocked; faults are made by the provider or on the wire.
 */

const OKTA_SECRET = 'okta-client-secret-7d1f0c9e';
const KEYCLOAK_SECRET = 'keycloak-client-secret-51ab2e';
const WRONG_SECRET = 'not-the-okta-secret-0f3b2a';

const oktaUsers: TestOidcUser[] = [
  { sub: 'alice', email: 'alice@acme.com', email_verified: true, groups: ['celery-admins', 'eng'] },
  { sub: 'bob', email: 'bob@acme.com', email_verified: true, groups: ['sre'] },
  { sub: 'carol', email: 'carol@acme.com', email_verified: true, groups: ['eng'] },
  { sub: 'unverified', email: 'alice-twin@acme.com', email_verified: false, groups: ['celery-admins'] },
  { sub: 'mallory', email: 'mallory@evil.example', email_verified: true, groups: ['celery-admins'] },
];
const keycloakUsers: TestOidcUser[] = [
  { sub: 'dave', email: 'dave@acme.com', email_verified: true, realm_access: { roles: ['celery-operator', 'offline_access'] } },
  { sub: 'erin', email: 'erin@acme.com', email_verified: true, realm_access: { roles: ['offline_access'] } },
  { sub: 'trudy', email: 'trudy@acme.com.evil.org', email_verified: true, realm_access: { roles: ['celery-admin'] } },
];

let certs: TestCertificates;
let okta: TestOidcProvider;
let keycloak: TestOidcProvider;
let app: AuthTestApp;
const clock = new ManualClock(Date.now());
const logs = capturingLogger();
const clients: WebClient[] = [];

beforeAll(async () => {
  certs = await makeCertificates();
  const tls = await issueServerCertificate(certs, 'issuer', 'IP:127.0.0.1');
  const appPort = await freePort();
  const appUrl = `http://127.0.0.1:${appPort}`;
  const callback = (id: string) => `${appUrl}/auth/oidc/${id}/callback`;
  okta = await TestOidcProvider.start({
    certFile: tls.cert,
    keyFile: tls.key,
    clientId: 'autopilot',
    clientSecret: OKTA_SECRET,
    redirectUris: [callback('okta'), callback('okta-wrong-secret')],
    users: oktaUsers,
    claimsInIdToken: true,
  });
  keycloak = await TestOidcProvider.start({
    certFile: tls.cert,
    keyFile: tls.key,
    clientId: 'autopilot-kc',
    clientSecret: KEYCLOAK_SECRET,
    redirectUris: [callback('keycloak')],
    users: keycloakUsers,
    tokenEndpointAuthMethod: 'client_secret_post',
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'cap-oidc-'));
  writeFileSync(path.join(dir, 'keycloak-secret'), `${KEYCLOAK_SECRET}\n`);
  app = await startAuthApp(
    {
      session: { secret: 'session-secret-that-is-long-enough-7c1e0b', absolute_lifetime_seconds: 120 },
      oidc: [
        {
          id: 'okta',
          name: 'Okta',
          issuer_url: okta.issuer,
          client_id: 'autopilot',
          client_secret: OKTA_SECRET,
          ca_file: certs.caFile,
          allow_emails: ['alice@acme.com', 'bob@acme.com', 'carol@acme.com', 'alice-twin@acme.com'],
          roles: { claim: 'groups', admin: ['celery-admins'], operator: ['sre'] },
          default_role: 'viewer',
        },
        {
          id: 'keycloak',
          name: 'Keycloak',
          issuer_url: keycloak.issuer,
          client_id: 'autopilot-kc',
          client_secret_file: path.join(dir, 'keycloak-secret'),
          token_endpoint_auth_method: 'client_secret_post',
          ca_file: certs.caFile,
          allow_email_regex: '.*@acme\\.com',
          roles: { claim: 'realm_access.roles', admin: ['celery-admin'], operator: ['celery-operator'] },
        },
        {
          id: 'okta-wrong-secret',
          name: 'Okta (misconfigured)',
          issuer_url: okta.issuer,
          client_id: 'autopilot',
          client_secret: WRONG_SECRET,
          ca_file: certs.caFile,
          allow_emails: ['alice@acme.com'],
          default_role: 'viewer',
        },
      ],
    },
    { logger: logs.logger, clock, port: appPort },
  );
  await waitFor(
    'both providers discovered',
    () => (logs.text().split('OpenID provider discovered').length - 1 >= 3 ? true : undefined),
    20_000,
  );
});

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await app?.close();
  await okta?.close();
  await keycloak?.close();
  await certs?.remove();
});

const provider = (id: string) => (id === 'keycloak' ? keycloak : okta);

function newClient(): WebClient {
  const c = new WebClient({ caFile: certs.caFile });
  clients.push(c);
  return c;
}

/** From our /auth/oidc/<id> through the provider's login screen; stops before our callback and returns its URL. */
async function toCallback(client: WebClient, id: string, sub: string | null, next?: string): Promise<URL> {
  provider(id).signInAs(sub);
  const start = `${app.url}/auth/oidc/${id}${next !== undefined ? `?next=${encodeURIComponent(next)}` : ''}`;
  const { stopped, last } = await client.follow(start, (u) => u.startsWith(`${app.url}/auth/oidc/${id}/callback`));
  if (!stopped) throw new Error(`no redirect to our callback: ${last.status} ${await last.text()}`);
  return new URL(stopped);
}

async function signIn(
  id: string,
  sub: string | null,
  next?: string,
): Promise<{ client: WebClient; res: Response; body: string; callback: URL }> {
  const client = newClient();
  const callback = await toCallback(client, id, sub, next);
  const res = await client.fetch(callback.toString());
  return { client, res, body: await res.text(), callback };
}

async function whoami(client: WebClient): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await client.fetch(`${app.url}/api/whoami`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Log lines with this message since `from` lines were written. */
const linesSince = (from: number, msg: string) =>
  logs
    .lines()
    .slice(from)
    .filter((l) => l.msg === msg);

describe('OpenID Connect sign-in through openid-client against oidc-provider', () => {
  it.each([
    ['okta', 'alice', 'admin', 'a group that maps to admin (ID token claims)'],
    ['okta', 'bob', 'operator', 'a group that maps to operator'],
    ['okta', 'carol', 'viewer', 'on the allow-list with no mapped group: default_role'],
    [
      'keycloak',
      'dave',
      'operator',
      'a nested claim (realm_access.roles) from userinfo; the secret from a file, sent as client_secret_post',
    ],
  ])('%s user %s signs in as %s: %s', async (id, sub, role) => {
    const { client, res } = await signIn(id, sub, '/api/whoami?x=1');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/api/whoami?x=1');
    // The secret travels as each provider is configured: Basic for Okta, in the form for Keycloak.
    expect(provider(id).tokenClientAuth.at(-1)).toBe(id === 'keycloak' ? 'client_secret_post' : 'client_secret_basic');
    const email = [...oktaUsers, ...keycloakUsers].find((u) => u.sub === sub)!.email;
    expect((await whoami(client)).body).toMatchObject({ actor: `oidc:${id}/${email}`, kind: 'oidc', role, via: 'session' });
  });

  it('asks for the code with PKCE (S256), a state, a nonce and the configured scopes; issues a new session id', async () => {
    const client = newClient();
    await client.fetch(`${app.url}/login`);
    const before = client.cookies(app.url).get('celery_autopilot_session');
    const callback = await toCallback(client, 'okta', 'bob');
    const asked = okta.authorizeRequests.at(-1)!;
    expect(asked.get('code_challenge_method')).toBe('S256');
    expect(asked.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(asked.get('state')).toBe(callback.searchParams.get('state'));
    expect(asked.get('nonce')?.length).toBeGreaterThanOrEqual(32);
    expect(asked.get('scope')).toBe('openid email profile');
    expect(asked.get('redirect_uri')).toBe(`${app.url}/auth/oidc/okta/callback`);
    expect((await client.fetch(callback.toString())).status).toBe(303);
    const after = client.cookies(app.url).get('celery_autopilot_session');
    expect(before).toBeTruthy();
    expect(after).toBeTruthy();
    expect(after).not.toBe(before);
  });

  describe('who is refused, with the reason on the login page and one log line', () => {
    it.each([
      ['okta', 'unverified', 'Okta account alice-twin@acme.com: Okta has not verified this e-mail address', 'email_not_verified'],
      ['okta', 'mallory', 'Okta account mallory@evil.example: this e-mail address is not on the allow-list here', 'email_not_allowed'],
      [
        'keycloak',
        'trudy',
        'Keycloak account trudy@acme.com.evil.org: this e-mail address is not on the allow-list here',
        'email_not_allowed',
      ],
      ['keycloak', 'erin', 'Keycloak account erin@acme.com: none of its realm_access.roles (offline_access) gives a role here', 'no_role'],
    ])('%s user %s', async (id, sub, message, why) => {
      const from = logs.lines().length;
      const { client, res, body } = await signIn(id, sub);
      expect(res.status).toBe(403);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(body).toContain('<h1>Sign in to celery-autopilot</h1>');
      expect(body).toContain(`<p class="error" role="alert">${message}. ${ASK_FOR_ACCESS}</p>`);
      // Nothing about the rules themselves: no other address, group or role name.
      expect(body).not.toMatch(/celery-admins|celery-admin\b|alice@acme\.com|sre\b/);
      const refused = linesSince(from, 'OpenID sign-in refused');
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatchObject({ provider: id, why });
      expect((await whoami(client)).status).toBe(401);
    });
  });

  describe('a broken or forged answer is refused with a clear page', () => {
    it.each([
      ['a tampered ID token (changed sub, old signature)', 'tamper' as const, "Okta's ID token was refused: its signature does not verify"],
      [
        'an expired ID token (re-signed by the provider)',
        (c: Record<string, unknown>) => ({ ...c, iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }),
        "Okta's ID token was refused: it has expired or is not valid yet",
      ],
      [
        'an ID token for another client (aud)',
        (c: Record<string, unknown>) => ({ ...c, aud: 'someone-else' }),
        "Okta's ID token was refused: it was issued to another client (aud)",
      ],
      [
        'an ID token without the nonce',
        (c: Record<string, unknown>) => {
          const { nonce: _nonce, ...rest } = c;
          return rest;
        },
        "Okta's ID token was refused: it carries no nonce",
      ],
      [
        "an ID token with another sign-in's nonce",
        (c: Record<string, unknown>) => ({ ...c, nonce: 'replayed-nonce-from-another-sign-in' }),
        "Okta's ID token was refused: it does not carry this sign-in&#39;s nonce",
      ],
    ])('%s', async (_what, fault, message) => {
      const from = logs.lines().length;
      okta.faultNextIdToken(fault);
      const { client, res, body } = await signIn('okta', 'alice');
      expect(res.status).toBe(403);
      expect(body).toContain(message.replaceAll("Okta's", 'Okta&#39;s'));
      expect(linesSince(from, 'OpenID sign-in refused')).toHaveLength(1);
      expect((await whoami(client)).status).toBe(401);
    });

    it.each([
      ['a completed sign-in', 'bob', 303],
      ['a refused one (its state was used up by the first try)', 'mallory', 403],
    ])('replaying the callback of %s is refused without asking the provider', async (_what, sub, first) => {
      const { client, res, callback } = await signIn('okta', sub);
      expect(res.status).toBe(first);
      const tokenCalls = okta.tokenResponses.length;
      const again = await client.fetch(callback.toString());
      expect(again.status).toBe(403);
      expect(await again.text()).toContain('This sign-in with Okta was not started in this browser, or was already completed');
      expect(okta.tokenResponses.length).toBe(tokenCalls);
    });

    it('a callback carried to another browser, or with a forged state, never reaches the token endpoint', async () => {
      const client = newClient();
      const callback = await toCallback(client, 'okta', 'alice');
      const tokenCalls = okta.tokenResponses.length;
      const other = await newClient().fetch(callback.toString());
      expect(other.status).toBe(403);
      const forged = new URL(callback);
      forged.searchParams.set('state', 'forged-state');
      const res = await client.fetch(forged.toString());
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('does not belong to this browser&#39;s sign-in (state)');
      expect(okta.tokenResponses.length).toBe(tokenCalls);
    });

    it('a sign-in that comes back after 10 minutes is refused', async () => {
      const client = newClient();
      const callback = await toCallback(client, 'okta', 'alice');
      clock.advance(11 * 60_000);
      const res = await client.fetch(callback.toString());
      expect(res.status).toBe(403);
      expect(await res.text()).toContain('took more than 10 minutes');
    });

    it("the person pressing Cancel at the provider: the provider's error", async () => {
      const { res, body } = await signIn('okta', null);
      expect(res.status).toBe(403);
      expect(body).toContain('Okta refused the sign-in: access_denied (End-User aborted interaction)');
    });

    it("a wrong client secret: the provider's error on the page and in the log, never the secret", async () => {
      const from = logs.lines().length;
      const { res, body } = await signIn('okta-wrong-secret', 'alice');
      expect(res.status).toBe(502);
      expect(body).toContain('Okta (misconfigured) refused the code exchange: invalid_client (client authentication failed)');
      expect(okta.tokenResponses.at(-1)).toEqual({ status: 401, error: 'invalid_client' });
      const failed = linesSince(from, 'OpenID sign-in failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]).toMatchObject({ provider: 'okta-wrong-secret', why: 'token_error', error: 'invalid_client' });
      expect(body).not.toContain(WRONG_SECRET);
      expect(logs.text()).not.toContain(WRONG_SECRET);
    });
  });

  it('judges the person again when the absolute session lifetime ends: a role taken away at the provider keeps them out', async () => {
    const dave = keycloak.users.get('dave')!;
    const { client } = await signIn('keycloak', 'dave');
    expect((await whoami(client)).body).toMatchObject({ role: 'operator' });
    dave.realm_access = { roles: ['offline_access'] };
    try {
      clock.advance(60_000);
      expect((await whoami(client)).status).toBe(200);
      clock.advance(61_000);
      expect((await whoami(client)).status).toBe(401);
      const again = await client.fetch((await toCallback(client, 'keycloak', 'dave')).toString());
      expect(again.status).toBe(403);
      expect(await again.text()).toContain('none of its realm_access.roles (offline_access) gives a role here');
    } finally {
      dave.realm_access = { roles: ['celery-operator', 'offline_access'] };
    }
  });

  it('never logs a client secret, a code, an ID or access token', async () => {
    const { callback } = await signIn('okta', 'alice');
    const text = logs.text();
    expect(text).toContain('OpenID sign-in allowed');
    for (const secret of [OKTA_SECRET, KEYCLOAK_SECRET, WRONG_SECRET, callback.searchParams.get('code')!])
      expect(text).not.toContain(secret);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
