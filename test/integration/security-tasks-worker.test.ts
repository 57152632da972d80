import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { connect } from 'amqplib';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from '../support/celery/client.js';
import type { CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { TaskApiRig, type Caller } from '../support/task-api-scenarios.js';

/**
 * The task half's security against the real service on a real Redis with real Celery 5.2.6 workers: each test
 * reproduces one attack and fails on the code before its fix. The payload role is
 * admin here, so operators and viewers both stand for callers who must not see task arguments.
 */

const RESULT_BACKEND = 'redis://127.0.0.1:6379/3';
const SECRET = `hunter2-${randomUUID()}`;
const CARD = '4111111111111111';

const rig = new TaskApiRig('redis', 'sec-tasks');
let holder: CeleryWorker;
let main: CeleryWorker;

beforeAll(async () => {
  await rig.start({
    tasks: { payload_role: 'admin', result_backend: RESULT_BACKEND, submit: { allow: ['tasks.add', 'tasks.hold'] } },
    metrics: { queues: ['sec-listed'] },
  });
  [holder, main] = await Promise.all([
    // One process and a prefetch of two: one task runs (active), the next waits (reserved).
    rig.worker('holder', { queues: ['sec-hold'], concurrency: 1, prefetchMultiplier: 2 }),
    rig.worker('main', { queues: ['sec-w'], concurrency: 2, env: { CAP_RESULT_BACKEND: RESULT_BACKEND } }),
  ]);
  await waitFor(
    'the main worker known to consume sec-w',
    () => (rig.service.service.workers.consumersOf('sec-w').some((w) => w.hostname === main.nodename) ? true : undefined),
    30_000,
  );
});
afterAll(() => rig.stop());

describe('tasks.payload_role holds for tasks in flight (inspect replies)', () => {
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

describe('only allowed tasks, by the submit role, to known queues, under their own name and a new id', () => {
  const send = (name: string, body: unknown, as: Caller = 'admin', path = 'async-apply') =>
    rig.call('POST', `/api/task/${path}/${name}`, as, body);
  const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
  const queueKey = (queue: string) => `${String(rig.broker.celery.transportOptions?.global_keyprefix)}${queue}`;
  afterAll(async () => {
    await redis.del(queueKey('sec-listed')).catch(() => undefined);
    redis.disconnect();
  });

  it('an operator cannot send (tasks.submit.role is admin by default)', async () => {
    for (const path of ['async-apply', 'send-task', 'apply']) {
      const r = await send('tasks.add', { args: [1, 2], queue: 'sec-w' }, 'operator', path);
      expect(r.status, path).toBe(403);
      expect(r.body.error, path).toMatch(/needs the admin role/);
    }
  });

  it('an allowed task sent to a queue a live worker consumes runs', async () => {
    const r = await send('tasks.add', { args: [20, 22], queue: 'sec-w' });
    expect(r.status, r.text).toBe(200);
    await rig.taskInState(r.body['task-id'], 'SUCCESS');
  });

  it("Celery's own tasks and tasks outside tasks.submit.allow are refused, and the refusal is audited", async () => {
    const builtin = await send('celery.accumulate', { args: [1, 2], queue: 'sec-w' });
    expect(builtin.status).toBe(403);
    expect(builtin.body.error).toMatch(/one of Celery's own tasks: only a tasks.submit.allow glob starting with 'celery.' allows it/);
    const other = await send('tasks.fail', { queue: 'sec-w' }, 'admin', 'send-task');
    expect(other.status).toBe(403);
    expect(other.body.error).toBe("'tasks.fail' is not allowed by tasks.submit.allow");
    const audit = (await rig.get('/api/v1/audit?kind=control&limit=50', 'admin')).body as Array<Record<string, unknown>>;
    expect(audit.find((a) => (a.arguments as { task?: string }).task === 'celery.accumulate')).toMatchObject({
      outcome: 'refused',
      by: { actor: 'token:admin' },
    });
    expect(rig.service.service.taskStore!.query({ name: 'celery.accumulate' }).filtered).toBe(0);
  });

  it('no queue is made up: a send goes to a queue a live worker consumes or metrics.queues lists', async () => {
    const made = await send('tasks.add', { args: [1, 1], queue: 'sec-made-up' });
    expect(made.status).toBe(400);
    expect(made.body.error).toMatch(/no live worker consumes queue 'sec-made-up' and metrics.queues does not list it/);
    const listed = await send('tasks.add', { args: [1, 1], queue: 'sec-listed' });
    expect(listed.status, listed.text).toBe(200);
    // On Redis a send is an LPUSH to the queue's list: the refused one left no key.
    expect(await redis.llen(queueKey('sec-listed'))).toBe(1);
    expect(await redis.keys(`${queueKey('sec-made-up')}*`)).toEqual([]);
  });

  it('shadow and the id of a known task are refused, and nothing is sent', async () => {
    const shadow = await send('tasks.add', { args: [1, 2], queue: 'sec-w', shadow: 'tasks.innocent' });
    expect(shadow.status).toBe(400);
    expect(shadow.body.error).toMatch(/shadow is not accepted/);
    const first = await send('tasks.add', { args: [2, 2], queue: 'sec-w' });
    const id = first.body['task-id'] as string;
    await rig.taskInState(id, 'SUCCESS');
    const again = await send('tasks.add', { args: [3, 3], queue: 'sec-w', task_id: id }, 'admin', 'send-task');
    expect(again.status).toBe(409);
    expect(again.body.error).toBe(`task_id '${id}' is already a known task: give a new id, or none`);
    expect((await rig.get(`/api/task/result/${id}`, 'admin')).body).toMatchObject({ state: 'SUCCESS', result: 4 });
    expect(rig.service.service.taskStore!.get(id)!.args).toBe('[2, 2]');
  });
});

describe('task submission on RabbitMQ: a queue that does not exist is not declared', () => {
  const amqp = new TaskApiRig('amqp', 'sec-submit');
  beforeAll(() => amqp.start({ tasks: { submit: { allow: ['tasks.*'] } }, metrics: { queues: ['sec-listed'] } }));
  afterAll(() => amqp.stop());

  it('a listed queue missing on the broker refuses the send (503, nothing declared); an unknown queue is a 400', async () => {
    const listed = await amqp.call('POST', '/api/task/async-apply/tasks.add', 'admin', { args: [1, 2], queue: 'sec-listed' });
    expect(listed.status).toBe(503);
    expect(listed.body.error).toMatch(
      /queue 'sec-listed' does not exist on the broker \(tasks.submit.create_missing_queues is off\): nothing was sent/,
    );
    const unknown = await amqp.call('POST', '/api/task/async-apply/tasks.add', 'admin', { args: [1, 2], queue: 'sec-made-up' });
    expect(unknown.status).toBe(400);
    const connection = await connect(amqp.broker.celery.brokerUrl);
    try {
      for (const queue of ['sec-listed', 'sec-made-up']) {
        const channel = await connection.createChannel();
        channel.on('error', () => undefined);
        await expect(channel.checkQueue(queue), queue).rejects.toThrow(/NOT_FOUND/);
      }
    } finally {
      await connection.close();
    }
  });
});

describe('result waits are bounded and shared; the backend connection is opened once', () => {
  const results = new TaskApiRig('redis', 'sec-results');
  const keyPrefix = `sec-res-${randomUUID().slice(0, 8)}:`;
  const result = (id: string, query = '', as: Caller = 'operator', signal?: AbortSignal) =>
    fetch(`${results.service.url}/api/task/result/${id}${query}`, {
      headers: { Authorization: results.authorization(as === 'none' ? 'viewer' : as) },
      signal,
    });
  beforeAll(() => results.start({ tasks: { result_backend: RESULT_BACKEND, result_key_prefix: keyPrefix, max_result_waiters: 20 } }));
  afterAll(() => results.stop());

  it('50 concurrent first result requests all get an answer (they share one connect)', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, () => result(randomUUID())));
    expect(answers.map((a) => a.status)).toEqual(Array<number>(50).fill(200));
    expect(await answers[0]!.json()).toMatchObject({ state: 'PENDING' });
  });

  it('at most max_result_waiters waits; all of them read in one MGET per period; a gone client frees its place', async () => {
    const ids = Array.from({ length: 5 }, () => randomUUID());
    const clients = new AbortController();
    // 20 waits on 5 ids: four requests per id.
    const waits = Array.from({ length: 20 }, (_, i) =>
      result(ids[i % 5]!, '?timeout=60', 'operator', clients.signal).catch(() => undefined),
    );
    await waitFor(
      'a 21st wait refused with 429',
      async () => ((await result(randomUUID(), '?timeout=0.1')).status === 429 ? true : undefined),
      20_000,
      50,
    );
    const refused = await result(randomUUID(), '?timeout=1');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as { error: string }).error).toMatch(/20 result waits are in progress \(tasks.max_result_waiters\)/);

    // What the service sends for our keys while the 20 wait: only MGETs, each naming all five ids.
    const monitor = await new Redis({ host: '127.0.0.1', port: 6379 }).monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.some((a) => a.startsWith(keyPrefix))) seen.push(args);
    });
    try {
      await waitFor('five reads of the waited results', () => (seen.length >= 5 ? true : undefined), 20_000, 50);
    } finally {
      monitor.disconnect();
    }
    for (const command of seen) {
      expect(command[0]!.toLowerCase()).toBe('mget');
      expect(command.slice(1).sort()).toEqual(ids.map((id) => `${keyPrefix}celery-task-meta-${id}`).sort());
    }

    clients.abort();
    await Promise.all(waits);
    await waitFor(
      'room again once the clients left',
      async () => ((await result(randomUUID(), '?timeout=0.1')).status === 200 ? true : undefined),
      20_000,
      50,
    );
  });

  it('a viewer waits 5 s at most; longer waits are for operators', async () => {
    const long = await result(randomUUID(), '?timeout=10', 'viewer');
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: string }).error).toBe(
      'timeout must be seconds from 0 to 5 for a viewer (longer waits need the operator role)',
    );
    expect((await result(randomUUID(), '?timeout=0.5', 'viewer')).status).toBe(200);
    expect((await result(randomUUID(), '?timeout=5.2', 'operator')).status).toBe(200);
  });
});

