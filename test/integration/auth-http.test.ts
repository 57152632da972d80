import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToken, hashPassword } from '../../src/auth/index.js';
import { ManualClock } from '../../src/clock.js';
import { Browser, capturingLogger, csrfFromPage, startAuthApp, type AuthTestApp } from '../support/fake-github.js';

/**
 * Basic auth, bearer tokens, the login form, roles, CSRF, fail-closed and insecure modes and the
 * failed-login throttle, over real HTTP on loopback against an app wired like src/http/app.ts.
 */

const PASSWORDS = { alice: 'alice-Correct-Horse-1', victor: 'victor-Battery-Staple-2', flower: 'flower-plain-pass-9' };
const WRONG_PASSWORD = 'wrong-password-Zq8';
const SESSION_SECRET = 'a-session-secret-of-at-least-32-chars';
const TOKENS = { autoscaler: generateToken(), grafana: generateToken() };
const WRONG_TOKEN = generateToken();
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const bearer = (token: string) => `Bearer ${token}`;

const logs = capturingLogger();
let hashes: { alice: string; victor: string };

async function usersAndTokens() {
  hashes ??= { alice: await hashPassword(PASSWORDS.alice), victor: await hashPassword(PASSWORDS.victor) };
  return {
    users: [
      { username: 'alice', password_hash: hashes.alice, role: 'admin' as const },
      { username: 'victor', password_hash: hashes.victor, role: 'viewer' as const },
      // As migrated from Flower's --basic-auth: plaintext, explicitly marked.
      { username: 'flower', password: { plain: PASSWORDS.flower }, role: 'operator' as const },
    ],
    tokens: [
      { name: 'autoscaler', sha256: sha256(TOKENS.autoscaler), role: 'operator' as const },
      { name: 'grafana', sha256: sha256(TOKENS.grafana), role: 'viewer' as const },
    ],
  };
}

async function call(
  app: AuthTestApp,
  path: string,
  init: { method?: string; authorization?: string; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...init.headers };
  if (init.authorization) headers.Authorization = init.authorization;
  return fetch(`${app.url}${path}`, { method: init.method ?? 'GET', headers, redirect: 'manual' });
}

