import { access, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium (scripts/prereqs.sh installs it): playwright-core never downloads a browser,
 * and the machines reach no browser download site anyway.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Loopback only: nothing in the browser may reach out (updates, sync, field trials), so a run
 * without network behaves like one with it. Playwright itself adds --headless, --no-sandbox
 * (root in a container has no user namespaces for the sandbox) and a fresh --user-data-dir per
 * launch, removed on close.
 */
const CHROMIUM_ARGS = [
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface HeadlessBrowser {
  readonly browser: Browser;
  /** Where screenshots go; kept after the run so a person can look at them. */
  readonly artifactsDir: string;
  /** A page in a context of its own (cookies, storage): one per signed-in person. */
  newPage(): Promise<Page>;
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<HeadlessBrowser> {
  await access(CHROMIUM).catch(() => {
    throw new Error(`no Chromium at ${CHROMIUM}: run scripts/prereqs.sh (apt-get install -y chromium) or set CHROMIUM_PATH`);
  });
  const artifactsDir = await mkdtemp(path.join(tmpdir(), 'celery-autopilot-browser-'));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
  });
  const contexts: BrowserContext[] = [];
  return {
    browser,
    artifactsDir,
    newPage: async () => {
      const context = await browser.newContext();
      // Every wait in a test is bounded well below the suite's timeout.
      context.setDefaultTimeout(15_000);
      contexts.push(context);
      return context.newPage();
    },
    screenshot: async (page, name) => {
      const file = path.join(artifactsDir, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
    close: async () => {
      await Promise.allSettled(contexts.map((c) => c.close()));
      await browser.close();
    },
  };
}

/**
 * Signs in through the login page as a person would: /ui sends an anonymous browser to
 * /login?next=/ui, and the form brings it back there. `prefix` is the url_prefix the browser
 * sees (behind a reverse proxy): both pages must stay under it.
 */
export async function signIn(page: Page, baseUrl: string, username: string, password: string, prefix = ''): Promise<Page> {
  await page.goto(`${baseUrl}${prefix}/ui`);
  const login = new URL(page.url());
  const next = login.searchParams.get('next');
  if (login.pathname !== `${prefix}/login` || (next !== `${prefix}/ui` && next !== '/ui')) {
    throw new Error(`expected a redirect to ${prefix}/login?next=${prefix}/ui, landed on ${page.url()}`);
  }
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL(`${baseUrl}${prefix}/ui`), page.getByRole('button', { name: 'Sign in' }).click()]);
  return page;
}

/**
 * What went wrong in a page that a screenshot would not show: script errors, and anything the
 * browser refused under the Content-Security-Policy (an inline script or style="" slipping in).
 */
export function watchPage(page: Page): { problems: string[] } {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('console', (m) => {
    // Failed loads are judged below by what failed: an API refusal a test provoked is not a fault.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console error: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && ['stylesheet', 'script', 'image', 'font'].includes(r.request().resourceType()))
      problems.push(`${r.status()} for ${r.url()}`);
  });
  // Accept the console's "are you sure?" prompts (shutdown, terminate): the test clicked on purpose.
  page.on('dialog', (d) => {
    d.accept().catch((e: unknown) => problems.push(`dialog not accepted: ${String(e)}`));
  });
  return { problems };
}

/** The page's CSRF token, as its own script reads it. */
export function csrfToken(page: Page): Promise<string> {
  return page
    .locator('meta[name=csrf-token]')
    .getAttribute('content')
    .then((t) => {
      if (!t) throw new Error('the page carries no CSRF token');
      return t;
    });
}

/** A fetch from inside the page (its cookies, its Origin): what the page's own script could send. */
export async function postFromPage(
  page: Page,
  pathname: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown }> {
  return page.evaluate(
    async ({ pathname, body, headers }) => {
      const res = await fetch(pathname, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json().catch(() => null)) as unknown };
    },
    { pathname, body, headers },
  );
}
