import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/auth/index.js';
import { ManualClock } from '../../src/clock.js';
import { Browser, csrfFromPage, FakeGitHub, type FakeGitHubUser } from '../support/fake-github.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { basicAuth, freePort, send, startSecureService, type SecureService } from '../support/secure-service.js';

/**
 * Attacks on the HTTP surface, against the real service on a real broker (its own RabbitMQ vhost), over
 * real HTTP: each test reproduces one attack and fails on the code before its fix. docs/security.md
 * lists each protection beside the test that proves it.
 */

const PASSWORD = 'alice-Correct-Horse-1';
const TOKEN = `cap_${randomBytes(32).toString('base64url')}`;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

let vhost: Awaited<ReturnType<typeof createVhost>>;
let aliceHash: string;
const running: SecureService[] = [];

beforeAll(async () => {
  vhost = await createVhost(uniqueId('sec-http'));
  aliceHash = await hashPassword(PASSWORD);
});

afterAll(async () => {
  await Promise.allSettled(running.map((s) => s.stop()));
  await vhost?.remove();
});

async function start(auth: Record<string, unknown>, extra: Record<string, unknown> = {}, clock?: ManualClock): Promise<SecureService> {
  const s = await startSecureService({ broker_url: vhost.url, auth, ...extra }, clock ? { clock } : {});
  running.push(s);
  return s;
}

const users = () => [
  { username: 'alice', password_hash: aliceHash, role: 'admin' },
  { username: 'bob', password: { plain: 'bob-plain-password-1' }, role: 'viewer' },
];
const tokens = [{ name: 'prometheus', sha256: sha256(TOKEN), role: 'viewer' }];
const whoamiPath = '/api/v1/audit?limit=1';

describe('password hashing cannot be flooded', () => {
  let s: SecureService;
  beforeAll(async () => {
    s = await start({ users: users(), tokens, login_rate_limit: { max_failures: 10, window_seconds: 300 } });
  });

  it('300 parallel bad logins from one client: an attempt counts before hashing, so at most 10 are hashed; a real user elsewhere gets in', async () => {
    const flood = Array.from({ length: 300 }, (_, i) =>
      send(s.url + whoamiPath, { headers: { authorization: basicAuth('alice', `wrong-${i}`) }, localAddress: '127.0.0.2' }),
    );
    const real = send(s.url + whoamiPath, { headers: { authorization: basicAuth('alice', PASSWORD) }, localAddress: '127.0.0.3' });
    const answers = await Promise.all(flood);
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((x) => x === 401).length).toBeLessThanOrEqual(10);
    expect(statuses.filter((x) => x === 429).length).toBeGreaterThanOrEqual(290);
    expect(statuses.every((x) => x === 401 || x === 429)).toBe(true);
    expect((await real).status).toBe(200);
  });

  it('routes that need nobody never verify a password: bad credentials on probes and /metrics do not count as failures', async () => {
    for (const path of ['/-/healthy', '/healthcheck', '/health', '/-/ready', '/metrics']) {
      for (let i = 0; i < 12; i++) {
        const a = await send(s.url + path, { headers: { authorization: basicAuth('alice', `wrong-${i}`) }, localAddress: '127.0.0.4' });
        expect(a.status).not.toBe(401);
      }
    }
    expect(
      (await send(s.url + whoamiPath, { headers: { authorization: basicAuth('alice', PASSWORD) }, localAddress: '127.0.0.4' })).status,
    ).toBe(200);
  });
});

describe('lockout cannot be turned against real users', () => {
  let s: SecureService;
  beforeAll(async () => {
    s = await start({ users: users(), tokens, protect_metrics: true, login_rate_limit: { max_failures: 3, window_seconds: 300 } });
  });

  it("failures in alice's name from other clients never refuse alice's right password from a clean client", async () => {
    for (const ip of ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14']) {
      for (let i = 0; i < 3; i++)
        await send(s.url + whoamiPath, { headers: { authorization: basicAuth('alice', 'nope') }, localAddress: ip });
    }
    expect(
      (await send(s.url + whoamiPath, { headers: { authorization: basicAuth('alice', PASSWORD) }, localAddress: '127.0.0.15' })).status,
    ).toBe(200);
  });

  it('a client locked out by its own failures still scrapes /metrics with its valid token', async () => {
    for (let i = 0; i < 5; i++)
      await send(s.url + whoamiPath, { headers: { authorization: basicAuth(`ghost${i}`, 'nope') }, localAddress: '127.0.0.16' });
    expect(
      (await send(s.url + whoamiPath, { headers: { authorization: basicAuth('bob', 'bob-plain-password-1') }, localAddress: '127.0.0.16' }))
        .status,
    ).toBe(429);
    expect((await send(s.url + '/metrics', { headers: { authorization: `Bearer ${TOKEN}` }, localAddress: '127.0.0.16' })).status).toBe(
      200,
    );
  });

  it('warns once when requests carry X-Forwarded-For while trust_proxy is unset', async () => {
    for (let i = 0; i < 3; i++) await send(s.url + '/-/ready', { headers: { 'x-forwarded-for': '203.0.113.7' } });
    const warnings = s.logs.lines().filter((l) => String(l.msg).includes('X-Forwarded-For but trust_proxy is unset'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40 });
  });
});

