import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { metricValue } from '../support/prom.js';
import { amqpEventPublisher, taskReceived, type RawEventPublisher } from '../support/raw-events.js';

/**
 * With a fixed events.queue_name, a restarted exporter resumes its queue: what workers published
 * while it was down waits there (until x-expires) and is counted after the restart.
 */
describe('exporter restart with a fixed event queue (RabbitMQ)', () => {
  let vhost: Awaited<ReturnType<typeof createVhost>>;
  let publisher: RawEventPublisher;
  const running: RunningExporter[] = [];
  const queueName = `celeryev.${uniqueId('resume')}`;

  const start = async () => {
    const e = await startExporter([
      '--broker-url',
      vhost.url,
      '--events-queue-name',
      queueName,
      '--events-queue-expires-seconds',
      '600',
      '--events-queue-message-ttl-seconds',
      '600',
    ]);
    running.push(e);
    await waitFor('ready', async () => ((await e.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    return e;
  };

  beforeAll(async () => {
    vhost = await createVhost(uniqueId('resume'));
    publisher = await amqpEventPublisher(vhost.url);
  });

  afterAll(async () => {
    await Promise.allSettled(running.map((e) => e.stop()));
    await publisher?.close();
    await vhost?.remove();
  });

  it('counts the events published while it was stopped', async () => {
    const first = await start();
    await first.stop();
    for (let i = 0; i < 5; i++)
      await publisher.publish(JSON.stringify([taskReceived(randomUUID(), 'tasks.while_down', 'celery@w')]), 'task.multi');
    const second = await start();
    await waitFor(
      'the events published while down',
      async () => (metricValue(await second.scrape(), 'celery_task_received_total', { name: 'tasks.while_down' }) === 5 ? true : undefined),
      20_000,
    );
    expect(metricValue(await second.scrape(), 'celery_autopilot_events_received_total', { type: 'task-received' })).toBe(5);
  });
});
