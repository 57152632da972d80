import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { launchBrowser, signIn, watchPage, type HeadlessBrowser } from '../support/browser.js';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, uniqueNodename, type CeleryWorker } from '../support/celery/worker.js';
import { startConsoleRig, type ConsoleRig } from '../support/console-rig.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { FakeGitHub } from '../support/fake-github.js';
import { notification, postWebhook } from '../support/alertmanager.js';
import { startPrefixProxy } from '../support/prefix-proxy.js';

/**
 * url_prefix behind a reverse proxy that publishes only the sub-path, on Redis: signed in
 * through the proxy, every link, form action, asset and redirect of every console page stays
 * under the prefix and resolves, and the console's script posts actions under it. Both proxy
 * set-ups are walked: the path passed on unchanged, and the prefix stripped.
 */

const PREFIX = '/ops/celery';
const RULES = fileURLToPath(new URL('../fixtures/remediation/faults.yml', import.meta.url));
const TOKEN = 'console-prefix-webhook-token';

describe('operator console under url_prefix behind a reverse proxy (Redis)', () => {
  let rig: ConsoleRig;
  let worker: CeleryWorker;
  let exporter: ConsoleRig['exporter'];
  let browser: ConsoleRig['browser'];
  let taskId: string;
  let proxy: Awaited<ReturnType<typeof startPrefixProxy>>;

  beforeAll(async () => {
    // The proxy comes first: behind a proxy, auth.public_url (its address) is the origin that
    // may post to us (docs/security.md: the expected Origin), so the service's config needs it.
    proxy = await startPrefixProxy(() => rig.exporter.url, PREFIX, false);
    // Written as a user might: no leading slash, a trailing one. The schema normalises it.
    rig = await startConsoleRig('redis', 'console-prefix', {
      url_prefix: 'ops/celery/',
      auth: { public_url: `${proxy.url}${PREFIX}/` },
      // Dry-run remediation: decisions are made and audited, nothing is sent to the worker.
      remediation: { enabled: true, dry_run: true, rules_file: RULES, webhook: { bearer_token: TOKEN } },
    });
    ({ exporter, browser } = rig);
    worker = await startWorker({
      brokerUrl: rig.broker.celery.brokerUrl,
      transportOptions: rig.broker.celery.transportOptions,
      nodename: uniqueNodename('prefix'),
      concurrency: 1,
    });
    await waitFor('the exporter to see the worker with its queues', () => {
      const w = exporter.service.workers.get(worker.nodename);
      return w && exporter.service.workers.isAlive(w) && w.queues?.length ? true : undefined;
    });
    [taskId] = (await sendTasks(rig.broker.celery, [{ name: 'tasks.add', args: [1, 2] }])) as [string];
    await waitFor('the task to succeed', () => (exporter.service.taskStore!.get(taskId)?.state === 'SUCCESS' ? true : undefined));
  });

  afterAll(async () => {
    await worker?.stop();
    await rig?.stop();
    await proxy?.close();
  });

  /** Every URL a page points to, by kind; GET targets are fetched with the page's cookies. */
  async function targets(page: Page): Promise<{ get: string[]; post: string[]; scripted: string[] }> {
    const attr = (selector: string, name: string) =>
      page.locator(selector).evaluateAll((els, n) => els.map((e) => e.getAttribute(n) ?? ''), name);
    return {
      get: [...(await attr('a[href]', 'href')), ...(await attr('link[href]', 'href')), ...(await attr('script[src]', 'src'))],
      post: await attr('form[action]', 'action'),
      scripted: await attr('form[data-post]', 'data-post'),
    };
  }

  for (const strip of [false, true]) {
    it(`${strip ? 'a proxy that strips the prefix' : 'a proxy that passes the path on'}: every link of every page resolves under ${PREFIX}, and an action goes through`, async () => {
      proxy.strip = strip;
      {
        const page = await browser.newPage();
        const watch = watchPage(page);
        await signIn(page, proxy.url, 'olga', rig.passwords.olga, PREFIX);
        const seen = new Set<string>();
        const pages = [
          `${PREFIX}/ui`,
          `${PREFIX}/ui/workers/${encodeURIComponent(worker.nodename)}`,
          `${PREFIX}/ui/queues`,
          `${PREFIX}/ui/remediation`,
          `${PREFIX}/ui/tasks`,
          `${PREFIX}/ui/tasks/${taskId}`,
          `${PREFIX}/`,
        ];
        for (const pathname of pages) {
          expect((await page.goto(`${proxy.url}${pathname}`))!.status()).toBe(200);
          const { get, post, scripted } = await targets(page);
          expect(get.length).toBeGreaterThan(0);
          for (const href of [...get, ...post]) expect(href, `on ${pathname}`).toMatch(new RegExp(`^${PREFIX}/`));
          // Paths the script posts to are API paths: console.js puts the prefix in front.
          for (const p of scripted) expect(p).toMatch(/^\/api\//);
          for (const href of get) seen.add(href);
        }
        for (const href of seen) {
          const res = await page.request.get(`${proxy.url}${href}`, { headers: { accept: 'text/html' }, maxRedirects: 0 });
          expect(res.status(), href).toBe(200);
        }
        expect([...seen]).toEqual(
          expect.arrayContaining([
            `${PREFIX}/ui/queues`,
            `${PREFIX}/ui/workers/${encodeURIComponent(worker.nodename)}`,
            `${PREFIX}/metrics`,
          ]),
        );

        await page.goto(`${proxy.url}${PREFIX}/ui/workers/${encodeURIComponent(worker.nodename)}`);
        await page.locator('form[data-command="pool_grow"] button').click();
        await page.locator('#result[data-status]').waitFor();
        expect(await page.locator('#result').getAttribute('data-status')).toBe('200');
        expect(await page.locator('#result').getAttribute('data-outcome')).toBe('ok');
        if (!strip) await browser.screenshot(page, 'console-worker-redis');

        await Promise.all([page.waitForURL(`${proxy.url}${PREFIX}/login`), page.getByRole('button', { name: 'Log out' }).click()]);
        expect(watch.problems).toEqual([]);
        // Nothing was asked for outside the prefix, but the browser's own /favicon.ico guess on
        // the pages without an icon link (sign-in and landing page): no link of ours.
        expect(proxy.requests.filter((u) => !u.startsWith(`${PREFIX}/`) && u !== PREFIX && u !== '/favicon.ico')).toEqual([]);
      }
    });
  }

  it('remediation page: an Alertmanager decision shows up, and an admin flips the kill switch from the page', async () => {
    proxy.strip = false;
    try {
      const webhook = await postWebhook(
        proxy.url,
        notification([{ labels: { alertname: 'HostBusy', hostname: worker.nodename } }]),
        TOKEN,
        `${PREFIX}/api/v1/alertmanager`,
      );
      expect(webhook.status).toBe(200);
      await waitFor('the decision to be audited', () => (exporter.service.audit.recent('remediation', 10).length > 0 ? true : undefined));
      const page = await signIn(await browser.newPage(), proxy.url, 'ada', rig.passwords.ada, PREFIX);
      const watch = watchPage(page);
      await page.goto(`${proxy.url}${PREFIX}/ui/remediation`);
      const decision = page.locator('#decisions tbody tr').first();
      expect(await decision.locator('td').nth(1).textContent()).toBe('grow-named-worker');
      expect(await decision.locator('td').nth(3).textContent()).toContain('dry_run');
      expect(await decision.locator('td').nth(4).textContent()).toBe(worker.nodename);
      expect(await page.locator('#rules tbody tr td:first-child').allTextContents()).toContain('grow-named-worker');
      expect(await page.locator('#kill-switch').textContent()).toContain('kill switch off');

      await page.locator('#kill-switch button[name="kill-switch"]').click();
      await page.locator('#result[data-status]').waitFor();
      expect(await page.locator('#result').getAttribute('data-status')).toBe('200');
      expect(exporter.service.remediator!.killSwitch).toBe(true);
      await page.reload();
      expect(await page.locator('#kill-switch').textContent()).toContain('kill switch ON');
      expect(await page.locator('#audit tbody tr[data-kind="admin"]').first().textContent()).toContain('basic:ada');
      await rig.browser.screenshot(page, 'console-remediation');
      expect(watch.problems).toEqual([]);

      // An operator sees the same page without the switch.
      const op = await signIn(await browser.newPage(), proxy.url, 'olga', rig.passwords.olga, PREFIX);
      await op.goto(`${proxy.url}${PREFIX}/ui/remediation`);
      expect(await op.locator('#kill-switch button').count()).toBe(0);
    } finally {
      await exporter.service.remediator?.setKillSwitch(false);
    }
  });

  it('without a proxy, the prefixed and the bare paths both answer, and a redirect to sign in keeps the prefix', async () => {
    const prefixed = await fetch(`${exporter.url}${PREFIX}/ui`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(prefixed.status).toBe(302);
    expect(prefixed.headers.get('location')).toBe(`${PREFIX}/login?next=${encodeURIComponent(`${PREFIX}/ui`)}`);
    const bare = await fetch(`${exporter.url}/ui`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(bare.headers.get('location')).toBe(`${PREFIX}/login?next=${encodeURIComponent('/ui')}`);
    // A refusal page for a browser (wrong credentials) links to sign-in under the prefix too.
    const refused = await fetch(`${exporter.url}${PREFIX}/ui`, {
      headers: { accept: 'text/html', authorization: `Basic ${Buffer.from('olga:wrong').toString('base64')}` },
    });
    expect(refused.status).toBe(401);
    expect(await refused.text()).toContain(`<a href="${PREFIX}/login">Sign in</a>`);
    const css = await fetch(`${exporter.url}${PREFIX}/ui/static/console.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });
});

describe('GitHub sign-in under url_prefix behind a proxy that passes only the prefix (task store off)', () => {
  let github: FakeGitHub;
  let exporter: RunningExporter | undefined;
  let proxy: Awaited<ReturnType<typeof startPrefixProxy>>;
  let broker: BrokerUnderTest;
  let browser: HeadlessBrowser;
  let configDir: string;

  beforeAll(async () => {
    github = await FakeGitHub.start({
      clientId: 'console-client',
      clientSecret: 'console-client-secret-8d2f',
      users: [{ login: 'octocat', id: 1 }],
    });
    // The proxy comes first: public_url, in the service's config, is its address.
    proxy = await startPrefixProxy(() => exporter!.url, PREFIX, true);
    broker = await isolatedBroker('redis', 'console-github');
    configDir = await mkdtemp(path.join(tmpdir(), 'console-github-'));
    const configFile = path.join(configDir, 'config.yaml');
    const auth = {
      public_url: `${proxy.url}${PREFIX}/`,
      github: {
        client_id: github.clientId,
        client_secret: 'console-client-secret-8d2f',
        ...github.urls,
        allow: [{ user: 'octocat', role: 'operator' }],
      },
    };
    // The task store off, too: the console's task pages then say so instead of failing.
    await writeFile(configFile, stringify({ url_prefix: PREFIX, auth, audit: { file: '' }, tasks: { enabled: false } }));
    [exporter, browser] = await Promise.all([startExporter([...broker.exporterArgs, '--config', configFile]), launchBrowser()]);
  });

  afterAll(async () => {
    await browser?.close();
    await exporter?.stop();
    await proxy?.close();
    await github?.close();
    await broker?.cleanup();
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  it('GitHub sends the browser back to <public_url>/auth/github/callback under the prefix, and it lands on the console', async () => {
    const page = await browser.newPage();
    await page.goto(`${proxy.url}${PREFIX}/ui`);
    expect(new URL(page.url()).pathname).toBe(`${PREFIX}/login`);
    github.signInAs('octocat');
    await Promise.all([page.waitForURL(`${proxy.url}${PREFIX}/ui`), page.getByRole('link', { name: 'Sign in with GitHub' }).click()]);
    expect(await page.locator('header .who').textContent()).toContain('Signed in as octocat (operator)');
    expect(proxy.requests.some((u) => u.startsWith(`${PREFIX}/auth/github/callback?`))).toBe(true);
    expect(proxy.requests.filter((u) => !u.startsWith(`${PREFIX}/`) && u !== '/favicon.ico')).toEqual([]);

    const tasks = await page.goto(`${proxy.url}${PREFIX}/ui/tasks`);
    expect(tasks!.status()).toBe(503);
    expect(await page.locator('p.error').textContent()).toBe('The task store is off (tasks.enabled: false): task pages need it.');
    // The console frame: Overview, Workers, Tasks, Queues, Remediation.
    expect(await page.locator('nav a').count()).toBe(5);
  });
});
