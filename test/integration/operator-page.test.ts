import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/auth/index.js';
import { csrfToken, launchBrowser, postFromPage, signIn, type HeadlessBrowser } from '../support/browser.js';
import { inspectStats } from '../support/celery/client.js';
import { startWorker, uniqueNodename, type CeleryWorker } from '../support/celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';

/**
 * The operator page in a real headless Chromium, against a real Celery worker on RabbitMQ: sign
 * in through the form, act through the page's own script, and see the effect on the worker.
 */

const USERS = {
  olga: { password: 'olga-Operator-Pass-7', role: 'operator' },
  vera: { password: 'vera-Viewer-Pass-3', role: 'viewer' },
} as const;
const QUEUE = 'ui-work';

describe('operator page in a browser', () => {
  let broker: BrokerUnderTest;
  let exporter: RunningExporter;
  let worker: CeleryWorker;
  let browser: HeadlessBrowser;
  let configDir: string;

  beforeAll(async () => {
    broker = await isolatedBroker('amqp', 'operator-page');
    configDir = await mkdtemp(path.join(tmpdir(), 'operator-page-'));
    const users = await Promise.all(
      Object.entries(USERS).map(async ([username, u]) => ({ username, password_hash: await hashPassword(u.password), role: u.role })),
    );
    const configFile = path.join(configDir, 'config.yaml');
    await writeFile(configFile, stringify({ auth: { users }, audit: { file: '' } }));
    [exporter, worker, browser] = await Promise.all([
      startExporter([...broker.exporterArgs, '--config', configFile, '--metrics-queue-length-cache-seconds', '0']),
      startWorker({ brokerUrl: broker.celery.brokerUrl, nodename: uniqueNodename('ui'), queues: [QUEUE], concurrency: 2 }),
      launchBrowser(),
    ]);
    await waitFor('the exporter to see the worker up with 2 pool processes', () => {
      const w = exporter.service.workers.get(worker.nodename);
      return w && exporter.service.workers.isAlive(w) && w.processes === 2 && w.queues?.includes(QUEUE) ? true : undefined;
    });
  });

  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    await exporter?.stop();
    await broker?.cleanup();
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  const workerRow = (page: Page) => page.locator(`#workers tr[data-worker="${worker.nodename}"]`);

  it('operator: signs in, grows the pool from the page, and the row and the worker agree on 3 processes', async () => {
    const page = await browser.newPage();
    const scriptErrors: string[] = [];
    page.on('pageerror', (e) => scriptErrors.push(e.message));
    await page.goto(`${exporter.url}/ui`);
    expect(page.url()).toBe(`${exporter.url}/login?next=%2Fui`);

    const ui = await signIn(page, exporter.url, 'olga', USERS.olga.password);
    // The sign-out form sits inside the "signed in as" line (a <p> would be closed before it by the HTML parser).
    const signedIn = ui.locator('body > div', { hasText: 'Signed in as olga (operator)' });
    expect(await signedIn.getByRole('button', { name: 'Log out' }).count()).toBe(1);
    const row = workerRow(ui);
    expect(await row.locator('td').nth(1).textContent()).toBe('up');
    expect(await row.locator('td.processes').textContent()).toBe('2');
    expect(await ui.locator('#queues tbody tr td:first-child').allTextContents()).toContain(QUEUE);

    await row.locator('form[data-command="pool_grow"] button').click();
    const result = ui.locator('#result');
    await ui.locator('#result[data-status]').waitFor();
    expect(await result.getAttribute('data-status')).toBe('200');
    expect(await result.getAttribute('data-outcome')).toBe('ok');
    const shown = JSON.parse((await result.textContent())!.replace(/^200 /, '')) as { command: string; results: Array<Record<string, unknown>> };
    expect(shown.command).toBe('pool_grow');
    expect(shown.results).toEqual([expect.objectContaining({ worker: worker.nodename, status: 'ok', confirmed: true })]);
    const resultShot = await browser.screenshot(ui, 'operator-grow-result');

    // The exporter re-inspects a worker after a grow; the page shows it on a later load.
    await expect
      .poll(async () => {
        await ui.reload();
        return workerRow(ui).locator('td.processes').textContent();
      }, { timeout: 15_000, interval: 500 })
      .toBe('3');
    const stats = await inspectStats(broker.celery, [worker.nodename]);
    expect(stats[worker.nodename]?.pool.processes).toHaveLength(3);
    expect(scriptErrors).toEqual([]);
    const reloadedShot = await browser.screenshot(ui, 'operator-after-grow');
    console.info(`operator page screenshots: ${resultShot} ${reloadedShot}`);
  });

  it('operator: a POST from the page without the CSRF token is refused with 403', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'olga', USERS.olga.password);
    const dryRun = { command: 'pool_grow', arguments: { n: 1 }, targets: { workers: [worker.nodename] }, dry_run: true };
    const refused = await postFromPage(ui, '/api/v1/actions', dryRun);
    expect(refused).toEqual({ status: 403, body: { error: expect.stringMatching(/^missing CSRF token/) } });
    // The same request with the token goes through, so the token was the only difference.
    expect((await postFromPage(ui, '/api/v1/actions', dryRun, { 'x-csrf-token': await csrfToken(ui) })).status).toBe(200);
  });

  it('operator: logging out ends the session, in the browser and on the server', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'olga', USERS.olga.password);
    const session = (await ui.context().cookies()).find((c) => c.name === 'celery_autopilot_session');
    expect(session).toBeDefined();
    const replay = () => fetch(`${exporter.url}/ui`, { headers: { cookie: `${session!.name}=${session!.value}`, accept: 'text/html' }, redirect: 'manual' });
    expect((await replay()).status).toBe(200);
    await Promise.all([ui.waitForURL(`${exporter.url}/login`), ui.getByRole('button', { name: 'Log out' }).click()]);
    await ui.goto(`${exporter.url}/ui`);
    expect(ui.url()).toBe(`${exporter.url}/login?next=%2Fui`);
    // A copy of the old cookie is worthless too: the session was destroyed, not just forgotten.
    expect((await replay()).status).toBe(302);
  });

  it('viewer: sees the tables but no controls, and the API refuses a command with 403', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'vera', USERS.vera.password);
    expect(await workerRow(ui).locator('td.processes').textContent()).toMatch(/^[23]$/);
    expect(await ui.locator('#queues tbody tr td:first-child').allTextContents()).toContain(QUEUE);
    expect(await ui.locator('form[data-command]').count()).toBe(0);
    expect(await ui.locator('#workers th').allTextContents()).not.toContain('actions');
    expect(await ui.locator('#result').count()).toBe(0);

    const dryRun = { command: 'pool_grow', arguments: { n: 1 }, targets: { workers: [worker.nodename] }, dry_run: true };
    const refused = await postFromPage(ui, '/api/v1/actions', dryRun, { 'x-csrf-token': await csrfToken(ui) });
    expect(refused).toEqual({ status: 403, body: { error: expect.stringMatching(/needs the operator role/) } });
  });
});