describe('tasks.persist is private and its rows are checked field by field', () => {
  const persisted = new TaskApiRig('redis', 'sec-persist');
  const ids = { add: randomUUID(), fail: randomUUID() };
  const file = () => persisted.file('tasks.sqlite');
  beforeAll(async () => {
    await persisted.start((r) => ({
      tasks: { persist: r.file('tasks.sqlite'), persist_interval_seconds: 0.2 },
      audit: { file: r.file('audit.jsonl') },
    }));
    await sendTasks({ ...persisted.broker.celery, sendSentEvent: true }, [
      { name: 'tasks.add', args: [1, 2], queue: 'sec-nobody', taskId: ids.add },
      { name: 'tasks.fail', queue: 'sec-nobody', taskId: ids.fail },
    ]);
    await persisted.taskInState(ids.add, 'PENDING');
    await persisted.taskInState(ids.fail, 'PENDING');
    // An audited action, so the audit file has a record.
    expect((await persisted.call('POST', `/api/task/revoke/${ids.fail}`, 'operator')).status).toBe(200);
    await waitFor('both tasks written', () => {
      const db = new Database(file(), { readonly: true });
      try {
        return (db.prepare('SELECT count(*) FROM tasks').pluck().get() as number) === 2 ? true : undefined;
      } finally {
        db.close();
      }
    });
  });
  afterAll(() => persisted.stop());

  it('tasks.persist, its -wal and -shm, and the audit file are readable by the service user only', () => {
    for (const f of [file(), `${file()}-wal`, `${file()}-shm`, persisted.file('audit.jsonl')])
      expect((statSync(f).mode & 0o777).toString(8), f).toBe('600');
  });

  it('rows with a field of the wrong type are skipped and counted; every page and search still answers', async () => {
    await persisted.restart(async () => {
      const db = new Database(file());
      const good = JSON.parse(db.prepare('SELECT record FROM tasks WHERE uuid = ?').pluck().get(ids.add) as string) as Record<
        string,
        unknown
      >;
      const insert = db.prepare('INSERT INTO tasks (uuid, seq, record) VALUES (?, ?, ?)');
      insert.run('bad-runtime', 1000, JSON.stringify({ ...good, uuid: 'bad-runtime', state: 'SUCCESS', runtime: 'x' }));
      insert.run('bad-name', 1001, JSON.stringify({ ...good, uuid: 'bad-name', name: 12345 }));
      insert.run('not-json', 1002, 'not json at all');
      db.close();
    });
    for (const path of [
      '/ui/tasks',
      '/ui/tasks?sort_by=-runtime',
      `/ui/tasks/${ids.add}`,
      '/api/tasks',
      '/api/tasks?sort_by=name',
      '/api/tasks?search=tasks.add',
      `/api/task/info/${ids.add}`,
    ])
      expect((await persisted.get(path, 'admin')).status, path).toBe(200);
    expect((await persisted.get('/api/task/info/bad-runtime', 'admin')).status).toBe(404);
    expect(Object.keys((await persisted.get('/api/tasks', 'admin')).body).sort()).toEqual(Object.values(ids).sort());
    const metrics = await persisted.service.scrape();
    const skipped = (reason: string) =>
      metrics.find(
        (m) => m.name === 'celery_autopilot_persisted_rows_skipped_total' && m.labels.table === 'tasks' && m.labels.reason === reason,
      )?.value;
    expect([skipped('bad_field'), skipped('not_json')]).toEqual([2, 1]);
  });
});

