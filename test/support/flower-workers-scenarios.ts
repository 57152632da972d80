import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from './celery/client.js';
import type { CeleryWorker } from './celery/worker.js';
import { waitFor } from './exporter.js';
import { startPidboxSpy, type PidboxSpy } from './pidbox-spy.js';
import { TaskApiRig } from './task-api-scenarios.js';

/** RabbitMQ's management API, as scripts/prereqs.sh enables it (Flower's broker_api). */
const BROKER_API = 'http://guest:guest@127.0.0.1:15672/api/';
const METHODS = ['stats', 'active_queues', 'registered', 'scheduled', 'active', 'reserved', 'revoked', 'conf'];

/**
 * Flower's /api/workers and /api/queues/length on one broker with real workers: the snapshot is
 * filled by one parallel round of the eight inspect commands (seen on the broker by a pidbox
 * spy), later requests are answered from it without any broadcast, Flower's boolean spellings
 * work, offline workers show as false, and queue lengths come from the management API when
 * configured (RabbitMQ) or from the broker itself.
 */
export function describeFlowerWorkersApi(kind: 'amqp' | 'redis'): void {
  describe(`Flower's /api/workers and /api/queues/length on ${kind}`, () => {
    const rig = new TaskApiRig(kind, 'flower-workers');
    let spy: PidboxSpy;
    let main: CeleryWorker;
    let second: CeleryWorker;

    beforeAll(async () => {
      await rig.start(kind === 'amqp' ? { broker_api: BROKER_API } : {}, ['--control-workers-refresh-seconds', '3600']);
      const t = rig.broker.celery;
      spy = await startPidboxSpy(
        kind === 'amqp' ? { kind, url: t.brokerUrl } : { kind, url: t.brokerUrl, keyprefix: String(t.transportOptions?.global_keyprefix) },
      );
      [main, second] = await Promise.all([
        rig.worker('main', { queues: ['fw-busy'], concurrency: 1, prefetchMultiplier: 1 }),
        rig.worker('second', { queues: ['fw-other'], concurrency: 1 }),
      ]);
      await waitFor(
        'both workers heard of',
        () => ([main, second].every((w) => rig.service.service.workers.get(w.nodename)) ? true : undefined),
        20_000,
      );
    });
    afterAll(async () => {
      await spy?.close();
      await rig.stop();
    });

    it('fills the snapshot with one parallel round of the eight inspect commands, then answers from it', async () => {
      const mark = spy.mark();
      const first = await rig.get('/api/workers?refresh=1', 'viewer');
      expect(first.status, first.text).toBe(200);
      for (const w of [main, second]) {
        expect(Object.keys(first.body[w.nodename]).sort(), w.nodename).toEqual([...METHODS, 'timestamp'].sort());
        expect(first.body[w.nodename].registered).toContain('tasks.add');
      }
      expect(first.body[main.nodename].active_queues.map((q: { name: string }) => q.name)).toEqual(['fw-busy']);
      await spy.barrier();
      const round = spy.since(mark).map((c) => c.method);
      expect([...round].sort()).toEqual([...METHODS].sort());

      const quiet = spy.mark();
      const again = await rig.get('/api/workers');
      expect(Object.keys(again.body).sort()).toEqual([main.nodename, second.nodename].sort());
      const one = await rig.get(`/api/workers?workername=${encodeURIComponent(second.nodename)}`);
      expect(Object.keys(one.body)).toEqual([second.nodename]);
      await spy.barrier();
      expect(spy.since(quiet)).toEqual([]);
    });

    it("takes Flower's boolean spellings and refuses others", async () => {
      for (const v of ['y', 'yes', 't', 'True', 'on', '1', 'n', 'no', 'f', 'false', 'OFF', '0'])
        expect((await rig.get(`/api/workers?status=${v}`)).status, v).toBe(200);
      const bad = await rig.get('/api/workers?refresh=maybe');
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatch(/must be a boolean \(y, yes, t, true, on, 1/);
    });

    it('answers 404 with Flower’s text for an unknown worker and 400 for a malformed name', async () => {
      const unknown = await rig.get('/api/workers?workername=nobody@nowhere');
      expect(unknown.status).toBe(404);
      expect(unknown.text).toBe("Unknown worker 'nobody@nowhere'");
      expect((await rig.get('/api/workers?workername=not%20a%20worker')).status).toBe(400);
    });

    it('reports queue lengths as Flower does', async () => {
      // A backlog that lasts ~30 s (one 3 s task at a time): the management API samples its
      // statistics every 5 s, later still on a loaded broker, so a short one can be missed.
      await sendTasks(
        rig.broker.celery,
        Array.from({ length: 10 }, () => ({ name: 'tasks.sleep', args: [3], queue: 'fw-busy' })),
      );
      if (kind === 'amqp') {
        // Management statistics are sampled every few seconds: wait for them to show the backlog.
        const q = await waitFor(
          'management API to show ready and unacknowledged messages',
          async () => {
            const r = await rig.get('/api/queues/length');
            const busy = (r.body.active_queues as Array<Record<string, number | string>>).find((x) => x.name === 'fw-busy');
            return busy && (busy.messages_unacknowledged as number) >= 1 && (busy.messages_ready as number) >= 1 ? busy : undefined;
          },
          60_000,
          1000,
        );
        expect(q.messages).toBe((q.messages_ready as number) + (q.messages_unacknowledged as number));
        expect(q.consumers).toBe(1);
      } else {
        const q = await waitFor('a backlog on fw-busy', async () => {
          const r = await rig.get('/api/queues/length');
          return (r.body.active_queues as Array<{ name: string; messages: number }>).find((x) => x.name === 'fw-busy' && x.messages >= 1);
        });
        expect(q.messages).toBeGreaterThanOrEqual(1);
      }
    });

    it('shows a worker that went away as false in status', async () => {
      await second.stop();
      const status = await waitFor('the stopped worker to be offline', async () => {
        const r = await rig.get('/api/workers?status=true');
        return r.body[second.nodename] === false ? r.body : undefined;
      });
      expect(status[main.nodename]).toBe(true);
    });
  });
}
