import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notification, postWebhook, startRemediationService, type RemediationService } from '../support/alertmanager.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, redisIsolation, uniqueId } from '../support/isolation.js';
import { metricValue } from '../support/prom.js';

/**
 * After a pool or consumer change, whoever made it (the HTTP API or remediation), the worker is
 * inspected again at once: with an inspect interval of an hour, the per-queue process and worker
 * counts follow the change only because of that.
 */
describe.each(['amqp', 'redis'] as const)('figures re-read after a pool or consumer change on %s with a real worker', (kind) => {
  const id = randomBytes(3).toString('hex');
  const nodename = `refresh${id}-${kind}@cap`;
  const QUEUE = `refresh-${id}`;
  const EXTRA = `refresh-extra-${id}`;
  let dir: string;
  let cleanup: () => Promise<void> = async () => undefined;
  let service: RemediationService;
  let worker: CeleryWorker;

  const gauge = async (name: string, queue: string) => metricValue(await service.exporter.scrape(), name, { queue_name: queue });
  const until = (what: string, name: string, queue: string, value: number) =>
    waitFor(
      what,
      async () => ((await gauge(name, queue)) === value ? true : undefined),
      30_000,
      250,
      () => JSON.stringify(service.exporter.service.workers.alive()),
    );
  const action = async (command: string, args: Record<string, unknown>) => {
    const res = await fetch(`${service.url}/api/v1/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${service.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ command, arguments: args, targets: { workers: [nodename] } }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as { results: Array<{ status: string }> };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cap-refresh-'));
    const rules = path.join(dir, 'rules.yml');
    await writeFile(
      rules,
      `rules:
  - name: grow
    match: { labels: { alertname: Backlog } }
    action: pool_grow
    arguments: { n: 1 }
    target: { queue_label: queue_name }
    bounds: { max_pool_processes: 4 }
`,
    );
    let argv: string[];
    let transportOptions: Record<string, unknown> | undefined;
    let brokerUrl: string;
    if (kind === 'amqp') {
      const vhost = await createVhost(uniqueId('rem-refresh'));
      brokerUrl = vhost.url;
      argv = ['--broker-url', vhost.url];
      cleanup = vhost.remove;
    } else {
      const iso = redisIsolation('rem-refresh');
      brokerUrl = iso.url;
      transportOptions = { global_keyprefix: iso.keyprefix };
      argv = ['--broker-url', iso.url, '--broker-transport-options-global-keyprefix', iso.keyprefix];
      cleanup = async () => {
        const redis = new Redis(iso.url, { maxRetriesPerRequest: 1 });
        try {
          const keys = await redis.keys(`${iso.keyprefix}*`);
          if (keys.length > 0) await redis.del(...keys);
        } finally {
          redis.disconnect();
        }
      };
    }
    // An hour between inspection rounds: only the re-inspection after a change can move the figures.
    service = await startRemediationService(argv, rules, { metrics: { inspect_interval_seconds: 3600 } });
    worker = await startWorker({ brokerUrl, ...(transportOptions ? { transportOptions } : {}), nodename, queues: [QUEUE], concurrency: 1 });
    await until('the first inspection of the new worker', 'celery_active_process_count', QUEUE, 1);
  });

  afterAll(async () => {
    await worker?.stop();
    await service?.stop();
    await cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pool_grow and add_consumer through the HTTP API, then a remediation grow: each shows without waiting for the interval', async () => {
    expect((await action('pool_grow', { n: 1 })).results[0]!.status).toBe('ok');
    await until('2 processes after the HTTP pool_grow', 'celery_active_process_count', QUEUE, 2);

    expect((await action('add_consumer', { queue: EXTRA })).results[0]!.status).toBe('ok');
    await until('the worker counted on the queue it now consumes', 'celery_active_worker_count', EXTRA, 1);

    const answer = await postWebhook(
      service.url,
      notification([{ labels: { alertname: 'Backlog', queue_name: QUEUE } }]),
      service.webhookToken,
    );
    expect(answer.status).toBe(200);
    await service.idle();
    expect((await service.decisions(1))[0]).toMatchObject({ rule: 'grow', outcome: 'acted' });
    await until('3 processes after the remediation grow', 'celery_active_process_count', QUEUE, 3);
  });
});