describe('the caller is checked before a body is read', () => {
  const routes = [
    '/api/task/async-apply/tasks.add',
    '/api/task/send-task/tasks.add',
    '/api/task/apply/tasks.add',
    `/api/task/abort/${randomUUID()}`,
    '/api/v1/actions',
    '/api/worker/pool/grow/celery@nowhere',
  ];
  const bodies = { 'invalid JSON': '{"args": [1,', 'too large': JSON.stringify({ args: ['x'.repeat(2 * 1024 * 1024)] }) };
  const post = (path: string, body: string, authorization?: string) =>
    fetch(`${rig.service.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(authorization ? { Authorization: authorization } : {}) },
      body,
      signal: AbortSignal.timeout(30_000),
    });

  it('anonymous: 401 for a body that is invalid or too large, on every route that takes one', async () => {
    for (const path of routes)
      for (const [what, body] of Object.entries(bodies)) expect((await post(path, body)).status, `${path}, ${what}`).toBe(401);
  });

  it('a caller whose role is too low: 403, whatever the body; the right role still gets the body errors', async () => {
    for (const path of routes)
      for (const [what, body] of Object.entries(bodies))
        expect((await post(path, body, rig.authorization('viewer'))).status, `${path}, ${what}`).toBe(403);
    const bad = await post('/api/v1/actions', bodies['invalid JSON'], rig.authorization('operator'));
    expect(bad.status).toBe(400);
    expect((await post('/api/v1/actions', bodies['too large'], rig.authorization('operator'))).status).toBe(413);
  });
});
