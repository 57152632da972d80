import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConsoleContext } from '../../src/console/layout.js';
import { workersPage } from '../../src/console/workers.js';
import type { CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { TaskApiRig } from '../support/task-api-scenarios.js';

/**
 * Worker state across a restart with tasks.persist, with a real Celery 5.2.6 worker on RabbitMQ:
 * the service sees the worker and inspects it, is stopped, the worker is stopped, and a new
 * service on the same file lists the worker with its last inspect replies, down, and gives it no
 * celery_worker_up series (the file is not a heartbeat).
 */
const VIEWER: ConsoleContext = {
  principal: { kind: 'token', name: 'viewer', role: 'viewer', via: 'header' },
  csrfToken: 'unused',
  prefix: '',
  can: (role) => role === 'viewer',
  href: (p) => p,
};

describe('worker state persistence on amqp with a real Celery worker', () => {
  const rig = new TaskApiRig('amqp', 'workers-persist');
  let worker: CeleryWorker;
  let before: Record<string, unknown>;

  beforeAll(async () => {
    await rig.start((r) => ({ tasks: { persist: r.file('tasks.sqlite'), persist_interval_seconds: 0.2 } }));
    worker = await rig.worker('main', { queues: ['wp'], concurrency: 2 });
    await waitFor(
      'the worker alive and inspected in the registry',
      () => {
        const w = rig.service.service.workers.get(worker.nodename);
        return w && rig.service.service.workers.isAlive(w) && w.processes !== undefined && w.queues !== undefined ? true : undefined;
      },
      30_000,
    );
    const first = await rig.get(`/api/workers?refresh=1&workername=${encodeURIComponent(worker.nodename)}`, 'viewer');
    expect(first.status, first.text).toBe(200);
    before = first.body[worker.nodename];
    expect(before.stats).toMatchObject({ pid: expect.any(Number) });
    await rig.restart(() => worker.stop());
  });
  afterAll(() => rig.stop());

  it('lists the stopped worker in /api/workers with its last inspect replies, and as false in ?status', async () => {
    const all = await rig.get('/api/workers', 'viewer');
    expect(all.status, all.text).toBe(200);
    expect(all.body[worker.nodename].stats).toEqual(before.stats);
    expect(all.body[worker.nodename].active_queues).toEqual(before.active_queues);
    expect(all.body[worker.nodename].registered).toContain('tasks.add');
    const status = await rig.get('/api/workers?status=true', 'viewer');
    expect(status.status, status.text).toBe(200);
    expect(status.body).toEqual({ [worker.nodename]: false });
  });

  it('shows it down in the console with its pool and queues, and gives it no worker series', async () => {
    // Rendered in-process: over HTTP the console needs a signed-in session, which this rig
    // (bearer tokens only) has not; the page is the one /ui/workers serves.
    const { service } = rig.service;
    const health = { ...service.status, lastEventAtMs: 0, eventsDropped: 0 };
    const page = { text: workersPage(VIEWER, { workers: service.workers, history: service.sampler.history, health, nowMs: Date.now() }) };
    const row = new RegExp(`<tr data-worker="${worker.nodename.replace(/[.@-]/g, '\\$&')}">[\\s\\S]*?</tr>`).exec(page.text)?.[0];
    expect(row, page.text).toBeDefined();
    expect(row).toContain('state-down');
    expect(row).toContain('<td class="num processes">2</td>');
    expect(row).toMatch(/<td class="queues"><a [^>]*>wp<\/a><\/td>/);
    const samples = await rig.service.scrape();
    expect(samples.filter((s) => s.labels.hostname === worker.nodename)).toEqual([]);
  });
});
