import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import { TaskApiRig } from './task-api-scenarios.js';

/** Celery's Redis result backend for these suites: its own db, keys are per task id anyway. */
const RESULT_BACKEND = 'redis://127.0.0.1:6379/3';

/**
 * Flower's task submission, result and abort paths on one broker, end to end: messages we
 * publish are run by a real Celery 5.2.6 worker, results are read from Celery's own Redis result
 * backend, an AbortableTask stops when aborted, a custom task id can be revoked, and bad input
 * or a missing/unreachable backend is refused before anything is sent.
 */
export function describeTaskSubmitApi(kind: 'amqp' | 'redis'): void {
  describe(`task submission API on ${kind} with a real Celery worker`, () => {
    const rig = new TaskApiRig(kind, 'task-submit');
    const extra: RunningExporter[] = [];
    const post = (path: string, json?: unknown, as: 'operator' | 'viewer' = 'operator') => rig.call('POST', path, as, json);

    beforeAll(async () => {
      // Submission is off unless configured (tasks.submit): these tests send Flower-style as an
      // operator to any queue, so they allow exactly that.
      await rig.start({
        tasks: { result_backend: RESULT_BACKEND, submit: { allow: ['tasks.*'], role: 'operator', create_missing_queues: true } },
      });
      await rig.worker('main', { queues: ['ts', 'ts-other'], concurrency: 2, env: { CAP_RESULT_BACKEND: RESULT_BACKEND } });
    });
    afterAll(async () => {
      await Promise.allSettled(extra.map((e) => e.stop()));
      await rig.stop();
    });

    it('async-apply publishes a message the worker runs; the result comes from the backend', async () => {
      const r = await post('/api/task/async-apply/tasks.add', { args: [20, 22], queue: 'ts' });
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ queue: 'ts', registered_by: [rig.node('main')] });
      // Read from the backend right after publishing: a fast worker may already be done.
      expect(['PENDING', 'STARTED', 'SUCCESS']).toContain(r.body.state);
      expect(r.body.warning).toBeUndefined();
      const id = r.body['task-id'] as string;
      await rig.taskInState(id, 'SUCCESS');
      // Our argsrepr came back in task-received, as Celery's would.
      expect(rig.service.service.taskStore!.get(id)).toMatchObject({
        name: 'tasks.add',
        args: '[20, 22]',
        result: '42',
        routing_key: null,
      });
      expect((await rig.get(`/api/task/result/${id}`)).body).toEqual({ 'task-id': id, state: 'SUCCESS', result: 42 });
      expect((await rig.get(`/api/task/result/${id}`, 'viewer')).body).toEqual({
        'task-id': id,
        state: 'SUCCESS',
        result: null,
        hidden_fields: ['result'],
      });
    });

    it("send-task passes Flower's options through: custom id, kwargs, countdown, expires, priority", async () => {
      const id = `report-${randomUUID()}`;
      const r = await post('/api/task/send-task/tasks.add', {
        kwargs: { x: 1, y: 2 },
        queue: 'ts-other',
        countdown: 1,
        expires: 120,
        priority: 3,
        task_id: id,
      });
      expect(r.status, r.text).toBe(200);
      expect(r.body['task-id']).toBe(id);
      await rig.taskInState(id, 'SUCCESS');
      const t = rig.service.service.taskStore!.get(id)!;
      expect(t).toMatchObject({ kwargs: "{'x': 1, 'y': 2}", result: '3' });
      expect(Date.parse(t.eta!) / 1000).toBeGreaterThan(t.received! - 5);
      expect(Date.parse(t.expires!)).toBeGreaterThan(Date.parse(t.eta!));
    });

    it('apply waits for the result and answers it', async () => {
      const r = await post('/api/task/apply/tasks.add?timeout=30', { args: [1, 2], queue: 'ts' });
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ state: 'SUCCESS', result: 3 });
      const failed = await post('/api/task/apply/tasks.fail', { queue: 'ts' });
      expect(failed.body).toMatchObject({ state: 'FAILURE', result: "ValueError('boom')" });
      expect(failed.body.traceback).toContain('ValueError: boom');
    });

    it('sends a task no worker registered, and says so', async () => {
      const r = await post('/api/task/send-task/tasks.nobody_has_this', { queue: 'ts-nobody' });
      expect(r.status, r.text).toBe(200);
      expect(r.body.registered_by).toEqual([]);
      expect(r.body.warning).toMatch(/no live worker has registered 'tasks.nobody_has_this': the message waits in 'ts-nobody'/);
    });

    it('revokes a task with a custom (non-UUID) id while it waits for its countdown', async () => {
      const id = `nightly job ${randomUUID()}`;
      expect((await post('/api/task/send-task/tasks.add', { args: [0, 0], queue: 'ts', countdown: 4, task_id: id })).status).toBe(200);
      await rig.taskInState(id, 'RECEIVED');
      const r = await post(`/api/task/revoke/${encodeURIComponent(id)}`);
      expect(r.status, r.text).toBe(200);
      await rig.taskInState(id, 'REVOKED');
    });

    it('aborts an AbortableTask through the result backend', async () => {
      const r = await post('/api/task/async-apply/tasks.abortable', { args: [60], queue: 'ts' });
      const id = r.body['task-id'] as string;
      await rig.taskInState(id, 'STARTED');
      const abort = await post(`/api/task/abort/${id}`);
      expect(abort.status, abort.text).toBe(200);
      expect(abort.body).toEqual({ message: `Aborted '${id}'` });
      await rig.taskInState(id, 'SUCCESS');
      expect(rig.service.service.taskStore!.get(id)!.result).toBe("'aborted'");
      expect((await post(`/api/task/abort/${id}`, undefined, 'viewer')).status).toBe(403);
    });

    it('answers PENDING for a task the backend does not know, within the timeout asked', async () => {
      const id = randomUUID();
      expect((await rig.get(`/api/task/result/${id}?timeout=0.5`)).body).toEqual({ 'task-id': id, state: 'PENDING' });
      expect((await rig.get(`/api/task/result/${id}?timeout=forever`)).status).toBe(400);
    });

    it('refuses bad input with 400 and sends nothing', async () => {
      for (const [body, message] of [
        [{ args: 'not a list' }, /args must be an array/],
        ['{"args": [1e400]}', /args\[0\] is not a finite number/],
        ['{"args": [12345678901234567890]}', /beyond ±2\^53/],
        ['{"args": [1,', /not valid JSON/],
        [{ args: [1], bogus: true }, /unknown option bogus/],
        [{ eta: 'soon' }, /eta must be a date/],
        [{ queue: 'has space' }, /queue: must be a queue name/],
      ] as const) {
        const r = await post('/api/task/send-task/tasks.add', body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.body.error, JSON.stringify(body)).toMatch(message);
      }
      expect((await post('/api/task/send-task/not%20a%20name', {})).status).toBe(400);
      expect((await post('/api/task/send-task/tasks.add', { args: [1, 2] }, 'viewer')).status).toBe(403);
    });

    it('answers 503 with a clear message when no backend is configured or it is down, and nothing hangs', async () => {
      const submit = ['--auth-insecure-no-auth', 'true', '--tasks-submit-allow', 'tasks.*', '--tasks-submit-create-missing-queues', 'true'];
      const none = await startExporter([...rig.broker.exporterArgs, ...submit]);
      const down = await startExporter([...rig.broker.exporterArgs, ...submit, '--tasks-result-backend', 'redis://127.0.0.1:1/0']);
      extra.push(none, down);
      const origin = (e: RunningExporter) => ({ Origin: e.url });
      const ask = (e: RunningExporter, method: string, path: string) =>
        fetch(`${e.url}${path}`, { method, headers: origin(e), signal: AbortSignal.timeout(30_000) });
      for (const [e, message] of [
        [none, /no result backend is configured/],
        [down, /result backend is unreachable/],
      ] as const) {
        for (const [method, path] of [
          ['GET', `/api/task/result/${randomUUID()}`],
          ['POST', `/api/task/abort/${randomUUID()}`],
          ['POST', '/api/task/apply/tasks.add'],
        ] as const) {
          const res = await ask(e, method, path);
          expect(res.status, `${method} ${path}`).toBe(503);
          expect(((await res.json()) as { error: string }).error).toMatch(message);
        }
      }
      await waitFor(
        'nothing sent by the refused apply',
        () => (rig.service.service.taskStore!.query({ name: 'tasks.add', state: 'PENDING' }).filtered === 0 ? true : undefined),
        5_000,
      );
    });
  });
}
