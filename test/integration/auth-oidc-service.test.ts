import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/auth/index.js';
import { launchBrowser, watchPage, type HeadlessBrowser } from '../support/browser.js';
import { waitFor } from '../support/exporter.js';
import { Browser, csrfFromPage, FakeGitHub } from '../support/fake-github.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { TestOidcProvider, type TestOidcUser } from '../support/oidc-provider.js';
import { startSecureService, type SecureService } from '../support/secure-service.js';
import { freePort, issueServerCertificate, makeCertificates, type TestCertificates } from '../support/tls-endpoints.js';
import { WebClient } from '../support/web-client.js';

/**
 * OpenID Connect in the real service (its own RabbitMQ vhost), beside a password user and GitHub:
 * one issuer is unreachable when the service starts, so the service must start anyway, every
 * other way in must work, the button must say the provider is unavailable, and discovery must be
 * retried until the issuer is up. Then a person walks the login page in Chromium.
 */

const PASSWORD = 'alice-Correct-Horse-1';
const users: TestOidcUser[] = [
  { sub: 'alice', email: 'alice@acme.com', email_verified: true, groups: ['sre'], realm_access: { roles: ['celery-admin'] } },
  { sub: 'mallory', email: 'mallory@evil.example', email_verified: true, groups: ['sre'], realm_access: { roles: ['celery-admin'] } },
];

let certs: TestCertificates;
let tls: { cert: string; key: string };
let vhost: Awaited<ReturnType<typeof createVhost>>;
let github: FakeGitHub;
let okta: TestOidcProvider;
let keycloak: TestOidcProvider | undefined;
let keycloakPort: number;
let service: SecureService;
let browser: HeadlessBrowser;
let page: Page;
let problems: string[];
const clients: WebClient[] = [];

beforeAll(async () => {
  [certs, vhost] = await Promise.all([makeCertificates(), createVhost(uniqueId('auth-oidc-svc'))]);
  tls = await issueServerCertificate(certs, 'issuer', 'IP:127.0.0.1');
  const [port, kcPort] = [await freePort(), await freePort()];
  keycloakPort = kcPort;
  const url = `http://127.0.0.1:${port}`;
  github = await FakeGitHub.start({
    clientId: 'gh-client',
    clientSecret: 'github-client-secret-4f9d2a',
    users: [{ login: 'octocat', id: 1 }],
  });
  okta = await TestOidcProvider.start({
    certFile: tls.cert,
    keyFile: tls.key,
    clientId: 'autopilot',
    clientSecret: 'okta-client-secret-7d1f0c9e',
    redirectUris: [`${url}/auth/oidc/okta/callback`],
    users,
    claimsInIdToken: true,
  });
  const common = { client_id: 'autopilot', ca_file: certs.caFile, allow_email_regex: '.*@acme\\.com' };
  service = await startSecureService(
    {
      broker_url: vhost.url,
      auth: {
        public_url: url,
        users: [{ username: 'alice', password_hash: await hashPassword(PASSWORD), role: 'admin' }],
        github: {
          client_id: github.clientId,
          client_secret: github.clientSecret,
          ...github.urls,
          allow: [{ user: 'octocat', role: 'viewer' }],
        },
        oidc: [
          {
            id: 'okta',
            name: 'Okta',
            issuer_url: okta.issuer,
            client_secret: 'okta-client-secret-7d1f0c9e',
            ...common,
            roles: { claim: 'groups', operator: ['sre'] },
          },
          {
            id: 'keycloak',
            name: 'Keycloak',
            // Nothing listens here yet.
            issuer_url: `https://127.0.0.1:${kcPort}`,
            client_secret: 'keycloak-client-secret-51ab2e',
            ...common,
            roles: { claim: 'realm_access.roles', admin: ['celery-admin'] },
          },
        ],
      },
    },
    { port },
  );
  browser = await launchBrowser();
  // Chromium does not know the suite's CA: the provider's pages are trusted in this context only
  // (the service itself checks the issuer with ca_file).
  const context = await browser.browser.newContext({ ignoreHTTPSErrors: true });
  context.setDefaultTimeout(15_000);
  page = await context.newPage();
  ({ problems } = watchPage(page));
});

