import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signIn, watchPage } from '../support/browser.js';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { startConsoleRig, type ConsoleRig } from '../support/console-rig.js';
import { uniqueId } from '../support/isolation.js';
import { waitFor } from '../support/exporter.js';

/**
 * The task and queue action buttons in Chromium against a real worker on Redis, walked as a viewer (none of
 * them), an operator (re-run, edit and re-run, re-run all matching) and an admin (purge behind
 * the typed queue name); the worker page's Config, System and failed/retried counts.
 */
describe('operator console actions on tasks and queues (Redis)', () => {
  let rig: ConsoleRig;
  let worker: CeleryWorker;
  const queue = uniqueId('ca');
  const parked = uniqueId('ca-parked');
  const marker = uniqueId('bulk');
  let failed = '';
  let bulk: string[] = [];
  const store = () => rig.exporter.service.taskStore!;

  beforeAll(async () => {
    rig = await startConsoleRig('redis', 'console-actions', {
      tasks: { submit: { allow: ['tasks.*'], role: 'operator' } },
      metrics: { queues: [parked] },
    });
    worker = await startWorker({
      brokerUrl: rig.broker.celery.brokerUrl,
      transportOptions: rig.broker.celery.transportOptions,
      nodename: `${uniqueId('w')}@cap`,
      queues: [queue],
      concurrency: 2,
    });
    const celery = { ...rig.broker.celery, sendSentEvent: true };
    const ids = await sendTasks(celery, [
      { name: 'tasks.add', args: [1, 'x'], queue },
      { name: 'tasks.fail_with', args: [`${marker}-1`], queue },
      { name: 'tasks.fail_with', args: [`${marker}-2`], queue },
    ]);
    [failed, ...bulk] = ids as [string, ...string[]];
    await sendTasks(
      celery,
      Array.from({ length: 30 }, (_, i) => ({ name: 'tasks.noop', queue: parked, priority: i % 2 ? 9 : 0 })),
    );
    await waitFor('the three tasks to fail', () => (ids.every((id) => store().get(id)?.state === 'FAILURE') ? true : undefined));
  });

  afterAll(async () => {
    await worker?.stop();
    await rig?.stop();
  });

  /** A signed-in page whose confirm() dialogs are remembered (watchPage accepts them). */
  const open = async (user: 'olga' | 'vera' | 'ada', pathname: string): Promise<{ page: Page; problems: string[]; dialogs: string[] }> => {
    const page = await signIn(await rig.browser.newPage(), rig.exporter.url, user, rig.passwords[user]);
    const { problems } = watchPage(page);
    const dialogs: string[] = [];
    page.on('dialog', (d) => dialogs.push(d.message()));
    await page.goto(`${rig.exporter.url}${pathname}`);
    return { page, problems, dialogs };
  };
  const answered = (page: Page) => page.locator('#result[data-status]').waitFor();

  it('viewer: no re-run, bulk or purge control anywhere; the worker page has Config, System and the failure counts', async () => {
    const { page, problems } = await open('vera', `/ui/tasks/${failed}`);
    expect(await page.locator('button[name="rerun"], button[name="rerun-edited"]').count()).toBe(0);
    await page.goto(`${rig.exporter.url}/ui/tasks?state=FAILURE&taskname=tasks.fail_with`);
    expect(await page.locator('#pager').textContent()).toContain('of 2 matching');
    expect(await page.locator('#bulk-actions').count()).toBe(0);
    await page.goto(`${rig.exporter.url}/ui/queues?queue=${parked}`);
    expect(await page.locator('#purge').count()).toBe(0);
    await page.goto(`${rig.exporter.url}/ui/workers/${encodeURIComponent(worker.nodename)}`);
    expect(await page.locator('#conf-section h2').textContent()).toBe('Config');
    expect(await page.locator('#conf').textContent()).toContain('broker_url');
    expect(Number(await page.locator('#system .rusage-maxrss').textContent())).toBeGreaterThan(0);
    expect(await page.locator('#registered tr[data-task="tasks.fail_with"] td.failed').textContent()).toBe('2');
    expect(await page.locator('#registered tr[data-task="tasks.add"] td.failed').textContent()).toBe('1');
    // State comes before the actions (a viewer has none): pool and queues lead the page.
    await rig.browser.screenshot(page, 'console-worker-viewer');
    expect(problems).toEqual([]);
  });

  it('operator: Re-run and Edit and re-run on a failed task run it again on the worker; both pages link each other', async () => {
    const { page, problems, dialogs } = await open('olga', `/ui/tasks/${failed}`);
    await rig.browser.screenshot(page, 'console-task-rerun');
    await page.click('button[name="rerun"]');
    await answered(page);
    expect(dialogs[0]).toContain('Re-run tasks.add with the same arguments');
    expect(await page.locator('#result').getAttribute('data-status')).toBe('200');
    await page.click('#result-task');
    const again = decodeURIComponent(page.url().split('/ui/tasks/')[1]!);
    await waitFor('the re-run to fail on the worker', () => (store().get(again)?.state === 'FAILURE' ? true : undefined));
    expect(store().get(again)).toMatchObject({ worker: worker.nodename, rerun_of: failed });
    await page.reload();
    expect(await page.locator('#rerun-of a').textContent()).toBe(failed);

    await page.goto(`${rig.exporter.url}/ui/tasks/${failed}`);
    expect(await page.locator('#reruns a').allTextContents()).toEqual([again]);
    expect(await page.locator('#rerun-edit textarea[data-arg="args"]').inputValue()).toBe('[1,"x"]');
    await page.fill('#rerun-edit textarea[data-arg="args"]', '[20, 22]');
    await page.click('button[name="rerun-edited"]');
    await answered(page);
    const edited = (await page.locator('#result-task').textContent())!.replace('open the new task ', '');
    await waitFor('the edited re-run to succeed', () => (store().get(edited)?.state === 'SUCCESS' ? true : undefined));
    expect(store().get(edited)!.result).toBe('42');
    await page.fill('#rerun-edit textarea[data-arg="args"]', '[1,');
    await page.click('button[name="rerun-edited"]');
    expect(await page.locator('#result').textContent()).toBe('not sent: args is not JSON');
    await rig.browser.screenshot(page, 'console-task-rerun-done');
    expect(problems).toEqual([]);
  });

  it('operator: "Re-run all 2 matching" shows the dry-run count in the confirmation, then runs exactly those', async () => {
    const { page, problems, dialogs } = await open('olga', `/ui/tasks?state=FAILURE&taskname=tasks.fail_with&search=${marker}`);
    expect(await page.locator('#bulk-actions button').allTextContents()).toEqual(['Re-run all 2 matching', 'Revoke all 2 matching']);
    await rig.browser.screenshot(page, 'console-tasks-bulk');
    await page.click('button[name="bulk-rerun"]');
    await page.locator('#result[data-status="200"]').waitFor();
    await waitFor('the bulk answer', async () => ((await page.locator('#result').textContent())?.includes('"reruns"') ? true : undefined));
    expect(dialogs).toEqual(['Re-run all 2 matching: 2 tasks. Go ahead?']);
    const reruns = [...store().all()].filter((t) => t.rerun_of !== null && bulk.includes(t.rerun_of));
    expect(reruns).toHaveLength(2);
    await waitFor('both bulk re-runs to fail on the worker', () =>
      reruns.every((t) => store().get(t.uuid)?.state === 'FAILURE' && store().get(t.uuid)?.worker === worker.nodename) ? true : undefined,
    );
    // An operator cannot purge.
    await page.goto(`${rig.exporter.url}/ui/queues?queue=${parked}`);
    expect(await page.locator('#purge').count()).toBe(0);
    expect(problems).toEqual([]);
  });

  it('admin: purge wants the queue name typed, confirms the dry-run count, and empties every priority list', async () => {
    const { page, problems, dialogs } = await open('ada', `/ui/queues?queue=${parked}`);
    expect(await page.locator(`#queues tr[data-queue="${parked}"] td.depth`).textContent()).toBe('30');
    await page.fill('#purge input[data-arg="confirm_name"]', 'celery');
    await page.click('button[name="purge"]');
    expect(await page.locator('#result').textContent()).toBe(`type the queue name "${parked}" to confirm; nothing was sent`);
    expect(dialogs).toEqual([]);
    await page.fill('#purge input[data-arg="confirm_name"]', parked);
    await rig.browser.screenshot(page, 'console-queue-purge');
    await page.click('button[name="purge"]');
    await waitFor('the purge answer', async () => ((await page.locator('#result').textContent())?.includes('"purged"') ? true : undefined));
    expect(dialogs).toEqual([`Purge ${parked}: 30 messages removed for good. Go ahead?`]);
    expect(await page.locator('#result').getAttribute('data-status')).toBe('200');
    expect(await page.locator('#result .result-head').textContent()).toBe(`✓ Purge ${parked}: 30 messages removed`);
    // The page's figures follow (console.js refreshes the sections with ids): no stale backlog beside the answer.
    await waitFor('the summary to show the queue empty', async () =>
      /(^|\D)0 messages waiting/.test((await page.locator('#queues-summary').textContent()) ?? '') ? true : undefined,
    );
    await rig.browser.screenshot(page, 'console-queue-purged');
    expect(problems).toEqual([]);
  });
});