describe('anonymous visitors cannot log everyone out', () => {
  it('far more anonymous login-page visits than max_sessions leave a signed-in session alone', async () => {
    const s = await start({ users: users(), session: { max_sessions: 10 } });
    const browser = new Browser();
    const html = await (await browser.fetch(`${s.url}/login`)).text();
    const signIn = await browser.postForm(
      `${s.url}/login`,
      { username: 'alice', password: PASSWORD, _csrf: csrfFromPage(html), next: '/' },
      s.url,
    );
    expect(signIn.status).toBe(303);
    expect((await browser.fetch(s.url + whoamiPath)).status).toBe(200);
    for (let i = 0; i < 50; i++) await send(`${s.url}/login`);
    expect((await browser.fetch(s.url + whoamiPath)).status).toBe(200);
  });
});

describe('aborted scrapes leave nothing pending', () => {
  it('500 scrapes of a large exposition, each abandoned mid-stream: no handler or generator left pending', async () => {
    const s = await start({ tokens });
    // About 8 MB of exposition, far more than the socket buffers hold, so the stream waits for drain.
    for (let i = 0; i < 6000; i++) s.service.celeryMetrics.taskSeries.observeRuntime(`tasks.t${i}`, `celery@host-${i % 50}`, 'celery', 0.2);
    const port = s.port;
    const abortOne = () =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
        // Read the first bytes only, then go away while the server is still streaming.
        socket.once('data', () => {
          socket.pause();
          setImmediate(() => socket.destroy());
        });
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      });
    for (let batch = 0; batch < 25; batch++) await Promise.all(Array.from({ length: 20 }, abortOne));
    await waitFor(
      'every aborted scrape to settle',
      () => (s.service.scrapesInFlight === 0 ? true : undefined),
      60_000,
      200,
      () => `in flight: ${s.service.scrapesInFlight}`,
    );
    expect(s.service.scrapesInFlight).toBe(0);
    // And the endpoint still serves a whole exposition afterwards.
    const full = await send(`${s.url}/metrics`);
    expect(full.status).toBe(200);
    expect(full.body).toContain('tasks.t5999');
  });
});

