import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from './celery/client.js';
import { waitFor } from './exporter.js';
import { TaskApiRig } from './task-api-scenarios.js';

/**
 * Task and queue actions on one broker, end to end with a real Celery 5.2.6 worker:
 * re-run (as is and edited, refusals), bulk re-run and revoke by filter, and queue purge. One
 * service and one worker for the whole suite.
 */
export function describeTaskActions(kind: 'amqp' | 'redis'): void {
  describe(`task and queue actions on ${kind} with a real Celery worker`, () => {
    const rig = new TaskApiRig(kind, 'task-actions');
    const tag = randomBytes(4).toString('hex');
    const parked = `ta-parked-${tag}`;
    const purged = `ta-purge-${tag}`;
    const post = (path: string, json?: unknown, as: 'admin' | 'operator' | 'viewer' = 'operator') => rig.call('POST', path, as, json);
    const store = () => rig.service.service.taskStore!;
    /** This command's audit records, oldest first. */
    const audit = (command: string) =>
      rig.service.service.audit
        .recent('control', 1000)
        .filter((r) => r.command === command)
        .reverse();
    const client = () => ({ ...rig.broker.celery, sendSentEvent: true });

    beforeAll(async () => {
      // Re-run is submission: operators may send tasks.* to queues a worker consumes or
      // metrics.queues lists (the parked queue: listed, never consumed, for purges).
      await rig.start({ tasks: { submit: { allow: ['tasks.*'], role: 'operator' } }, metrics: { queues: [parked, purged] } });
      await rig.worker('main', { queues: ['ta'], concurrency: 2 });
      // A worker that has started is not yet one the service knows consumes 'ta' (that comes with
      // its first active_queues reply); until then a re-run to 'ta' is refused, rightly.
      await waitFor(
        'the service to know the worker consumes ta',
        () => (rig.service.service.workers.consumersOf('ta').length > 0 ? true : undefined),
        30_000,
        100,
      );
    });
    afterAll(() => rig.stop());

    it('re-runs a failed task on the worker, as is and with edited args; both pages link each other', async () => {
      const [failed] = await sendTasks(client(), [{ name: 'tasks.add', args: [1, 'x'], queue: 'ta' }]);
      await rig.taskInState(failed!, 'FAILURE');

      const again = await post(`/api/task/rerun/${failed}`);
      expect(again.status, again.text).toBe(200);
      // (registered_by comes from the background /api/workers snapshot, which may predate the worker here.)
      expect(again.body).toMatchObject({ queue: 'ta', rerun_of: failed });
      const againId = again.body['task-id'] as string;
      await rig.taskInState(againId, 'FAILURE');
      expect(store().get(againId)).toMatchObject({ name: 'tasks.add', worker: rig.node('main'), rerun_of: failed });

      const edited = await post(`/api/task/rerun/${failed}`, { args: [20, 22] });
      expect(edited.status, edited.text).toBe(200);
      const editedId = edited.body['task-id'] as string;
      await rig.taskInState(editedId, 'SUCCESS');
      expect(store().get(editedId)!.result).toBe('42');

      const info = await rig.get(`/api/task/info/${failed}`);
      expect(info.body.reruns).toEqual([againId, editedId]);
      expect((await rig.get(`/api/task/info/${editedId}`)).body.rerun_of).toBe(failed);
      expect(audit('rerun').map((r) => (r.arguments as Record<string, unknown>).rerun_of)).toEqual([failed, failed]);
      expect((audit('rerun')[1]!.arguments as Record<string, unknown>).edited).toEqual(['args']);
    });

    it('refuses: unknown id 404 with Flower’s body, viewer 403, truncated args 409 (edited accepted), not allowed 403', async () => {
      const unknown = await post('/api/task/rerun/no-such-task');
      expect(unknown).toMatchObject({ status: 404, text: "Unknown task 'no-such-task'" });
      const [long, other] = await sendTasks(client(), [
        { name: 'tasks.add', args: ['y'.repeat(3000), 'z'], queue: parked },
        { name: 'notallowed.task', args: [], queue: parked },
      ]);
      await waitFor('both task-sent events', () => (store().get(long!) && store().get(other!) ? true : undefined), 20_000, 100);
      expect((await post(`/api/task/rerun/${long}`, undefined, 'viewer')).status).toBe(403);
      const truncated = await post(`/api/task/rerun/${long}`);
      expect(truncated.status, truncated.text).toBe(409);
      expect(truncated.body.error).toMatch(/cannot be re-run as is: its args were truncated .*give args in the body/);
      const fixed = await post(`/api/task/rerun/${long}`, { args: [1, 2], queue: 'ta' });
      expect(fixed.status, fixed.text).toBe(200);
      await rig.taskInState(fixed.body['task-id'] as string, 'SUCCESS');
      const refused = await post(`/api/task/rerun/${other}`);
      expect(refused.status).toBe(403);
      expect(refused.body.error).toBe("'notallowed.task' is not allowed by tasks.submit.allow");
      expect(audit('rerun').at(-1)).toMatchObject({ outcome: 'refused' });
    });

    it('re-runs a task no live worker registered, and says so', async () => {
      const [ghost] = await sendTasks(client(), [{ name: 'tasks.nobody_has_this', args: [1], queue: parked }]);
      await waitFor('task-sent of the ghost', () => store().get(ghost!) ?? undefined, 20_000, 100);
      const r = await post(`/api/task/rerun/${ghost}`);
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ queue: parked, registered_by: [], rerun_of: ghost });
      expect(r.body.warning).toMatch(/no live worker has registered 'tasks.nobody_has_this'/);
    });

    it('bulk re-run of every FAILURE of one name: dry run first, then exactly that many run again, one audit record', async () => {
      const marker = `bulk${tag}`;
      const ids = await sendTasks(client(), [
        ...[1, 2, 3].map((i) => ({ name: 'tasks.fail_with', args: [`${marker}-${i}`], queue: 'ta' })),
        { name: 'tasks.add', args: [marker, 1], queue: 'ta' }, // fails too, another name
      ]);
      for (const id of ids) await rig.taskInState(id, 'FAILURE');
      const filter = `state=FAILURE&taskname=tasks.fail_with&search=${marker}`;

      const dry = await post(`/api/tasks/rerun?${filter}&dry_run=true`);
      expect(dry.status, dry.text).toBe(200);
      expect(dry.body).toMatchObject({ dry_run: true, count: 3, max: 100 });
      expect([...(dry.body.task_ids as string[])].sort()).toEqual(ids.slice(0, 3).sort());
      expect(audit('bulk_rerun')).toEqual([]);

      const done = await post(`/api/tasks/rerun?${filter}`);
      expect(done.status, done.text).toBe(200);
      expect(done.body.count).toBe(3);
      const reruns = done.body.reruns as Array<{ task_id: string; 'task-id': string }>;
      for (const r of reruns) await rig.taskInState(r['task-id'], 'FAILURE');
      const rerunsOfThese = [...store().all()].filter((t) => t.rerun_of !== null && ids.includes(t.rerun_of));
      expect(rerunsOfThese).toHaveLength(3);
      expect(rerunsOfThese.every((t) => t.worker === rig.node('main'))).toBe(true);
      expect(audit('bulk_rerun')).toHaveLength(1);
      expect(audit('bulk_rerun')[0]).toMatchObject({
        outcome: 'sent',
        arguments: { filter: { state: 'FAILURE', taskname: 'tasks.fail_with', search: marker } },
      });
      // Per-task re-run records are not written for a bulk one.
      expect(audit('rerun').filter((r) => reruns.some((x) => x['task-id'] === (r.arguments as Record<string, unknown>).task_id))).toEqual(
        [],
      );
    });

    it('bulk: no filter 400, over the maximum 400 naming it; revoke by filter revokes exactly the matches', async () => {
      const none = await post('/api/tasks/rerun');
      expect(none.status).toBe(400);
      expect(none.body.error).toMatch(/give a filter .*never applies to every task/);
      expect((await post('/api/tasks/revoke?state=All')).status).toBe(400);
      const many = `many${tag}`;
      await sendTasks(
        client(),
        Array.from({ length: 101 }, (_, i) => ({ name: 'tasks.noop', args: [], queue: parked, argsrepr: `('${many}', ${i})` })),
      );
      const seen = () => [...store().all()].filter((t) => t.args?.includes(many)).length;
      await waitFor('101 task-sent events', () => (seen() >= 101 ? true : undefined), 30_000, 200);
      const over = await post(`/api/tasks/revoke?search=${many}`);
      expect(over.status, over.text).toBe(400);
      expect(over.body.error).toBe(
        `the filter matches 101 tasks, more than the 100 one request may revoke (MAX_BULK_TASKS): narrow the filter`,
      );
      expect((await post(`/api/tasks/revoke?search=${many}&dry_run=true`)).body).toMatchObject({ count: 101, max: 100 });

      const later = `later${tag}`;
      const waiting = await sendTasks(
        client(),
        [1, 2].map((i) => ({ name: 'tasks.add', args: [later, i], queue: 'ta', countdown: 3 })),
      );
      for (const id of waiting) await rig.taskInState(id, 'RECEIVED');
      expect((await post(`/api/tasks/revoke?search=${later}`, undefined, 'viewer')).status).toBe(403);
      const revoked = await post(`/api/tasks/revoke?search=${later}&state=RECEIVED`);
      expect(revoked.status, revoked.text).toBe(200);
      expect(revoked.body).toMatchObject({ count: 2, terminate: false, outcome: 'ok' });
      for (const id of waiting) await rig.taskInState(id, 'REVOKED');
      expect(audit('revoke').at(-1)).toMatchObject({ filter: { search: later, state: 'RECEIVED' } });
      expect((await post(`/api/tasks/revoke?search=${later}&terminate=true`)).status).toBe(403);
    });

    it('purge: admin only, dry run counts, 500 messages (every priority) removed and reported, unknown queue 404', async () => {
      await sendTasks(
        client(),
        Array.from({ length: 500 }, (_, i) => ({ name: 'tasks.noop', queue: purged, priority: [0, 5, 9][i % 3] })),
      );
      const path = `/api/v1/queues/${purged}/purge`;
      expect((await post(path, undefined, 'operator')).status).toBe(403);
      const dry = await post(`${path}?dry_run=true`, undefined, 'admin');
      expect(dry.body).toEqual({ queue: purged, dry_run: true, messages: 500 });
      const answer = await post(path, undefined, 'admin');
      expect(answer.status, answer.text).toBe(200);
      expect(answer.body).toEqual({ queue: purged, purged: 500 });
      expect((await post(`${path}?dry_run=true`, undefined, 'admin')).body.messages).toBe(0);
      expect(audit('purge').at(-1)).toMatchObject({ outcome: 'ok', removed: 500, arguments: { queue: purged } });
      const unknown = await post(`/api/v1/queues/ta-never-${tag}/purge`, undefined, 'admin');
      expect(unknown.status).toBe(404);
      expect((await post('/api/v1/queues/bad%20name/purge', undefined, 'admin')).status).toBe(400);
    });
  });
}
