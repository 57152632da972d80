import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser, watchPage, type HeadlessBrowser } from '../support/browser.js';
import { redisIsolation } from '../support/isolation.js';
import { startServiceProcess, type ServiceProcess } from '../support/service-process.js';
import { WebClient } from '../support/web-client.js';

/**
 * The README's quick start as a newcomer follows it, against the real entry point: a user line
 * from `npm run hash-secret -- user`, given as CELERY_AUTOPILOT_AUTH_USERS, then the browser
 * from the landing page through the sign-in form to the console. And without any user: the
 * console stays closed, but a browser is shown what to set instead of a JSON 503.
 */

const PASSWORD = 'first-run-Correct-Horse-7';
const HTML = { Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

function userLine(name: string, role: string, password: string): string {
  return execFileSync(process.execPath, ['scripts/hash-secret.mjs', 'user', name, role], {
    input: `${password}\n`,
    encoding: 'utf8',
  }).trim();
}

/** A broker of its own (a Redis key prefix): the service's enable_events broadcasts reach no other suite's workers. */
function brokerConfig(suite: string): Record<string, unknown> {
  const redis = redisIsolation(suite);
  return { broker_url: redis.url, broker_transport_options: { global_keyprefix: redis.keyprefix } };
}

function startLine(service: ServiceProcess): { level: number; msg: string; console: string } {
  const line = service
    .logs()
    .split('\n')
    .find((l) => l.includes('celery-autopilot listening'));
  if (!line) throw new Error(`no start line in:\n${service.logs()}`);
  return JSON.parse(line) as { level: number; msg: string; console: string };
}

describe('first run with nothing configured', () => {
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await startServiceProcess(brokerConfig('first-run-closed'));
  });
  afterAll(() => service?.stop());

  it('says at start, as a warning, where the console is and that nobody can sign in (and no contradicting line)', () => {
    const line = startLine(service);
    expect(line.level).toBe(40);
    expect(line.console).toBe(`${service.url}/ui`);
    expect(line.msg).toBe(
      `celery-autopilot listening; console at ${service.url}/ui; nobody can sign in: no user, token or single sign-on is configured, so the console and control API are closed (the console URL says what to set, e.g. CELERY_AUTOPILOT_AUTH_USERS)`,
    );
    expect(service.logs()).not.toContain('authentication configured');
  });

  it('sends a browser from /ui to /login, which says what to set (503: still closed)', async () => {
    const ui = await service.fetch('/ui', { headers: HTML, redirect: 'manual' });
    expect(ui.status).toBe(302);
    expect(ui.headers.get('location')).toBe('/login?next=%2Fui');
    const login = await service.fetch('/login?next=%2Fui', { headers: HTML });
    expect(login.status).toBe(503);
    expect(login.headers.get('content-type')).toContain('text/html');
    const page = await login.text();
    expect(page).toContain('<h1>Nobody can sign in yet</h1>');
    expect(page).toContain('npm run --silent hash-secret -- user alice admin');
    expect(page).toContain('CELERY_AUTOPILOT_AUTH_USERS');
    expect(page).toMatch(/<link rel="stylesheet" href="\/ui\/static\/console\.css\?v=[0-9a-f]+">/);
  });

  it('keeps answering scripts with JSON 503 (fail closed): the API, the console and /login', async () => {
    for (const path of ['/api/workers', '/api/v1/workers', '/ui', '/login']) {
      const res = await service.fetch(path, { redirect: 'manual' });
      expect(res.status, path).toBe(503);
      expect(res.headers.get('content-type'), path).toContain('application/json');
    }
    const post = await service.fetch('/api/worker/pool/grow/celery@h?n=1', { method: 'POST', headers: HTML, redirect: 'manual' });
    expect(post.status).toBe(503);
  });

  it('has a landing page that leads to sign-in, and a favicon', async () => {
    const landing = await (await service.fetch('/', { headers: HTML })).text();
    expect(landing).toContain('<a class="signin-button" href="/login?next=%2Fui">Sign in to the operator console</a>');
    expect(landing).not.toContain('sign-in required');
    const icon = await service.fetch('/favicon.ico', { redirect: 'manual' });
    expect(icon.status).toBe(301);
    expect(icon.headers.get('location')).toBe('/ui/static/favicon.svg');
    const svg = await service.fetch('/ui/static/favicon.svg');
    expect(svg.status).toBe(200);
    expect(svg.headers.get('content-type')).toContain('image/svg+xml');
  });
});