describe('with users and tokens configured', () => {
  let app: AuthTestApp;
  beforeAll(async () => {
    app = await startAuthApp(
      { ...(await usersAndTokens()), protect_metrics: true, session: { secret: SESSION_SECRET }, login_rate_limit: { max_failures: 1000 } },
      { logger: logs.logger },
    );
  });
  afterAll(() => app?.close());

  describe('basic auth and bearer tokens', () => {
    it.each([
      ['hashed password', basic('alice', PASSWORDS.alice), 'basic:alice', 'admin'],
      ['hashed password (answered from the verification cache the second time)', basic('alice', PASSWORDS.alice), 'basic:alice', 'admin'],
      ['plaintext password marked { plain }', basic('flower', PASSWORDS.flower), 'basic:flower', 'operator'],
      ['bearer token', bearer(TOKENS.autoscaler), 'token:autoscaler', 'operator'],
      ['lower-case scheme', `bearer ${TOKENS.grafana}`, 'token:grafana', 'viewer'],
    ])('right credentials (%s) → 200 with the principal', async (_scenario, authorization, actor, role) => {
      const res = await call(app, '/api/whoami', { authorization });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ actor, role, via: 'header', ip: expect.stringMatching(/127\.0\.0\.1/) });
    });

    it.each([
      ['wrong hashed password', basic('alice', WRONG_PASSWORD)],
      ['wrong plaintext password', basic('flower', WRONG_PASSWORD)],
      ['unknown user', basic('mallory', PASSWORDS.alice)],
      ['wrong token', bearer(WRONG_TOKEN)],
      ['token sent as a basic-auth password', basic('autoscaler', TOKENS.autoscaler)],
      ['unsupported scheme', 'Digest username="alice"'],
    ])('%s → 401 with Basic and Bearer challenges', async (_scenario, authorization) => {
      const res = await call(app, '/api/whoami', { authorization });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Basic realm="celery-autopilot", charset="UTF-8", Bearer realm="celery-autopilot"');
      expect(((await res.json()) as { error: string }).error).toMatch(/invalid credentials|unsupported Authorization/);
    });

    it('no credentials → 401 for scripts, a redirect to /login for a browser', async () => {
      expect((await call(app, '/api/whoami')).status).toBe(401);
      const page = await call(app, '/api/whoami?x=1', { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
      expect(page.status).toBe(302);
      expect(page.headers.get('location')).toBe('/login?next=%2Fapi%2Fwhoami%3Fx%3D1');
    });

    it('authenticate never rejects by itself: a public route answers whatever credentials are sent', async () => {
      expect((await call(app, '/', { authorization: basic('alice', WRONG_PASSWORD) })).status).toBe(200);
    });
  });

  describe('roles', () => {
    it.each([
      ['viewer (basic) → operator route', basic('victor', PASSWORDS.victor), '/api/workers/pool-grow', 403],
      ['viewer (token) → operator route', bearer(TOKENS.grafana), '/api/workers/pool-grow', 403],
      ['operator (token) → operator route', bearer(TOKENS.autoscaler), '/api/workers/pool-grow', 200],
      ['operator (basic) → admin route', basic('flower', PASSWORDS.flower), '/api/workers/shutdown', 403],
      ['admin → admin route', basic('alice', PASSWORDS.alice), '/api/workers/shutdown', 200],
    ])('%s → %s', async (_scenario, authorization, path, status) => {
      // Header credentials are not ambient: no CSRF token needed, whatever the Origin.
      const res = await call(app, path, { method: 'POST', authorization, headers: { Origin: 'https://elsewhere.example' } });
      expect(res.status).toBe(status);
      if (status === 403)
        expect(((await res.json()) as { error: string }).error).toMatch(/^forbidden: this needs the (operator|admin) role/);
    });
  });

  describe('/metrics with protect_metrics', () => {
    it.each([
      ['no credentials', undefined, 401],
      ['a viewer token, as Prometheus sends it', bearer(TOKENS.grafana), 200],
      ['basic auth, as Prometheus sends it', basic('victor', PASSWORDS.victor), 200],
      ['a wrong token', bearer(WRONG_TOKEN), 401],
    ])('%s → %s', async (_scenario, authorization, status) => {
      const res = await call(app, '/metrics', authorization ? { authorization } : {});
      expect(res.status).toBe(status);
      if (status === 200) expect(await res.text()).toBe('celery_workers 1\n');
    });
  });

  describe('login form and cookie sessions', () => {
    async function signIn(
      user: keyof typeof PASSWORDS,
      next = '/api/whoami',
    ): Promise<{ browser: Browser; res: Response; before: string | undefined }> {
      const browser = new Browser();
      const page = await browser.fetch(`${app.url}/login?next=${encodeURIComponent(next)}`);
      expect(page.status).toBe(200);
      expect(page.headers.get('cache-control')).toBe('no-store');
      const html = await page.text();
      const before = browser.cookies.get('celery_autopilot_session');
      const res = await browser.postForm(
        `${app.url}/login`,
        { username: user, password: PASSWORDS[user], _csrf: csrfFromPage(html), next },
        app.url,
      );
      return { browser, res, before };
    }

    async function csrfToken(browser: Browser): Promise<string> {
      return ((await (await browser.fetch(`${app.url}/api/csrf-token`)).json()) as { token: string }).token;
    }

    it('signs in, issues a new session id and redirects to a safe next', async () => {
      const { browser, res, before } = await signIn('alice', '/api/whoami');
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe('/api/whoami');
      const after = browser.cookies.get('celery_autopilot_session');
      expect(before).toBeTruthy();
      expect(after).not.toBe(before);
      const setCookie = res.headers.getSetCookie().join('\n');
      expect(setCookie).toMatch(/HttpOnly/);
      expect(setCookie).toMatch(/SameSite=Lax/);
      const me = await browser.fetch(`${app.url}/api/whoami`);
      expect(await me.json()).toMatchObject({ actor: 'basic:alice', role: 'admin', via: 'session' });
    });

    it('next=//evil.example → redirected to the console, /ui', async () => {
      const { res } = await signIn('alice', '//evil.example');
      expect(res.headers.get('location')).toBe('/ui');
    });

    it.each([
      ['wrong password', { password: WRONG_PASSWORD }, 'ours', 401],
      ['no CSRF token', { _csrf: '' }, 'ours', 403],
      ['a foreign Origin', {}, 'foreign', 403],
    ] as const)('login form with %s → %s and no session', async (_scenario, change, origin, status) => {
      const browser = new Browser();
      const html = await (await browser.fetch(`${app.url}/login`)).text();
      const fields = { username: 'alice', password: PASSWORDS.alice, _csrf: csrfFromPage(html), ...change };
      const res = await browser.postForm(`${app.url}/login`, fields, origin === 'ours' ? app.url : 'https://evil.example');
      expect(res.status).toBe(status);
      expect((await browser.fetch(`${app.url}/api/whoami`)).status).toBe(401);
    });

    it.each([
      ['no CSRF token', () => ({ Origin: app.url }), 403],
      ['the token but a foreign Origin', (t: string) => ({ Origin: 'https://evil.example', 'X-CSRF-Token': t }), 403],
      ['the token but Origin: null', (t: string) => ({ Origin: 'null', 'X-CSRF-Token': t }), 403],
      ['the token but a foreign Referer', (t: string) => ({ Referer: 'https://evil.example/page', 'X-CSRF-Token': t }), 403],
      ['a wrong token', () => ({ Origin: app.url, 'X-CSRF-Token': 'not-the-token' }), 403],
      ['the token and our Origin', (t: string) => ({ Origin: app.url, 'X-CSRF-Token': t }), 200],
      ['the token and our Referer', (t: string) => ({ Referer: `${app.url}/somewhere`, 'X-CSRF-Token': t }), 200],
    ])('cookie-session POST with %s → %s', async (_scenario, headers, status) => {
      const { browser } = await signIn('flower');
      const token = await csrfToken(browser);
      const res = await browser.fetch(`${app.url}/api/workers/pool-grow`, { method: 'POST', headers: headers(token) });
      expect(res.status).toBe(status);
    });

    it('the CSRF token as a _csrf form field, through the csrf middleware', async () => {
      const { browser } = await signIn('flower');
      const token = await csrfToken(browser);
      expect((await browser.postForm(`${app.url}/form/pool-grow`, {}, app.url)).status).toBe(403);
      expect((await browser.postForm(`${app.url}/form/pool-grow`, { _csrf: token }, app.url)).status).toBe(200);
    });

    it('a viewer session calling an operator route → 403 even with a valid token', async () => {
      const { browser } = await signIn('victor');
      const token = await csrfToken(browser);
      const res = await browser.fetch(`${app.url}/api/workers/pool-grow`, {
        method: 'POST',
        headers: { Origin: app.url, 'X-CSRF-Token': token },
      });
      expect(res.status).toBe(403);
    });

    it('logout needs the CSRF token, then ends the session for good', async () => {
      const { browser } = await signIn('alice');
      const sid = browser.cookies.get('celery_autopilot_session')!;
      expect((await browser.postForm(`${app.url}/logout`, {}, app.url)).status).toBe(403);
      const out = await browser.postForm(`${app.url}/logout`, { _csrf: await csrfToken(browser) }, app.url);
      expect(out.status).toBe(303);
      expect(out.headers.get('location')).toBe('/login');
      expect((await browser.fetch(`${app.url}/api/whoami`)).status).toBe(401);
      // The old cookie, replayed, is worth nothing.
      const replay = await fetch(`${app.url}/api/whoami`, { headers: { Cookie: `celery_autopilot_session=${sid}` } });
      expect(replay.status).toBe(401);
    });
  });
});

