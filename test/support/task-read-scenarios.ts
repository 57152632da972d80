import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from './celery/client.js';
import { TaskApiRig } from './task-api-scenarios.js';

/**
 * Flower's task read API on one broker with a real Celery 5.2.6 worker: the store follows the
 * worker's events (success, failure with traceback, a retry that succeeds), answers Flower's
 * paths and shapes, hides payloads from viewers, and refuses bad input with messages.
 */
export function describeTaskReadApi(kind: 'amqp' | 'redis'): void {
  describe(`task read API on ${kind} with a real Celery worker`, () => {
    const rig = new TaskApiRig(kind, 'task-read');
    const ids = { add: randomUUID(), kw: randomUUID(), fail: randomUUID(), retry: randomUUID() };

    beforeAll(async () => {
      await rig.start((r) => ({ tasks: { persist: r.file('tasks.sqlite'), persist_interval_seconds: 0.2 } }));
      await rig.worker('main', { queues: ['tq'], concurrency: 2 });
      await sendTasks({ ...rig.broker.celery, sendSentEvent: true }, [
        { name: 'tasks.add', args: [2, 3], queue: 'tq', taskId: ids.add },
        { name: 'tasks.add', kwargs: { x: 40, y: 2 }, queue: 'tq', taskId: ids.kw },
        { name: 'tasks.fail', queue: 'tq', taskId: ids.fail },
        { name: 'tasks.retry_once', queue: 'tq', taskId: ids.retry },
      ]);
      await Promise.all([
        rig.taskInState(ids.add, 'SUCCESS'),
        rig.taskInState(ids.kw, 'SUCCESS'),
        rig.taskInState(ids.fail, 'FAILURE'),
        rig.taskInState(ids.retry, 'SUCCESS'),
      ]);
    });
    afterAll(() => rig.stop());

    it("answers /api/task/info with Flower's fields, from the worker's and the client's events", async () => {
      const r = await rig.get(`/api/task/info/${ids.add}`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        uuid: ids.add,
        name: 'tasks.add',
        state: 'SUCCESS',
        args: '[2, 3]',
        kwargs: '{}',
        result: '5',
        worker: rig.node('main'),
        routing_key: 'tq',
        retries: 0,
        exception: null,
        children: [],
      });
      expect(r.body.client).toMatch(/^gen\d+@/);
      for (const f of ['sent', 'received', 'started', 'succeeded', 'timestamp', 'runtime']) expect(typeof r.body[f], f).toBe('number');
      expect(r.body.succeeded).toBeGreaterThanOrEqual(r.body.started);
    });

    it('keeps the exception and traceback of a failure, and the retry that succeeded after it', async () => {
      const fail = (await rig.get(`/api/task/info/${ids.fail}`)).body;
      expect(fail).toMatchObject({ state: 'FAILURE', exception: "ValueError('boom')" });
      expect(fail.traceback).toContain('ValueError: boom');
      const retry = (await rig.get(`/api/task/info/${ids.retry}`)).body;
      expect(retry).toMatchObject({ state: 'SUCCESS', retries: 1, result: "'retried'" });
      expect(typeof retry.retried).toBe('number');
    });

    it('lists, filters, sorts and searches like Flower', async () => {
      const all = await rig.get('/api/tasks');
      expect(all.status).toBe(200);
      expect(Object.keys(all.body).sort()).toEqual(Object.values(ids).sort());
      const failed = await rig.get('/api/tasks?state=FAILURE');
      expect(Object.keys(failed.body)).toEqual([ids.fail]);
      expect(Object.keys((await rig.get('/api/tasks?taskname=tasks.add&limit=1')).body)).toHaveLength(1);
      const sorted = (await rig.get('/api/tasks?taskname=tasks.add&sort_by=received')).body;
      const received = Object.values(sorted).map((t) => (t as { received: number }).received);
      expect(received).toEqual([...received].sort((a, b) => a - b));
      expect(Object.keys((await rig.get(`/api/tasks?workername=${encodeURIComponent(rig.node('main'))}&taskname=All`)).body)).toHaveLength(
        4,
      );
      expect(Object.keys((await rig.get('/api/tasks?search=kwargs:x=40')).body)).toEqual([ids.kw]);
      expect(
        Object.keys((await rig.get(`/api/tasks?search=${encodeURIComponent('state:FAILURE OR result:retried')}`)).body).sort(),
      ).toEqual([ids.fail, ids.retry].sort());
      expect((await rig.get('/api/task/types')).body).toEqual({ 'task-types': ['tasks.add', 'tasks.fail', 'tasks.retry_once'] });
    });

    it('shows a viewer everything but args, kwargs and results, and refuses searching them', async () => {
      const r = await rig.get(`/api/task/info/${ids.add}`, 'viewer');
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        state: 'SUCCESS',
        name: 'tasks.add',
        args: null,
        kwargs: null,
        result: null,
        hidden_fields: ['args', 'kwargs', 'result'],
      });
      const listed = (await rig.get('/api/tasks?state=FAILURE', 'viewer')).body[ids.fail];
      expect(listed).toMatchObject({ exception: "ValueError('boom')", args: null });
      const search = await rig.get('/api/tasks?search=kwargs:x=40', 'viewer');
      expect(search.status).toBe(403);
      expect(search.body.error).toMatch(/needs a role that sees task payloads/);
      // An unqualified term finds nothing through the hidden fields.
      expect((await rig.get('/api/tasks?search=retried', 'viewer')).body).toEqual({});
      expect((await rig.get('/api/tasks', 'none')).status).toBe(401);
    });

    it('answers bad input with Flower’s 404 and 400s that say what is wrong', async () => {
      const unknown = await rig.get('/api/task/info/no-such-task');
      expect(unknown.status).toBe(404);
      expect(unknown.type).toMatch(/^text\/plain/);
      expect(unknown.text).toBe("Unknown task 'no-such-task'");
      for (const [query, message] of [
        ['limit=-1', /limit must be a whole number/],
        ['limit=abc', /limit must be a whole number/],
        ['offset=1e3', /offset must be a whole number/],
        ['sort_by=worker', /sort_by must be one of name, state, received, started/],
        ['received_start=yesterday', /received_start must be a date/],
        ['received_end=2024-13-01%2010:00', /received_end must be a date/],
        ['search=%22open', /unterminated quote/],
        ['search=ab', /at least 3 characters/],
      ] as const) {
        const r = await rig.get(`/api/tasks?${query}`);
        expect(r.status, query).toBe(400);
        expect(r.body.error, query).toMatch(message);
      }
      expect((await rig.get('/api/tasks?received_start=2000-01-01%2000:00&received_end=2999-01-01%2000:00')).status).toBe(200);
    });

    it('keeps the task history across a restart with tasks.persist', async () => {
      await rig.restart();
      const r = await rig.get(`/api/task/info/${ids.fail}`);
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ state: 'FAILURE', exception: "ValueError('boom')", worker: rig.node('main') });
      expect(Object.keys((await rig.get('/api/tasks')).body).sort()).toEqual(Object.values(ids).sort());
    });
  });
}