afterAll(async () => {
  await browser?.close();
  await Promise.allSettled(clients.map((c) => c.close()));
  await service?.stop();
  await Promise.allSettled([okta?.close(), keycloak?.close(), github?.close()]);
  await vhost?.remove();
  await certs?.remove();
});

type Styles = { getComputedStyle(e: unknown): Record<string, string> };
/** One computed style property of the element, read in the page (the suite is compiled without DOM types). */
const style = (locator: Locator, property: string) =>
  locator.evaluate((e, p) => (globalThis as unknown as Styles).getComputedStyle(e)[p], property);

const discoveryFailures = () =>
  service.logs
    .lines()
    .filter((l) => l.msg === 'OpenID provider discovery failed: its sign-in is unavailable until it succeeds' && l.provider === 'keycloak');

async function oidcSignIn(id: string, provider: TestOidcProvider, sub: string): Promise<{ client: WebClient; res: Response }> {
  const client = new WebClient({ caFile: certs.caFile });
  clients.push(client);
  provider.signInAs(sub);
  const { stopped } = await client.follow(`${service.url}/auth/oidc/${id}?next=/ui`, (u) => u.includes(`/auth/oidc/${id}/callback`));
  return { client, res: await client.fetch(stopped!) };
}

describe('an issuer unreachable at start', () => {
  it('the service starts; the login page says the provider is unavailable; discovery is retried', async () => {
    await waitFor('two discovery attempts for keycloak', () => (discoveryFailures().length >= 2 ? true : undefined), 20_000);
    expect(discoveryFailures()[0]).toMatchObject({ issuer: `https://127.0.0.1:${keycloakPort}`, retryInSeconds: 1 });
    expect(discoveryFailures()[1]).toMatchObject({ retryInSeconds: 2 });
    expect(String(discoveryFailures()[0]!.err)).toContain('ECONNREFUSED');
    const html = await (await fetch(`${service.url}/login`)).text();
    expect(html).toContain(
      '<span class="signin-button unavailable" aria-disabled="true">Sign in with Keycloak <small>unavailable: its issuer cannot be reached yet (retrying)</small></span>',
    );
    expect(html).toContain('<a class="signin-button" href="/auth/oidc/okta?next=%2Fui">Sign in with Okta</a>');
    expect(html).toContain('<a class="signin-button" href="/auth/github?next=%2Fui">Sign in with GitHub</a>');
    const button = await fetch(`${service.url}/auth/oidc/keycloak`, { redirect: 'manual' });
    expect(button.status).toBe(503);
    expect(await button.text()).toContain(
      'Sign-in with Keycloak is unavailable: its issuer could not be reached yet (retrying in the background).',
    );
    await page.goto(`${service.url}/login`);
    expect(await page.locator('.signin-button.unavailable').textContent()).toBe(
      'Sign in with Keycloak unavailable: its issuer cannot be reached yet (retrying)',
    );
    expect(await style(page.locator('.signin-button.unavailable'), 'cursor')).toBe('not-allowed');
    await browser.screenshot(page, 'signin-provider-unavailable');
    expect(problems).toEqual([]);
  });

  it('every other way in works meanwhile: the other OpenID provider, GitHub, a password, an API route', async () => {
    const { client, res } = await oidcSignIn('okta', okta, 'alice');
    expect(res.status).toBe(303);
    expect((await client.fetch(`${service.url}/api/v1/audit?limit=1`)).status).toBe(200);

    const gh = new Browser();
    const start = await gh.fetch(`${service.url}/auth/github`);
    github.signInAs('octocat');
    const consent = await fetch(start.headers.get('location')!, { redirect: 'manual' });
    expect((await gh.fetch(consent.headers.get('location')!)).status).toBe(303);

    const pw = new Browser();
    const html = await (await pw.fetch(`${service.url}/login`)).text();
    const form = await pw.postForm(
      `${service.url}/login`,
      { username: 'alice', password: PASSWORD, _csrf: csrfFromPage(html), next: '/' },
      service.url,
    );
    expect(form.status).toBe(303);
    expect((await fetch(`${service.url}/-/healthy`)).status).toBe(200);
  });

  it('once the issuer is up, the retry finds it and its sign-in works', async () => {
    keycloak = await TestOidcProvider.start({
      certFile: tls.cert,
      keyFile: tls.key,
      clientId: 'autopilot',
      clientSecret: 'keycloak-client-secret-51ab2e',
      redirectUris: [`${service.url}/auth/oidc/keycloak/callback`],
      users,
      port: keycloakPort,
    });
    await waitFor(
      'keycloak discovered by a retry',
      async () =>
        (await (await fetch(`${service.url}/login`)).text()).includes('href="/auth/oidc/keycloak?next=%2Fui"') ? true : undefined,
      45_000,
    );
    expect(service.logs.lines().some((l) => l.msg === 'OpenID provider discovered: sign-in available' && l.provider === 'keycloak')).toBe(
      true,
    );
    const { client, res } = await oidcSignIn('keycloak', keycloak, 'alice');
    expect(res.status).toBe(303);
    expect((await client.fetch(`${service.url}/api/v1/audit?limit=1`)).status).toBe(200);
  });
});