describe('fail closed', () => {
  let app: AuthTestApp;
  const local = capturingLogger();
  beforeAll(async () => {
    app = await startAuthApp({}, { logger: local.logger });
  });
  afterAll(() => app?.close());

  it('with no auth configured, every guarded route answers 503 with what to configure', async () => {
    for (const [method, path, authorization] of [
      ['GET', '/api/whoami', undefined],
      ['POST', '/api/workers/shutdown', undefined],
      ['POST', '/api/workers/pool-grow', basic('alice', PASSWORDS.alice)],
    ] as const) {
      const res = await call(app, path, { method, ...(authorization ? { authorization } : {}) });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toMatch(
        /^authentication is not configured: add auth.users, auth.tokens, auth.github or auth.oidc/,
      );
    }
    expect(local.text()).toContain('control endpoints answer 503');
  });

  it('/metrics stays open when protect_metrics is off, and /login says (503) that nobody can sign in', async () => {
    expect((await call(app, '/metrics')).status).toBe(200);
    const login = await call(app, '/login');
    expect(login.status).toBe(503);
    expect(((await login.json()) as { error: string }).error).toBe(
      'no interactive sign-in is configured (auth.users, auth.github or auth.oidc)',
    );
  });
});

describe('insecure_no_auth', () => {
  let app: AuthTestApp;
  const local = capturingLogger();
  beforeAll(async () => {
    app = await startAuthApp({ insecure_no_auth: true }, { logger: local.logger });
  });
  afterAll(() => app?.close());

  it('treats every request as admin and says so loudly at start', async () => {
    const res = await call(app, '/api/workers/shutdown', { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, by: 'anonymous-insecure:anonymous' });
    const warning = local.lines().find((l) => String(l.msg).startsWith('AUTHENTICATION DISABLED'));
    expect(warning).toMatchObject({ level: 40 });
  });

  it('still refuses a cross-origin POST, so a web page cannot drive it through a browser', async () => {
    const res = await call(app, '/api/workers/shutdown', { method: 'POST', headers: { Origin: 'https://evil.example' } });
    expect(res.status).toBe(403);
  });
});

