import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, FakeGitHub, capturingLogger, startAuthApp, type AuthTestApp } from '../support/fake-github.js';

/**
 * The whole GitHub OAuth dance over real HTTP on loopback: our app → the stand-in authorize page
 * → back to our callback, which exchanges the code, reads the profile and checks memberships
 * through passport-github2, with nothing mocked inside the process.
 */

const CLIENT_SECRET = 'github-client-secret-4f9d2a';
const SESSION_SECRET = 'session-secret-that-is-long-enough-7c1e0b';

let github: FakeGitHub;
let app: AuthTestApp;
const logs = capturingLogger();

beforeAll(async () => {
  github = await FakeGitHub.start({
    clientId: 'autopilot-client',
    clientSecret: CLIENT_SECRET,
    users: [
      { login: 'OctoCat', id: 1 },
      { login: 'renamed-ron', id: 77 },
      { login: 'sre-alice', id: 2, orgs: { acme: 'active' } },
      { login: 'team-bob', id: 3, orgs: { acme: 'active' }, teams: { 'acme/platform': 'active' } },
      { login: 'pending-pat', id: 4, orgs: { acme: 'pending' }, teams: { 'acme/platform': 'pending' } },
      // Claims the allowed user's address and belongs to another org: neither may count.
      { login: 'mallory', id: 5, email: 'octocat@github.com', orgs: { 'evil-corp': 'active' } },
    ],
  });
  app = await startAuthApp(
    {
      session: { secret: SESSION_SECRET },
      github: {
        client_id: github.clientId,
        client_secret: CLIENT_SECRET,
        ...github.urls,
        allow: [
          { user: 'octocat', role: 'admin' },
          { user_id: 77, role: 'operator' },
          { org: 'acme', role: 'viewer' },
          { team: 'acme/platform', role: 'operator' },
        ],
      },
    },
    { logger: logs.logger },
  );
});

afterAll(async () => {
  await app?.close();
  await github?.close();
});

interface Dance {
  browser: Browser;
  callback: Response;
  sessionBefore: string | undefined;
  sessionAfter: string | undefined;
}

/** /auth/github → authorize page → callback, as a browser follows the redirects. */
async function signInWithGitHub(login: string, next?: string): Promise<Dance> {
  const browser = new Browser();
  const start = await browser.fetch(`${app.url}/auth/github${next !== undefined ? `?next=${encodeURIComponent(next)}` : ''}`);
  expect(start.status).toBe(302);
  const authorize = new URL(start.headers.get('location')!);
  expect(authorize.origin).toBe(github.url);
  expect(authorize.searchParams.get('state')).toBeTruthy();
  const sessionBefore = browser.cookies.get('celery_autopilot_session');

  github.signInAs(login);
  const consent = await fetch(authorize, { redirect: 'manual' });
  expect(consent.status).toBe(302);
  const callbackUrl = consent.headers.get('location')!;
  expect(callbackUrl.startsWith(`${app.url}/auth/github/callback?`)).toBe(true);

  const callback = await browser.fetch(callbackUrl);
  return { browser, callback, sessionBefore, sessionAfter: browser.cookies.get('celery_autopilot_session') };
}