describe('the login page in Chromium', () => {
  it('shows GitHub and both OpenID providers as buttons and the password form, styled, with nothing refused by the CSP', async () => {
    await page.goto(`${service.url}/ui`);
    expect(new URL(page.url()).pathname).toBe('/login');
    const buttons = page.locator('.signin-providers .signin-button');
    expect(await buttons.allTextContents()).toEqual(['Sign in with GitHub', 'Sign in with Okta', 'Sign in with Keycloak']);
    expect(await page.getByRole('link', { name: 'Sign in with Okta' }).getAttribute('href')).toBe('/auth/oidc/okta?next=%2Fui');
    expect(await page.getByLabel('Username').isVisible()).toBe(true);
    // The console's stylesheet applies: the buttons are blocks, the page a centred card.
    expect(await style(buttons.first(), 'display')).toBe('block');
    expect(await style(page.locator('main.signin'), 'borderTopStyle')).toBe('solid');
    await browser.screenshot(page, 'signin-providers');
    expect(problems).toEqual([]);
  });

  it('Okta: the button goes to the provider and back to the page asked for, signed in with the mapped role', async () => {
    okta.signInAs('alice');
    await Promise.all([page.waitForURL(`${service.url}/ui`), page.getByRole('link', { name: 'Sign in with Okta' }).click()]);
    expect(await page.locator('header .who').textContent()).toContain('Signed in as okta/alice@acme.com (operator)');
    await browser.screenshot(page, 'signin-okta-console');
    await Promise.all([page.waitForURL(/\/login$/), page.getByRole('button', { name: 'Log out' }).click()]);
    expect(problems).toEqual([]);
  });

  it('a refused person sees why on the login page, and can pick another way in', async () => {
    await page.goto(`${service.url}/login?next=/ui`);
    keycloak!.signInAs('mallory');
    await Promise.all([
      page.waitForURL(/\/auth\/oidc\/keycloak\/callback/),
      page.getByRole('link', { name: 'Sign in with Keycloak' }).click(),
    ]);
    expect(await page.getByRole('alert').textContent()).toBe(
      'Keycloak account mallory@evil.example: this e-mail address is not on the allow-list here. Use another account, or ask an administrator for access.',
    );
    expect(await page.locator('.signin-providers .signin-button').count()).toBe(3);
    await browser.screenshot(page, 'signin-refused');
    expect(problems).toEqual([]);
  });
});