describe('security headers on /ui and the JSON API', () => {
  it.each(['/ui', '/api/v1/workers', '/login', '/'])(
    '%s sends CSP without unsafe-inline, no framing, nosniff, no-store, a Referrer-Policy',
    async (path) => {
      const s = running.find((r) => r.service.config.auth.users.length > 0) ?? (await start({ users: users(), tokens }));
      const a = await send(s.url + path, { headers: { authorization: basicAuth('alice', PASSWORD) } });
      expect(a.status).toBe(200);
      const csp = String(a.headers['content-security-policy']);
      expect(csp).toMatch(/frame-ancestors 'none'/);
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toMatch(/default-src 'none'|default-src 'self'/);
      expect(a.headers['x-frame-options']).toBe('DENY');
      expect(a.headers['x-content-type-options']).toBe('nosniff');
      expect(a.headers['cache-control']).toBe('no-store');
      expect(a.headers['referrer-policy']).toBeDefined();
    },
  );

  it('/ui has no inline script or style: scripts and styles are files the CSP allows, and no nonce is needed', async () => {
    const s = await start({ users: users() });
    const a = await send(`${s.url}/ui`, { headers: { authorization: basicAuth('alice', PASSWORD) } });
    expect(String(a.headers['content-security-policy'])).not.toContain('unsafe-inline');
    expect(a.body).toMatch(/<script [^>]*src="[^"]*console\.js[^"]*"/);
    expect(a.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(a.body).not.toMatch(/<style\b| style="/);
  });
});

describe('the console for callers with header credentials only', () => {
  it('an API token opens /ui where only tokens are configured (no cookie sessions, so no CSRF token to render)', async () => {
    const s = await start({ tokens });
    const a = await send(`${s.url}/ui`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(a.status).toBe(200);
    expect(a.body).toContain('celery-autopilot');
  });
});

describe('no cross-site or DNS-rebinding requests in insecure mode', () => {
  let s: SecureService;
  beforeAll(async () => {
    s = await start({ insecure_no_auth: true });
  });
  const action = JSON.stringify({ command: 'pool_grow', arguments: { n: 1 }, targets: { workers: ['celery@nowhere'] }, dry_run: true });

  it('a loopback Host and our own Origin are served', async () => {
    const a = await send(`${s.url}/api/v1/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: s.url },
      body: action,
    });
    expect(a.status).toBe(200);
  });

  it('a rebinding page (its own name as Host and Origin) is refused: the expected Origin never comes from Host', async () => {
    const evil = `rebind.example:${s.port}`;
    const a = await send(`${s.url}/api/v1/actions`, {
      method: 'POST',
      headers: { host: evil, origin: `http://${evil}`, 'content-type': 'application/json' },
      body: action,
    });
    expect(a.status).toBe(403);
    const read = await send(`${s.url}/api/v1/workers`, { headers: { host: evil } });
    expect(read.status).toBe(403);
  });
});

describe('hardening: readiness detail, probe paths, session lifetime, cookie prefix', () => {
  it('/-/ready hides the broker error from anonymous callers and shows it with a valid token; /healthcheck and /health answer', async () => {
    const s = await startSecureService({ broker_url: 'amqp://guest:guest@127.0.0.1:1//', auth: { tokens } });
    running.push(s);
    await waitFor('a broker error', () => (s.service.status.lastError ? true : undefined));
    const anonymous = JSON.parse((await send(`${s.url}/-/ready`)).body) as { broker: Record<string, unknown> };
    expect(anonymous.broker.lastError).toBeUndefined();
    expect(anonymous.broker.connected).toBe(false);
    const known = JSON.parse((await send(`${s.url}/-/ready`, { headers: { authorization: `Bearer ${TOKEN}` } })).body) as {
      broker: Record<string, unknown>;
    };
    expect(known.broker.lastError).toEqual(expect.any(String));
    const flower = await send(`${s.url}/healthcheck`);
    expect([flower.status, flower.body]).toEqual([200, 'OK']);
    expect((await send(`${s.url}/health`)).status).toBe(200);
  });

  it('a session ends at its absolute lifetime however active it is', async () => {
    const clock = new ManualClock(Date.now());
    const s = await start({ users: users(), session: { max_age_seconds: 3600, absolute_lifetime_seconds: 120 } }, {}, clock);
    const browser = new Browser();
    const html = await (await browser.fetch(`${s.url}/login`)).text();
    await browser.postForm(`${s.url}/login`, { username: 'alice', password: PASSWORD, _csrf: csrfFromPage(html), next: '/' }, s.url);
    expect((await browser.fetch(s.url + whoamiPath)).status).toBe(200);
    clock.advance(61_000);
    expect((await browser.fetch(s.url + whoamiPath)).status).toBe(200);
    clock.advance(61_000);
    expect((await browser.fetch(s.url + whoamiPath)).status).toBe(401);
  });

  it('cookie_secure: always names the session cookie with the __Host- prefix', async () => {
    const s = await start({ users: users(), public_url: 'https://autopilot.example', session: { cookie_secure: 'always' } });
    const page = await send(`${s.url}/login`, { headers: { 'x-forwarded-proto': 'https' } });
    const cookie = ([] as string[]).concat(page.headers['set-cookie'] ?? []).join('\n');
    expect(cookie).toMatch(/^__Host-celery_autopilot_session=/);
    expect(cookie).toMatch(/Secure/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Domain=/i);
  });

  it("a GitHub user's membership is asked again when the session's absolute lifetime ends: a removed member stays out", async () => {
    const member: FakeGitHubUser = { login: 'sre-alice', id: 2, orgs: { acme: 'active' } };
    const github = await FakeGitHub.start({ clientId: 'autopilot-client', clientSecret: 'github-client-secret-4f9d2a', users: [member] });
    try {
      const clock = new ManualClock(Date.now());
      const port = await freePort();
      const s = await startSecureService(
        {
          broker_url: vhost.url,
          auth: {
            public_url: `http://127.0.0.1:${port}`,
            session: { absolute_lifetime_seconds: 120 },
            github: {
              client_id: github.clientId,
              client_secret: github.clientSecret,
              ...github.urls,
              allow: [{ org: 'acme', role: 'viewer' }],
            },
          },
        },
        { clock, port },
      );
      running.push(s);
      const signIn = async (browser: Browser) => {
        const start = await browser.fetch(`${s.url}/auth/github`);
        github.signInAs('sre-alice');
        const consent = await fetch(new URL(start.headers.get('location')!), { redirect: 'manual' });
        return browser.fetch(consent.headers.get('location')!);
      };
      const browser = new Browser();
      expect((await signIn(browser)).status).toBe(303);
      expect((await browser.fetch(s.url + whoamiPath)).status).toBe(200);
      member.orgs = {};
      clock.advance(121_000);
      expect((await browser.fetch(s.url + whoamiPath)).status).toBe(401);
      expect((await signIn(browser)).status).toBe(403);
    } finally {
      await github.close();
    }
  });
});