async function whoami(browser: Browser): Promise<Record<string, unknown>> {
  const res = await browser.fetch(`${app.url}/api/whoami`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

describe('GitHub sign-in through passport-github2', () => {
  it.each([
    ['allowed by login (case-insensitive), admin', 'OctoCat', 'admin'],
    ['allowed by numeric user id (survives a rename), operator', 'renamed-ron', 'operator'],
    ['allowed by active org membership, viewer', 'sre-alice', 'viewer'],
    ['allowed by active team membership, the highest matching role wins', 'team-bob', 'operator'],
  ])('%s', async (_scenario, login, role) => {
    const { browser, callback } = await signInWithGitHub(login, '/api/whoami');
    expect(callback.status).toBe(303);
    expect(callback.headers.get('location')).toBe('/api/whoami');
    expect(await whoami(browser)).toMatchObject({ actor: `github:${login}`, kind: 'github', name: login, role, via: 'session' });
  });

  it("asks GitHub for read:org only, and checks membership with the user's own token", async () => {
    const before = github.requests.length;
    await signInWithGitHub('team-bob');
    expect(github.requestedScopes.at(-1)).toBe('read:org');
    const apiCalls = github.requests.slice(before).filter((r) => r.path.startsWith('/api/'));
    const userToken = github.issuedTokens.at(-1)!;
    expect(apiCalls.map((r) => r.path)).toEqual(['/api/user', '/api/orgs/acme/teams/platform/memberships/team-bob']);
    for (const call of apiCalls) expect(call.authorization).toBe(`Bearer ${userToken}`);
  });

  it.each([
    ["a member of another org only, with the allowed user's e-mail on the profile", 'mallory'],
    ['an org and team invitation not yet accepted (state pending)', 'pending-pat'],
  ])('refuses %s with 403 and no session', async (_scenario, login) => {
    const { browser, callback } = await signInWithGitHub(login);
    expect(callback.status).toBe(403);
    expect(((await callback.json()) as { error: string }).error).toContain(`GitHub user ${login} is not allowed`);
    expect((await browser.fetch(`${app.url}/api/whoami`)).status).toBe(401);
  });

  it('issues a new session id at sign-in (no session fixation)', async () => {
    const { sessionBefore, sessionAfter, callback } = await signInWithGitHub('OctoCat');
    expect(callback.status).toBe(303);
    expect(sessionBefore).toBeTruthy();
    expect(sessionAfter).toBeTruthy();
    expect(sessionAfter).not.toBe(sessionBefore);
  });

  it.each([
    ['//evil.example', '/ui'],
    ['/\\evil.example', '/ui'],
    ['https://evil.example/', '/ui'],
    ['/api/whoami?x=1', '/api/whoami?x=1'],
  ])('next=%s redirects to %s after sign-in', async (next, expected) => {
    const { callback } = await signInWithGitHub('OctoCat', next);
    expect(callback.status).toBe(303);
    expect(callback.headers.get('location')).toBe(expected);
  });

  describe('callback state', () => {
    async function startRoundTrip(): Promise<{ browser: Browser; callback: URL }> {
      const browser = new Browser();
      const start = await browser.fetch(`${app.url}/auth/github`);
      github.signInAs('OctoCat');
      const consent = await fetch(start.headers.get('location')!, { redirect: 'manual' });
      return { browser, callback: new URL(consent.headers.get('location')!) };
    }

    it.each([
      ['missing state', (u: URL) => u.searchParams.delete('state')],
      ['wrong state', (u: URL) => u.searchParams.set('state', 'forged-state-value')],
    ])('%s → 403, the code is never exchanged', async (_scenario, tamper) => {
      const { browser, callback } = await startRoundTrip();
      tamper(callback);
      const tokensBefore = github.issuedTokens.length;
      const res = await browser.fetch(callback.toString());
      expect(res.status).toBe(403);
      expect(github.issuedTokens.length).toBe(tokensBefore);
      expect((await browser.fetch(`${app.url}/api/whoami`)).status).toBe(401);
    });

    it('a callback from another browser (no session holding the state) → 403', async () => {
      const { callback } = await startRoundTrip();
      const res = await new Browser().fetch(callback.toString());
      expect(res.status).toBe(403);
    });

    it('state is single use: replaying a completed callback → 403', async () => {
      const { browser, callback } = await startRoundTrip();
      expect((await browser.fetch(callback.toString())).status).toBe(303);
      expect((await browser.fetch(callback.toString())).status).toBe(403);
    });

    it('a callback without a code → 400 rather than a new round trip', async () => {
      const res = await new Browser().fetch(`${app.url}/auth/github/callback?state=x`);
      expect(res.status).toBe(400);
    });

    it('the user declining on GitHub → 403', async () => {
      const browser = new Browser();
      const start = await browser.fetch(`${app.url}/auth/github`);
      github.signInAs('');
      const consent = await fetch(start.headers.get('location')!, { redirect: 'manual' });
      expect((await browser.fetch(consent.headers.get('location')!)).status).toBe(403);
    });
  });

  it('a GitHub session obeys roles and CSRF like any cookie session', async () => {
    const { browser } = await signInWithGitHub('sre-alice');
    const grow = await browser.fetch(`${app.url}/api/workers/pool-grow`, { method: 'POST', headers: { Origin: app.url } });
    expect(grow.status).toBe(403);
    const { browser: operator } = await signInWithGitHub('team-bob');
    const token = ((await (await operator.fetch(`${app.url}/api/csrf-token`)).json()) as { token: string }).token;
    const ok = await operator.fetch(`${app.url}/api/workers/pool-grow`, {
      method: 'POST',
      headers: { Origin: app.url, 'X-CSRF-Token': token },
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ ok: true, by: 'github:team-bob' });
  });

  it('never logs the client secret, the session secret or a GitHub access token', async () => {
    await signInWithGitHub('OctoCat');
    const text = logs.text();
    expect(text).toContain('GitHub login allowed');
    expect(github.issuedTokens.length).toBeGreaterThan(0);
    for (const secret of [CLIENT_SECRET, SESSION_SECRET, ...github.issuedTokens]) expect(text).not.toContain(secret);
  });
});
