import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signIn, watchPage } from '../support/browser.js';
import { sendTasks } from '../support/celery/client.js';
import { startWorker, uniqueNodename, type CeleryWorker } from '../support/celery/worker.js';
import { startConsoleRig, type ConsoleRig } from '../support/console-rig.js';
import { waitFor } from '../support/exporter.js';
import { TcpProxy } from '../support/tcp-proxy.js';

/**
 * The overview on RabbitMQ with a real worker, the service reaching the broker through a proxy
 * the test can cut: figures and charts from the history, a worker failing everything shown as
 * unhealthy, and during a broker outage a banner saying so, with the worker shown unknown rather
 * than down (its heartbeats go on, they just cannot arrive), until the broker is back.
 */
describe('console overview and a broker outage (RabbitMQ)', () => {
  let rig: ConsoleRig;
  let proxy: TcpProxy;
  let worker: CeleryWorker;
  let page: Page;
  let problems: string[];
  const row = () => page.locator(`#workers tr[data-worker="${worker.nodename}"]`);

  beforeAll(async () => {
    proxy = new TcpProxy('127.0.0.1', 5672);
    const port = await proxy.listen();
    // Only the service goes through the proxy; the worker keeps its own connection to the broker.
    rig = await startConsoleRig('amqp', 'console-overview', {}, (broker) => [
      '--broker-url',
      broker.celery.brokerUrl.replace('127.0.0.1:5672/', `127.0.0.1:${port}/`),
      '--reconnect-initial-delay-seconds',
      '0.2',
      '--reconnect-max-delay-seconds',
      '0.5',
    ]);
    worker = await startWorker({ brokerUrl: rig.broker.celery.brokerUrl, nodename: uniqueNodename('overview'), concurrency: 1 });
    const service = rig.exporter.service;
    await waitFor('the worker up', () => (service.workers.alive().some((w) => w.hostname === worker.nodename) ? true : undefined));
    const ids = await sendTasks(
      rig.broker.celery,
      Array.from({ length: 4 }, () => ({ name: 'tasks.fail_with', args: ['card declined'] })),
    );
    await waitFor('the failures', () => (ids.every((id) => service.taskStore!.get(id)?.state === 'FAILURE') ? true : undefined));
    // Two readings a step apart give the history its first increase (the timer takes one per 10 s).
    await waitFor(
      'a reading with the failures',
      async () => {
        await service.sampler.sample();
        const failed = service.sampler.history.workerSeries(worker.nodename).failed?.values ?? [];
        return [...failed].some((v) => v > 0) ? true : undefined;
      },
      30_000,
    );
    page = await signIn(await rig.browser.newPage(), rig.exporter.url, 'vera', rig.passwords.vera);
    problems = watchPage(page).problems;
  });

  afterAll(async () => {
    proxy?.resume();
    await worker?.stop();
    await rig?.stop();
    await proxy?.close();
  });

  it('the overview is the first page: figures, charts, the failing task and a red row for the worker failing everything', async () => {
    await page.goto(`${rig.exporter.url}/ui`);
    expect(await page.locator('h1').textContent()).toBe('Overview');
    expect(await page.locator('#broker-banner').count()).toBe(0);
    expect(await page.locator('#chart-tasks svg path.line.bad').count()).toBe(1);
    expect(await row().locator('td.status').textContent()).toBe('up');
    expect(await row().getAttribute('class')).toBe('bad');
    expect(await row().locator('td.failed').textContent()).toBe('4');
    expect(await row().locator('td.failure-rate').textContent()).toBe('100 %');
    expect(await page.locator('#top-failures tbody tr td:first-child').allTextContents()).toEqual(['tasks.fail_with']);
    await rig.browser.screenshot(page, 'console-overview');
    expect(problems).toEqual([]);
  });

  it('with the broker unreachable, a banner says since when and the worker shows unknown, not down; back to up after', async () => {
    proxy.pause();
    const service = rig.exporter.service;
    await waitFor('the service to see the broker gone', () => (!service.status.connected ? true : undefined));
    // Past the worker's liveness window (2 × its 2 s heartbeat): without the broker it would read down.
    await waitFor('the worker past its window', () => (service.workers.alive().length === 0 ? true : undefined), 15_000);
    await page.goto(`${rig.exporter.url}/ui`);
    expect(await page.locator('#broker-banner').textContent()).toMatch(/^Broker unreachable since \d{4}-\d\d-\d\dT[\d:]+Z/);
    expect(await page.locator('#broker-banner').textContent()).toContain('1 worker that was up shows as unknown, not down');
    expect(await row().locator('td.status').textContent()).toBe('unknown');
    await page.goto(`${rig.exporter.url}/ui/workers`);
    expect(await row().locator('td.status').textContent()).toBe('unknown');
    await rig.browser.screenshot(page, 'console-workers-broker-down');

    proxy.resume();
    await waitFor('the worker up again', () => (service.workers.alive().length === 1 ? true : undefined), 30_000);
    await page.goto(`${rig.exporter.url}/ui`);
    expect(await page.locator('#broker-banner').count()).toBe(0);
    expect(await row().locator('td.status').textContent()).toBe('up');
    expect(problems).toEqual([]);
  });
});