/** A GET from a chosen loopback address, so per-IP and per-username limits can be told apart. */
function getFrom(localAddress: string, url: string, authorization: string): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { localAddress, headers: { Authorization: authorization } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('failed-login throttle (3 failures per 60 s)', () => {
  let app: AuthTestApp;
  const clock = new ManualClock();
  beforeAll(async () => {
    app = await startAuthApp(
      { ...(await usersAndTokens()), login_rate_limit: { max_failures: 3, window_seconds: 60 } },
      { logger: logs.logger, clock },
    );
  });
  afterAll(() => app?.close());
  const whoami = () => `${app.url}/api/whoami`;

  it('per client IP: after 3 failures even right credentials get 429 with Retry-After, until the window passes', async () => {
    for (const user of ['nobody1', 'nobody2', 'nobody3'])
      expect((await getFrom('127.0.0.2', whoami(), basic(user, WRONG_PASSWORD))).status).toBe(401);
    const throttled = await getFrom('127.0.0.2', whoami(), basic('victor', PASSWORDS.victor));
    expect(throttled).toEqual({ status: 429, retryAfter: '60' });
    // Another client is not affected.
    expect((await getFrom('127.0.0.3', whoami(), basic('victor', PASSWORDS.victor))).status).toBe(200);
    clock.advance(61_000);
    expect((await getFrom('127.0.0.2', whoami(), basic('victor', PASSWORDS.victor))).status).toBe(200);
  });

  // Failures in a user's name from elsewhere must not lock the user out, or anyone could lock out
  // anyone (docs/security.md). The username backs off for clients that have failed themselves; the
  // right password from a client that has not failed is never refused.
  it('per username: failures from several IPs slow that name down for failing clients, never lock the real user out', async () => {
    for (const ip of ['127.0.0.4', '127.0.0.5', '127.0.0.6'])
      expect((await getFrom(ip, whoami(), basic('alice', WRONG_PASSWORD))).status).toBe(401);
    expect((await getFrom('127.0.0.4', whoami(), basic('alice', WRONG_PASSWORD))).status).toBe(429);
    expect((await getFrom('127.0.0.7', whoami(), basic('alice', PASSWORDS.alice))).status).toBe(200);
    expect((await getFrom('127.0.0.7', whoami(), basic('victor', PASSWORDS.victor))).status).toBe(200);
    clock.advance(61_000);
  });

  // A valid token is never throttled by failures, so guessing cannot stop a scraper or a script.
  it('wrong bearer tokens count against the client, but a valid token is never throttled', async () => {
    for (let i = 0; i < 3; i++) expect((await getFrom('127.0.0.8', whoami(), bearer(WRONG_TOKEN))).status).toBe(401);
    expect((await getFrom('127.0.0.8', whoami(), bearer(WRONG_TOKEN))).status).toBe(429);
    expect((await getFrom('127.0.0.8', whoami(), basic('victor', PASSWORDS.victor))).status).toBe(429);
    expect((await getFrom('127.0.0.8', whoami(), bearer(TOKENS.grafana))).status).toBe(200);
    clock.advance(61_000);
  });

  it('the login form answers 429 with Retry-After', async () => {
    const browser = new Browser();
    const html = await (await browser.fetch(`${app.url}/login`)).text();
    const csrf = csrfFromPage(html);
    for (let i = 0; i < 3; i++)
      expect(
        (await browser.postForm(`${app.url}/login`, { username: 'victor', password: WRONG_PASSWORD, _csrf: csrf }, app.url)).status,
      ).toBe(401);
    const res = await browser.postForm(`${app.url}/login`, { username: 'victor', password: PASSWORDS.victor, _csrf: csrf }, app.url);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('60');
    expect(await res.text()).toContain('Too many failed sign-ins');
    clock.advance(61_000);
  });
});

describe('logs', () => {
  it('hold no password, token or session secret, and no unknown username (it may be a mistyped password)', async () => {
    const app = await startAuthApp({ ...(await usersAndTokens()), session: { secret: SESSION_SECRET } }, { logger: logs.logger });
    try {
      expect((await call(app, '/api/whoami', { authorization: basic(PASSWORDS.alice, PASSWORDS.alice) })).status).toBe(401);
    } finally {
      await app.close();
    }
    const text = logs.text();
    expect(text).toContain('authentication failed');
    expect(text).toContain('plaintext password in config');
    const secrets = [
      ...Object.values(PASSWORDS),
      WRONG_PASSWORD,
      SESSION_SECRET,
      ...Object.values(TOKENS),
      WRONG_TOKEN,
      hashes.alice,
      hashes.victor,
    ];
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
