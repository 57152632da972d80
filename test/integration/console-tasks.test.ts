import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signIn, watchPage } from '../support/browser.js';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { startConsoleRig, type ConsoleRig } from '../support/console-rig.js';
import { uniqueId } from '../support/isolation.js';
import { waitFor } from '../support/exporter.js';

/**
 * The task pages in Chromium against a real worker on Redis: list with filters, search, sort,
 * paging and live refresh; a page per task with payload, traceback, timeline, family and the
 * stop buttons by role. Everything the broker says is hostile here: the worker's name, a task
 * name, args, a result and an exception text are markup that would run if not escaped.
 */

// No single quote: Python's repr (args, exceptions) would escape it and the text would differ.
const XSS = '"><img src=x onerror="document.title=`owned`"><script>document.title=`owned`</script>';
const HOSTILE_TASK = "tasks.<svg/onload=document.title='owned'>";
const RESULT_BACKEND = 'redis://127.0.0.1:6379/3';

describe('operator console task pages (Redis), with hostile names and payloads', () => {
  let rig: ConsoleRig;
  let worker: CeleryWorker;
  const ids: Record<'add' | 'fail' | 'hostile' | 'parent' | 'sleep', string> = { add: '', fail: '', hostile: '', parent: '', sleep: '' };

  beforeAll(async () => {
    // A result backend, so the page's Abort (AbortableTask) has somewhere to write.
    rig = await startConsoleRig('redis', 'console-tasks', { tasks: { result_backend: RESULT_BACKEND } });
    // A worker name that is markup too: the name part may hold anything but @, % and spaces.
    worker = await startWorker({
      brokerUrl: rig.broker.celery.brokerUrl,
      transportOptions: rig.broker.celery.transportOptions,
      nodename: `${uniqueId('w')}"><img/src=x/onerror=document.title='owned'>@cap`,
      concurrency: 2,
      env: { CAP_RESULT_BACKEND: RESULT_BACKEND },
    });
    const celery = { ...rig.broker.celery, sendSentEvent: true };
    [ids.add, ids.fail, ids.hostile, ids.parent] = (await sendTasks(celery, [
      { name: 'tasks.add', args: [XSS, '</pre><b>bold</b>'] },
      { name: 'tasks.fail_with', args: [`</pre>${XSS}`] },
      { name: HOSTILE_TASK, kwargs: { [XSS]: XSS } },
      { name: 'tasks.spawn_child' },
    ])) as [string, string, string, string];
    await waitFor('the four tasks and the child to finish', () => {
      const store = rig.exporter.service.taskStore!;
      const done = [ids.add, ids.fail, ids.hostile, ids.parent].every((id) => ['SUCCESS', 'FAILURE'].includes(store.get(id)?.state ?? ''));
      return done && store.children(ids.parent).length === 1 && store.get(store.children(ids.parent)[0]!)?.state === 'SUCCESS'
        ? true
        : undefined;
    });
  });

  afterAll(async () => {
    await worker?.stop();
    await rig?.stop();
  });

  const open = async (user: 'olga' | 'vera' | 'ada', pathname: string): Promise<{ page: Page; problems: string[] }> => {
    const page = await signIn(await rig.browser.newPage(), rig.exporter.url, user, rig.passwords[user]);
    const { problems } = watchPage(page);
    await page.goto(`${rig.exporter.url}${pathname}`);
    return { page, problems };
  };

  /** Nothing from the broker ran: no title change, no injected element. */
  async function expectInert(page: Page): Promise<void> {
    expect(await page.title()).not.toBe('owned');
    // The console draws its own charts as SVG (class spark or chart); any other SVG was injected.
    expect(await page.locator('img[src="x"], main script, main svg:not(.spark, .chart)').count()).toBe(0);
  }

  it('operator: the list shows every task with its payload; state filter, sort and paging work from the page', async () => {
    const { page, problems } = await open('olga', '/ui/tasks');
    const rows = page.locator('#tasks tbody tr[data-task-id]');
    expect(await rows.count()).toBe(5);
    expect(await page.locator(`#tasks tr[data-task-id="${ids.add}"] td`).nth(3).textContent()).toContain(XSS);
    expect(await page.locator(`#tasks tr[data-task-id="${ids.hostile}"] td`).first().textContent()).toBe(HOSTILE_TASK);
    expect(await page.locator('#task-filters select[name="taskname"] option').allTextContents()).toContain(HOSTILE_TASK);
    await expectInert(page);
    await rig.browser.screenshot(page, 'console-tasks');

    await page.locator('#task-filters select[name="state"]').selectOption('FAILURE');
    await Promise.all([page.waitForURL(/state=FAILURE/), page.getByRole('button', { name: 'Filter' }).click()]);
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-task-id')))).toEqual([ids.fail]);

    await page.goto(`${rig.exporter.url}/ui/tasks`);
    await Promise.all([page.waitForURL(/sort_by=-name/), page.locator('#tasks th a', { hasText: 'name' }).click()]);
    const names = await page.locator('#tasks tbody tr td:first-child').allTextContents();
    expect(names).toEqual([...names].sort().reverse());

    await page.goto(`${rig.exporter.url}/ui/tasks?limit=2&sort_by=name`);
    const first = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-task-id')));
    expect(await page.locator('#pager').textContent()).toContain('1–2 of 5 matching');
    await Promise.all([page.waitForURL(/offset=2/), page.locator('#pager a[rel=next]').click()]);
    const second = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-task-id')));
    expect(second).toHaveLength(2);
    expect(second.filter((id) => first.includes(id))).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('operator: search and a time range filter as in Flower; bad parameters get a 400 page', async () => {
    const { page, problems } = await open('olga', `/ui/tasks?search=${encodeURIComponent('result:bold')}`);
    expect(
      await page.locator('#tasks tbody tr[data-task-id]').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-task-id'))),
    ).toEqual([ids.add]);
    await page.goto(`${rig.exporter.url}/ui/tasks?received_start=${encodeURIComponent('2999-01-01 00:00')}`);
    expect(await page.locator('#tasks tbody tr[data-task-id]').count()).toBe(0);
    const bad = await page.goto(`${rig.exporter.url}/ui/tasks?sort_by=bogus`);
    expect(bad!.status()).toBe(400);
    expect(await page.locator('p.error').textContent()).toMatch(/^sort_by must be one of/);
    expect((await page.goto(`${rig.exporter.url}/ui/tasks?received_end=yesterday`))!.status()).toBe(400);
    expect(problems).toEqual([]);
  });

  it('operator: a failed task shows its exception and traceback as text, its timeline, and no stop button', async () => {
    const { page, problems } = await open('olga', `/ui/tasks/${ids.fail}`);
    expect(await page.locator('#task-state').textContent()).toBe('FAILURE');
    expect(await page.locator('#task-exception').textContent()).toContain(`ValueError('</pre>${XSS}')`);
    expect(await page.locator('#task-traceback').textContent()).toMatch(/^Traceback \(most recent call last\)/);
    expect(await page.locator('#task-traceback').textContent()).toContain(XSS);
    expect(await page.locator('#timeline tbody td:first-child').allTextContents()).toEqual([
      'PENDING (sent)',
      'RECEIVED',
      'STARTED',
      'FAILURE',
    ]);
    expect(await page.locator('#actions').count()).toBe(0);
    expect(await page.locator('#task-fields').textContent()).toContain(worker.nodename);
    await expectInert(page);
    await rig.browser.screenshot(page, 'console-task');
    expect(problems).toEqual([]);

    await page.goto(`${rig.exporter.url}/ui/tasks/${ids.hostile}`);
    expect(await page.locator('h1').textContent()).toBe(`Task ${HOSTILE_TASK}`);
    expect(await page.locator('#task-kwargs').textContent()).toContain(XSS);
    await expectInert(page);
  });

  it('operator: parent and child link to each other', async () => {
    const { page } = await open('olga', `/ui/tasks/${ids.parent}`);
    const childId = rig.exporter.service.taskStore!.children(ids.parent)[0]!;
    await Promise.all([page.waitForURL(`${rig.exporter.url}/ui/tasks/${childId}`), page.locator('#children a').click()]);
    expect(await page.locator('#task-fields dd').first().textContent()).toBe('tasks.add');
    expect(await page.locator('#parent a').textContent()).toBe(ids.parent);
    expect(await page.locator('#root a').textContent()).toBe(ids.parent);
  });

  it('live refresh: a task sent while the list is open appears without a reload', async () => {
    const { page, problems } = await open('olga', '/ui/tasks');
    await page.locator('#live-toggle').check();
    const [id] = await sendTasks(rig.broker.celery, [{ name: 'tasks.noop' }]);
    await page.locator(`#tasks tr[data-task-id="${id}"]`).waitFor({ timeout: 30_000 });
    expect(Number(await page.locator('#tasks tbody').getAttribute('data-refreshes'))).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  it('viewer: no payload, no stop buttons, and searching a payload field is refused', async () => {
    const { page, problems } = await open('vera', '/ui/tasks');
    expect(await page.locator('#tasks th').allTextContents()).not.toContain('args, kwargs');
    expect(await page.content()).not.toContain('bold</b>');
    await page.goto(`${rig.exporter.url}/ui/tasks/${ids.add}`);
    expect(await page.locator('#payload-hidden').count()).toBe(1);
    expect(await page.locator('#task-args').count()).toBe(0);
    const refused = await page.goto(`${rig.exporter.url}/ui/tasks?search=${encodeURIComponent('args:bold')}`);
    expect(refused!.status()).toBe(403);
    expect(problems).toEqual([]);
  });

  it('a running task: the operator sees Revoke but not Terminate; the admin terminates it and the page shows it revoked', async () => {
    [ids.sleep] = (await sendTasks(rig.broker.celery, [{ name: 'tasks.sleep', args: [120] }])) as [string];
    await waitFor('the sleeping task to start', () =>
      rig.exporter.service.taskStore!.get(ids.sleep)?.state === 'STARTED' ? true : undefined,
    );
    const operator = await open('olga', `/ui/tasks/${ids.sleep}`);
    expect(await operator.page.locator('#actions button[name="revoke"]').count()).toBe(1);
    expect(await operator.page.locator('#actions button[name="abort"]').count()).toBe(1);
    expect(await operator.page.locator('#actions button[name="terminate"]').count()).toBe(0);

    const admin = await open('ada', `/ui/tasks/${ids.sleep}`);
    await admin.page.locator('#actions button[name="terminate"]').click();
    await admin.page.locator('#result[data-status]').waitFor();
    expect(await admin.page.locator('#result').getAttribute('data-status')).toBe('200');
    await waitFor('the task to be revoked', () => (rig.exporter.service.taskStore!.get(ids.sleep)?.state === 'REVOKED' ? true : undefined));
    await admin.page.reload();
    expect(await admin.page.locator('#task-state').textContent()).toBe('REVOKED');
    expect(await admin.page.locator('#task-fields').textContent()).toMatch(/terminated/);
    expect(await admin.page.locator('#actions').count()).toBe(0);
    expect(admin.problems).toEqual([]);
  });

  it('operator: aborts an AbortableTask from its page; the task ends with its own "aborted" result', async () => {
    const [id] = (await sendTasks(rig.broker.celery, [{ name: 'tasks.abortable', args: [60] }])) as [string];
    await waitFor('the abortable task to start', () => (rig.exporter.service.taskStore!.get(id)?.state === 'STARTED' ? true : undefined));
    const { page, problems } = await open('olga', `/ui/tasks/${id}`);
    await page.locator('#actions button[name="abort"]').click();
    await page.locator('#result[data-status]').waitFor();
    expect(await page.locator('#result').getAttribute('data-status')).toBe('200');
    expect(await page.locator('#result').textContent()).toContain(`Aborted '${id}'`);
    await waitFor('the task to finish', () => (rig.exporter.service.taskStore!.get(id)?.state === 'SUCCESS' ? true : undefined));
    await page.reload();
    expect(await page.locator('#task-result').textContent()).toBe("'aborted'");
    expect(problems).toEqual([]);
  });

  it('the worker list shows the hostile worker name as text, and its page refuses the name with 400', async () => {
    const { page } = await open('vera', '/ui');
    expect(await page.locator('#workers tbody tr td:first-child').allTextContents()).toContain(worker.nodename);
    await expectInert(page);
    const res = await page.goto(`${rig.exporter.url}/ui/workers/${encodeURIComponent(worker.nodename)}`);
    expect(res!.status()).toBe(400);
    await expectInert(page);
    expect((await page.goto(`${rig.exporter.url}/ui/tasks/${encodeURIComponent(XSS)}`))!.status()).toBe(404);
    expect(await page.locator('p.error').textContent()).toContain(XSS);
    await expectInert(page);
  });
});
