/**
 * Screenshots of the operator console's main pages for docs/ and the README, taken against real
 * Celery workers on RabbitMQ. Run by hand (not by CI), after `bash scripts/prereqs.sh`:
 *
 *   node_modules/.bin/tsx scripts/console-screenshots.ts
 *
 * Writes docs/console-{overview,overview-dark,overview-phone,workers,worker,tasks,tasks-phone,task,task-retried,queues,remediation}.png.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { signIn } from '../test/support/browser.js';
import { notification, postWebhook } from '../test/support/alertmanager.js';
import { sendTasks } from '../test/support/celery/client.js';
import { startWorker, uniqueNodename } from '../test/support/celery/worker.js';
import { startConsoleRig } from '../test/support/console-rig.js';
import { waitFor } from '../test/support/exporter.js';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const TOKEN = 'console-screenshots-webhook-token';

const rig = await startConsoleRig('amqp', 'console-screenshots', {
  // A queue no worker consumes yet, so the queues page shows a backlog; ready/unacked from the management API.
  metrics: { queues: ['invoices'] },
  broker_api: 'http://guest:guest@127.0.0.1:15672/api/',
  remediation: {
    enabled: true,
    dry_run: true,
    rules_file: path.join(root, 'test/fixtures/remediation/faults.yml'),
    webhook: { bearer_token: TOKEN },
  },
});
const workers = await Promise.all([
  startWorker({ brokerUrl: rig.broker.celery.brokerUrl, nodename: uniqueNodename('web'), queues: ['celery', 'emails'], concurrency: 3 }),
  startWorker({ brokerUrl: rig.broker.celery.brokerUrl, nodename: uniqueNodename('reports'), queues: ['reports'], concurrency: 2 }),
]);
try {
  const { exporter } = rig;
  await waitFor('both workers up and inspected', () =>
    workers.every((w) => exporter.service.workers.get(w.nodename)?.queues?.length) ? true : undefined,
  );
  const celery = { ...rig.broker.celery, sendSentEvent: true };
  const ids = await sendTasks(celery, [
    ...Array.from({ length: 12 }, (_, i) => ({ name: 'tasks.add', args: [i, i * 2] })),
    { name: 'tasks.fail_with', args: ['payment provider timed out after 30 s'] },
    { name: 'tasks.fail_custom' },
    { name: 'tasks.retry_once' },
    { name: 'tasks.spawn_child' },
    { name: 'tasks.sleep', args: [60], queue: 'reports' },
    { name: 'tasks.sleep', args: [0.5], queue: 'emails' },
  ]);
  await sendTasks(
    celery,
    Array.from({ length: 7 }, () => ({ name: 'tasks.noop', queue: 'invoices' })),
  );
  await postWebhook(exporter.url, notification([{ labels: { alertname: 'HostBusy', hostname: workers[0]!.nodename } }]), TOKEN);
  await waitFor('the failed task to be known', () => (exporter.service.taskStore!.get(ids[12]!)?.state === 'FAILURE' ? true : undefined));
  // The overview's charts need a few readings (one per 10 s): keep some work flowing for 40 s.
  for (let round = 0; round < 4; round++) {
    await sendTasks(celery, [
      ...Array.from({ length: 10 + 4 * round }, (_, i) => ({ name: 'tasks.add', args: [i, round] })),
      { name: 'tasks.fail_with', args: ['payment provider timed out after 30 s'] },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
  }
  await exporter.service.sampler.sample();

  const page = await signIn(await rig.browser.newPage(), exporter.url, 'olga', rig.passwords.olga);
  await page.setViewportSize({ width: 1480, height: 860 });
  const shoot = async (pathname: string, name: string, fullPage = false) => {
    await page.goto(`${exporter.url}${pathname}`);
    const file = path.join(root, 'docs', `console-${name}.png`);
    await page.screenshot({ path: file, fullPage });
    console.log(file);
  };
  await shoot('/ui', 'overview');
  await page.emulateMedia({ colorScheme: 'dark' });
  await shoot('/ui', 'overview-dark');
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 390, height: 844 });
  await shoot('/ui', 'overview-phone', true);
  await shoot('/ui/tasks', 'tasks-phone');
  await page.setViewportSize({ width: 1480, height: 860 });
  await shoot(`/ui/tasks/${ids[14]!}`, 'task-retried', true);
  await shoot('/ui/workers', 'workers');
  await shoot(`/ui/workers/${encodeURIComponent(workers[0]!.nodename)}`, 'worker', true);
  await shoot('/ui/tasks', 'tasks');
  await shoot(`/ui/tasks/${ids[12]!}`, 'task', true);
  await shoot('/ui/queues', 'queues');
  await shoot('/ui/remediation', 'remediation');
} finally {
  await Promise.all(workers.map((w) => w.stop()));
  await rig.stop();
}
