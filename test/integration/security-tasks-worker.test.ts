import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from '../support/celery/client.js';
import type { CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { TaskApiRig, type Caller } from '../support/task-api-scenarios.js';

/**
 * Issue 16 against the real service on a real Redis with real Celery 5.2.6 workers: each test
 * reproduces a finding of the review and fails on the code before its fix. The payload role is
 * admin here, so operators and viewers both stand for callers who must not see task arguments.
 */

const RESULT_BACKEND = 'redis://127.0.0.1:6379/3';
const SECRET = `hunter2-${randomUUID()}`;
const CARD = '4111111111111111';

const rig = new TaskApiRig('redis', 'sec-tasks');
let holder: CeleryWorker;

beforeAll(async () => {
  await rig.start({
    tasks: { payload_role: 'admin', result_backend: RESULT_BACKEND },
  });
  // One process and a prefetch of two: one task runs (active), the next waits (reserved).
  holder = await rig.worker('holder', { queues: ['sec-hold'], concurrency: 1, prefetchMultiplier: 2 });
});
afterAll(() => rig.stop());

describe('finding 2: tasks.payload_role holds for tasks in flight (inspect replies)', () => {
  const hidden = ['viewer', 'operator'] as const satisfies readonly Caller[];
  const hold = (seconds: number, countdown?: number) => ({
    name: 'tasks.hold',
    args: [seconds, CARD],
    kwargs: { password: SECRET },
    queue: 'sec-hold',
    ...(countdown ? { countdown } : {}),
  });

  beforeAll(async () => {
    await sendTasks(rig.broker.celery, [hold(120), hold(120), hold(1, 600)]);
    await waitFor(
      'one task active, one reserved, one scheduled on the holder',
      async () => {
        const info = (await rig.get(`/api/workers?refresh=1&workername=${encodeURIComponent(holder.nodename)}`, 'admin')).body[
          holder.nodename
        ];
        return info?.active?.length === 1 && info.reserved?.length === 1 && info.scheduled?.length === 1 ? true : undefined;
      },
      60_000,
      500,
    );
  });
  afterAll(() => holder.stop(2_000));

  it('GET /api/workers: active, reserved and scheduled lose args and kwargs below the payload role', async () => {
    const admin = await rig.get('/api/workers', 'admin');
    expect(admin.text).toContain(SECRET);
    expect(admin.text).toContain(CARD);
    for (const as of hidden) {
      for (const path of ['/api/workers', `/api/workers?workername=${encodeURIComponent(holder.nodename)}`]) {
        const r = await rig.get(path, as);
        expect(r.status, `${as} ${path}`).toBe(200);
        expect(r.text, `${as} ${path}`).not.toContain(SECRET);
        expect(r.text, `${as} ${path}`).not.toContain(CARD);
        const info = r.body[holder.nodename];
        for (const entry of [info.active[0], info.reserved[0], info.scheduled[0].request])
          expect(entry, `${as} ${path}`).toMatchObject({ name: 'tasks.hold', args: null, kwargs: null, hidden_fields: ['args', 'kwargs'] });
        expect(info.scheduled[0].eta).toEqual(expect.any(String));
      }
    }
  });

  it('/ui/workers/<name>: the task lists say the arguments are hidden', async () => {
    const page = (as: Caller) => rig.get(`/ui/workers/${encodeURIComponent(holder.nodename)}`, as);
    expect((await page('admin')).text).toContain(SECRET);
    for (const as of hidden) {
      const r = await page(as);
      expect(r.status).toBe(200);
      expect(r.text).toContain('tasks.hold');
      expect(r.text).not.toContain(SECRET);
      expect(r.text).not.toContain(CARD);
      expect(r.text.match(/hidden for your role/g)).toHaveLength(3);
    }
  });

  it('POST /api/v1/actions active, reserved, scheduled: replies without arguments below the payload role', async () => {
    for (const command of ['active', 'reserved', 'scheduled']) {
      const body = { command, targets: { workers: [holder.nodename] } };
      const admin = await rig.call('POST', '/api/v1/actions', 'admin', body);
      expect(admin.text, command).toContain(SECRET);
      const operator = await rig.call('POST', '/api/v1/actions', 'operator', body);
      expect(operator.status, command).toBe(200);
      expect(operator.body.results[0].status, command).toBe('ok');
      expect(operator.text, command).not.toContain(SECRET);
      expect(operator.text, command).not.toContain(CARD);
    }
  });

  it('the task API agrees: the held task’s payload is hidden from an operator', async () => {
    const listed = await rig.get('/api/tasks?taskname=tasks.hold', 'operator');
    expect(Object.keys(listed.body).length).toBeGreaterThan(0);
    expect(listed.text).not.toContain(SECRET);
  });
});
