import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfToken, postFromPage, signIn, watchPage } from '../support/browser.js';
import { celeryInspect, inspectStats, sendTasks } from '../support/celery/client.js';
import { startWorker, uniqueNodename, type CeleryWorker } from '../support/celery/worker.js';
import { CONSOLE_USERS as USERS, startConsoleRig, type ConsoleRig } from '../support/console-rig.js';
import { waitFor } from '../support/exporter.js';

/**
 * The operator console in a real headless Chromium, against a real Celery worker on RabbitMQ:
 * a viewer, an operator and an admin walk through the workers, worker, queues and remediation
 * pages, act through the console's own script, and the worker shows the effect. The console's
 * CSP (no inline script or style) is in force: any violation fails the walk.
 */

const QUEUE = 'ui-work';
/** Listed in metrics.queues, consumed by nobody: its messages wait. */
const BACKLOG = 'ui-backlog';

describe('operator console in a browser (RabbitMQ)', () => {
  let rig: ConsoleRig;
  let worker: CeleryWorker;
  let exporter: ConsoleRig['exporter'];
  let browser: ConsoleRig['browser'];
  let broker: ConsoleRig['broker'];

  beforeAll(async () => {
    // broker_api: the queues page adds ready / unacknowledged from RabbitMQ's management API.
    rig = await startConsoleRig(
      'amqp',
      'operator-page',
      { broker_api: 'http://guest:guest@127.0.0.1:15672/api/', metrics: { queues: [BACKLOG] } },
      ['--metrics-queue-length-cache-seconds', '0'],
    );
    ({ exporter, browser, broker } = rig);
    worker = await startWorker({ brokerUrl: broker.celery.brokerUrl, nodename: uniqueNodename('ui'), queues: [QUEUE], concurrency: 2 });
    await waitFor('the exporter to see the worker up with 2 pool processes', () => {
      const w = exporter.service.workers.get(worker.nodename);
      return w && exporter.service.workers.isAlive(w) && w.processes === 2 && w.queues?.includes(QUEUE) ? true : undefined;
    });
    await sendTasks(broker.celery, [{ name: 'tasks.add', args: [2, 3], queue: QUEUE }]);
    await worker.waitForLog(/Task tasks\.add\[[^\]]+\] succeeded/);
  });

  afterAll(async () => {
    await worker?.stop();
    await rig?.stop();
  });

  const workerRow = (page: Page) => page.locator(`#workers tr[data-worker="${worker.nodename}"]`);
  const workerUrl = () => `${exporter.url}/ui/workers/${encodeURIComponent(worker.nodename)}`;

  /** Submits a console form and returns what the result panel shows once the API answered. */
  async function submit(
    page: Page,
    form: string,
  ): Promise<{ status: string | null; outcome: string | null; reply: Record<string, unknown> }> {
    const before = await page.locator('#result').textContent();
    await page.locator(`${form} button[type=submit]`).click();
    await page.locator('#result[data-status]').waitFor();
    expect(await page.locator('#result').textContent()).not.toBe(before);
    // The panel says it in words; the API's JSON is behind its "reply" toggle.
    const text = (await page.locator('#result pre.raw').textContent())!;
    return {
      status: await page.locator('#result').getAttribute('data-status'),
      outcome: await page.locator('#result').getAttribute('data-outcome'),
      reply: JSON.parse(text) as Record<string, unknown>,
    };
  }

  it('operator: signs in at /ui, opens the worker, grows its pool from the page; page and worker agree on 3 processes', async () => {
    const page = await browser.newPage();
    const watch = watchPage(page);
    await page.goto(`${exporter.url}/ui`);
    expect(page.url()).toBe(`${exporter.url}/login?next=%2Fui`);

    const ui = await signIn(page, exporter.url, 'olga', USERS.olga.password);
    expect(await ui.locator('header .who').textContent()).toContain('Signed in as olga (operator)');
    const row = workerRow(ui);
    expect(await row.locator('td.status').textContent()).toBe('up');
    expect(await row.locator('td.processes').textContent()).toBe('2');
    expect(await row.locator('td.queues').textContent()).toBe(QUEUE);
    await browser.screenshot(ui, 'console-workers');

    await Promise.all([ui.waitForURL(workerUrl()), row.getByRole('link', { name: worker.nodename }).click()]);
    expect(await ui.locator('#pool .processes').textContent()).toBe('2');
    expect(await ui.locator('#active-queues tbody tr td:first-child').allTextContents()).toEqual([QUEUE]);
    expect(await ui.locator('#registered tbody tr[data-task="tasks.add"] td.rate-limit').textContent()).toBe('none');
    expect(await ui.locator('#totals tbody').textContent()).toContain('tasks.add');

    const grown = await submit(ui, 'form[data-command="pool_grow"]');
    expect(grown.status).toBe('200');
    expect(grown.outcome).toBe('ok');
    expect(grown.reply.command).toBe('pool_grow');
    expect(grown.reply.results).toEqual([expect.objectContaining({ worker: worker.nodename, status: 'ok', confirmed: true })]);
    await browser.screenshot(ui, 'console-worker');

    // The worker page asks the worker afresh on every load.
    await ui.reload();
    expect(await ui.locator('#pool .processes').textContent()).toBe('3');
    const stats = await inspectStats(broker.celery, [worker.nodename]);
    expect(stats[worker.nodename]?.pool.processes).toHaveLength(3);
    // The list follows once the exporter re-inspected the worker (a grow marks it stale).
    await expect
      .poll(
        async () => {
          await ui.goto(`${exporter.url}/ui`);
          return workerRow(ui).locator('td.processes').textContent();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe('3');
    expect(watch.problems).toEqual([]);
  });

  it('operator: sets a rate limit on a registered task; the registered table and the worker show it', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'olga', USERS.olga.password);
    const watch = watchPage(ui);
    await ui.goto(workerUrl());
    const taskRow = '#registered tr[data-task="tasks.add"]';
    await ui.locator(`${taskRow} form[data-command="rate_limit"] input`).fill('10/m');
    const reply = await submit(ui, `${taskRow} form[data-command="rate_limit"]`);
    expect(reply).toMatchObject({ status: '200', outcome: 'ok' });
    expect(reply.reply.results).toEqual([expect.objectContaining({ worker: worker.nodename, status: 'ok', confirmed: true })]);
    await ui.reload();
    expect(await ui.locator(`${taskRow} td.rate-limit`).textContent()).toBe('10/m');
    const registered = await celeryInspect(broker.celery, 'registered', [worker.nodename], 1, { taskinfoitems: ['rate_limit'] });
    expect(JSON.stringify(registered)).toContain('tasks.add [rate_limit=10/m]');
    expect(watch.problems).toEqual([]);
  });

  it('operator and admin: a running task shows as active; the operator may revoke, only the admin terminates it', async () => {
    const [taskId] = await sendTasks(broker.celery, [{ name: 'tasks.sleep', args: [120], queue: QUEUE }]);
    const op = await signIn(await browser.newPage(), exporter.url, 'olga', USERS.olga.password);
    const activeRow = (p: Page) => p.locator(`#active tr[data-task-id="${taskId}"]`);
    await expect
      .poll(
        async () => {
          await op.goto(workerUrl());
          return activeRow(op).count();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(1);
    expect(await activeRow(op).locator('td').nth(1).textContent()).toBe('tasks.sleep');
    expect(await activeRow(op).locator('form[data-post] button[name="revoke"]').count()).toBe(1);
    expect(await activeRow(op).locator('button[name="terminate"]').count()).toBe(0);
    expect(await op.locator('form[data-command="shutdown"], form[data-command="pool_restart"]').count()).toBe(0);
    // Its task page offers Revoke too, but no Abort: this service has no result backend to abort through.
    await op.goto(`${exporter.url}/ui/tasks/${taskId}`);
    expect(await op.locator('#actions button[name="revoke"]').count()).toBe(1);
    expect(await op.locator('#actions button[name="abort"]').count()).toBe(0);

    const admin = await signIn(await browser.newPage(), exporter.url, 'ada', USERS.ada.password);
    const watch = watchPage(admin);
    await admin.goto(workerUrl());
    expect(await admin.locator('form[data-command="shutdown"]').count()).toBe(1);
    const terminated = await submit(admin, `#active tr[data-task-id="${taskId}"] form:has(button[name="terminate"])`);
    expect(terminated.status).toBe('200');
    expect(terminated.reply.message).toBe(`Revoked '${taskId}'`);
    await worker.waitForLog(`Terminating ${taskId}`);
    await expect
      .poll(
        async () => {
          await admin.reload();
          return activeRow(admin).count();
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(0);
    expect(await admin.locator('#revoked').textContent()).toContain(taskId);
    expect(watch.problems).toEqual([]);
  });

  it('operator: the queues page lists the queue and its worker; the remediation page shows the audited commands', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'olga', USERS.olga.password);
    const watch = watchPage(ui);
    await ui.getByRole('link', { name: 'Queues', exact: true }).click();
    await ui.waitForURL(`${exporter.url}/ui/queues`);
    const row = ui.locator(`#queues tr[data-queue="${QUEUE}"]`);
    expect(await row.locator('td.depth').textContent()).toMatch(/^\d+$/);
    expect(await row.locator('td.ready').textContent()).toMatch(/^\d+$/);
    await sendTasks(
      broker.celery,
      [0, 1, 2].map(() => ({ name: 'tasks.noop', queue: BACKLOG })),
    );
    // The management API's figures lag by its stats interval (5 s): reload until they show.
    await expect
      .poll(
        async () => {
          await ui.reload();
          const backlog = ui.locator(`#queues tr[data-queue="${BACKLOG}"]`);
          return [
            await backlog.locator('td.depth').textContent(),
            await backlog.locator('td.ready').textContent(),
            await backlog.locator('td.unacked').textContent(),
          ];
        },
        { timeout: 30_000, interval: 1000 },
      )
      .toEqual(['3', '3', '0']);
    expect(await row.getByRole('link', { name: worker.nodename }).getAttribute('href')).toBe(
      `/ui/workers/${encodeURIComponent(worker.nodename)}`,
    );
    await browser.screenshot(ui, 'console-queues');

    await ui.getByRole('link', { name: 'Remediation', exact: true }).click();
    await ui.waitForURL(`${exporter.url}/ui/remediation`);
    expect(await ui.locator('#kill-switch').textContent()).toContain('Remediation is not configured');
    const audited = await ui.locator('#audit tbody tr').allTextContents();
    expect(audited.some((t) => t.includes('basic:olga') && t.includes('pool_grow'))).toBe(true);
    expect(audited.some((t) => t.includes('basic:olga') && t.includes('rate_limit'))).toBe(true);
    await ui.getByRole('link', { name: 'remediation', exact: true }).click();
    expect(await ui.locator('#audit tbody tr[data-kind="control"]').count()).toBe(0);
    await browser.screenshot(ui, 'console-remediation');
    expect(watch.problems).toEqual([]);
  });

  it('pages and assets carry strict headers: a CSP without unsafe-inline, CSS and JS as files with their content types', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'olga', USERS.olga.password);
    const response = await ui.goto(workerUrl());
    const headers = response!.headers();
    expect(headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(headers['content-security-policy']).not.toMatch(/unsafe-inline/);
    expect(headers['cache-control']).toBe('no-store');
    const html = await ui.content();
    expect(html).not.toMatch(/<script>|<style|style="/);
    for (const [selector, attr, type] of [
      ['link[rel=stylesheet]', 'href', 'text/css; charset=utf-8'],
      ['script[src]', 'src', 'text/javascript; charset=utf-8'],
    ] as const) {
      const url = await ui.locator(selector).getAttribute(attr);
      const asset = await fetch(new URL(url!, exporter.url));
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toBe(type);
      expect(asset.headers.get('x-content-type-options')).toBe('nosniff');
    }
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
    const replay = () =>
      fetch(`${exporter.url}/ui`, { headers: { cookie: `${session!.name}=${session!.value}`, accept: 'text/html' }, redirect: 'manual' });
    expect((await replay()).status).toBe(200);
    await Promise.all([ui.waitForURL(`${exporter.url}/login`), ui.getByRole('button', { name: 'Log out' }).click()]);
    await ui.goto(`${exporter.url}/ui`);
    expect(ui.url()).toBe(`${exporter.url}/login?next=%2Fui`);
    // A copy of the old cookie is worthless too: the session was destroyed, not just forgotten.
    expect((await replay()).status).toBe(302);
  });

  it('viewer: walks every page and sees no control form; a forged POST with a valid CSRF token is refused with 403', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'vera', USERS.vera.password);
    const watch = watchPage(ui);
    expect(await workerRow(ui).locator('td.processes').textContent()).toMatch(/^[23]$/);
    for (const pathname of ['/ui', `/ui/workers/${encodeURIComponent(worker.nodename)}`, '/ui/queues', '/ui/remediation']) {
      await ui.goto(`${exporter.url}${pathname}`);
      expect(await ui.locator('h1').count()).toBe(1);
      expect(await ui.locator('form[data-command], form[data-post]').count()).toBe(0);
      expect(await ui.locator('#result').count()).toBe(0);
    }
    await ui.goto(workerUrl());
    expect(await ui.locator('#registered tbody tr[data-task="tasks.add"]').count()).toBe(1);
    expect(await ui.locator('#registered th').allTextContents()).not.toContain('change');

    const dryRun = { command: 'pool_grow', arguments: { n: 1 }, targets: { workers: [worker.nodename] }, dry_run: true };
    const refused = await postFromPage(ui, '/api/v1/actions', dryRun, { 'x-csrf-token': await csrfToken(ui) });
    expect(refused).toEqual({ status: 403, body: { error: expect.stringMatching(/needs the operator role/) } });
    const revoke = await postFromPage(
      ui,
      `/api/task/revoke/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`,
      {},
      { 'x-csrf-token': await csrfToken(ui) },
    );
    expect(revoke.status).toBe(403);
    expect(watch.problems).toEqual([]);
  });

  it('an unknown worker gets a 404 page and a malformed name a 400 page, both in the console frame', async () => {
    const ui = await signIn(await browser.newPage(), exporter.url, 'vera', USERS.vera.password);
    const unknown = await ui.goto(`${exporter.url}/ui/workers/${encodeURIComponent('nobody@nowhere')}`);
    expect(unknown!.status()).toBe(404);
    expect(await ui.locator('p.error').textContent()).toBe('No worker named nobody@nowhere has been seen.');
    const malformed = await ui.goto(`${exporter.url}/ui/workers/${encodeURIComponent('a*b@c')}`);
    expect(malformed!.status()).toBe(400);
    // The console's frame: Overview, Workers, Tasks, Queues, Remediation.
    expect(await ui.locator('nav a').count()).toBe(5);
  });
});