describe('first run as the README says: a user from hash-secret in CELERY_AUTOPILOT_AUTH_USERS', () => {
  let service: ServiceProcess;
  let browser: HeadlessBrowser;
  beforeAll(async () => {
    const users = [userLine('alice', 'admin', PASSWORD), userLine('victor', 'viewer', `${PASSWORD}-v`)].join(',');
    service = await startServiceProcess(brokerConfig('first-run-user'), [], { CELERY_AUTOPILOT_AUTH_USERS: users });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
  });

  it('says at start where the console is and how people sign in, and never logs the hashes', () => {
    const line = startLine(service);
    expect(line.level).toBe(30);
    expect(line.msg).toBe(`celery-autopilot listening; console at ${service.url}/ui; sign-in: password (2 users); /metrics open`);
    expect(service.logs()).not.toMatch(/scrypt\$/);
    expect(service.logs()).not.toContain('authentication is not configured');
  });

  it('over HTTP: the form signs in, lands on /ui, and the landing page then knows who is in', async () => {
    const client = new WebClient();
    const ui = await client.fetch(`${service.url}/ui`, { headers: HTML });
    expect(ui.status).toBe(302);
    const form = await (await client.fetch(`${service.url}${ui.headers.get('location')}`, { headers: HTML })).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form)?.[1];
    expect(csrf).toBeTruthy();
    const signIn = await client.fetch(`${service.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', Origin: service.url },
      body: new URLSearchParams({ _csrf: csrf!, username: 'alice', password: PASSWORD }).toString(),
    });
    expect(signIn.status).toBe(303);
    // No next in the form: the console, not the landing page.
    expect(signIn.headers.get('location')).toBe('/ui');
    const workers = await client.fetch(`${service.url}/ui`, { headers: HTML });
    expect(workers.status).toBe(200);
    expect(await workers.text()).toContain('Signed in as <strong>alice</strong> (admin)');
    const landing = await (await client.fetch(`${service.url}/`, { headers: HTML })).text();
    expect(landing).toContain('Signed in as <strong>alice</strong> (admin)');
    expect(landing).toContain('Open the operator console');
    expect(landing).not.toMatch(/sign-in required|Sign in to the operator console/);
  });

  it('in Chromium: landing page → sign in → the console, with no page or asset error', async () => {
    const page = await browser.newPage();
    const watch = watchPage(page);
    await page.goto(`${service.url}/`);
    await browser.screenshot(page, 'first-run-landing');
    await page.getByRole('link', { name: 'Sign in to the operator console' }).click();
    await page.waitForURL(`${service.url}/login?next=%2Fui`);
    await browser.screenshot(page, 'first-run-login');
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(PASSWORD);
    await Promise.all([page.waitForURL(`${service.url}/ui`), page.getByRole('button', { name: 'Sign in' }).click()]);
    await browser.screenshot(page, 'first-run-console');
    expect(await page.locator('header .who').textContent()).toContain('Signed in as alice (admin)');
    await page.goto(`${service.url}/`);
    await browser.screenshot(page, 'first-run-landing-signed-in');
    expect(await page.locator('main').textContent()).toContain('Signed in as alice (admin)');
    expect(watch.problems).toEqual([]);
    console.log(`screenshots in ${browser.artifactsDir}`);
  });
});

describe('first run in Chromium with nothing configured', () => {
  let service: ServiceProcess;
  let browser: HeadlessBrowser;
  beforeAll(async () => {
    service = await startServiceProcess(brokerConfig('first-run-closed-browser'));
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.stop();
  });

  it('/ui shows the styled page that says what to set', async () => {
    const page = await browser.newPage();
    const watch = watchPage(page);
    const res = await page.goto(`${service.url}/ui`);
    expect(res?.status()).toBe(503);
    expect(new URL(page.url()).pathname).toBe('/login');
    await browser.screenshot(page, 'first-run-nobody');
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Nobody can sign in yet');
    expect(watch.problems).toEqual([]);
    console.log(`screenshots in ${browser.artifactsDir}`);
  });
});
