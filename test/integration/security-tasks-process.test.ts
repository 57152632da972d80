import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from '../support/celery/client.js';
import { waitFor } from '../support/exporter.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { startServiceProcess, type ServiceProcess } from '../support/service-process.js';

/**
 * Task search over hostile text, against the real service in a process of its own on a real Redis: a
 * Celery client plants hostile kwargs and args (runs of backslashes in a list, as Windows paths
 * and escaped JSON give, and 100 000 characters of backslashes, quotes and brackets through
 * Celery's own argsrepr/kwargsrepr options), then an operator runs every search operator. On the
 * old regular expression the first `kwargs:user=ann` took tens of seconds (44 backslashes) or
 * never ended (1000): every request here is bounded, so such a service fails the test instead of
 * hanging it.
 */

const OPERATOR = `o-${randomUUID()}`;
const OTHER_OPERATOR = `o2-${randomUUID()}`;
const VIEWER = `v-${randomUUID()}`;
const ADMIN = `a-${randomUUID()}`;
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const slashes = (n: number) => '\\'.repeat(n);

let broker: BrokerUnderTest;
let service: ServiceProcess;

beforeAll(async () => {
  broker = await isolatedBroker('redis', 'sec-search');
  service = await startServiceProcess(
    {
      auth: {
        tokens: [
          { name: 'operator', sha256: sha(OPERATOR), role: 'operator' },
          { name: 'other-operator', sha256: sha(OTHER_OPERATOR), role: 'operator' },
          { name: 'viewer', sha256: sha(VIEWER), role: 'viewer' },
          { name: 'admin', sha256: sha(ADMIN), role: 'admin' },
        ],
      },
      tasks: { max_args_chars: 262_144, max_kwargs_chars: 262_144 },
      events: { max_message_bytes: 4_194_304 },
    },
    broker.exporterArgs,
  );
  await waitFor('service ready', async () => ((await service.fetch('/-/ready')).status === 200 ? true : undefined), 30_000, 200);
});
afterAll(async () => {
  await service?.stop();
  await broker?.cleanup();
});

describe('no search freezes the service, whatever task text a client planted', () => {
  const ids = { win44: randomUUID(), win1000: randomUUID(), big: randomUUID(), plain: randomUUID() };

  beforeAll(async () => {
    const hostile = `\\'"[({${slashes(20)}`.repeat(4000).slice(0, 100_000);
    await sendTasks({ ...broker.celery, sendSentEvent: true }, [
      // Windows paths in a list: the second path is a quoted run of 44 (and, cut with the repr at
      // 1024 characters, about 1000) backslashes after a comma, which the old expression tried
      // as a key in ever more ways. (Celery's saferepr writes backslashes as they are.)
      { name: 'tasks.copy', kwargs: { user: 'ann', paths: ['C:\\tmp', `C:${slashes(44)}`] }, queue: 'sec-nobody', taskId: ids.win44 },
      { name: 'tasks.copy', kwargs: { user: 'ann', paths: ['C:\\tmp', slashes(1000)] }, queue: 'sec-nobody', taskId: ids.win1000 },
      {
        name: 'tasks.blob',
        queue: 'sec-nobody',
        taskId: ids.big,
        argsrepr: `(${hostile},)`,
        kwargsrepr: `{'user': 'bob', 'blob': ['${slashes(100_000)}'], 'more': "${hostile.slice(0, 20_000)}"}`,
      },
      { name: 'tasks.plain', kwargs: { user: 'carol', n: 3 }, queue: 'sec-nobody', taskId: ids.plain },
    ]);
    await waitFor(
      'the four tasks in the store',
      async () => {
        const r = await service.fetch('/api/tasks?limit=10', { headers: { Authorization: `Bearer ${OPERATOR}` } });
        const body = (await r.json()) as Record<string, { kwargs: string | null }>;
        return Object.values(ids).every((id) => body[id]?.kwargs) ? body : undefined;
      },
      30_000,
      200,
    );
  });

  it('the planted text is kept whole (the store holds what the searches must scan)', async () => {
    const r = await service.fetch(`/api/task/info/${ids.big}`, { headers: { Authorization: `Bearer ${OPERATOR}` } });
    const task = (await r.json()) as { kwargs: string; args: string };
    expect(task.kwargs.length).toBeGreaterThan(120_000);
    expect(task.args.length).toBeGreaterThan(100_000);
    expect(task.kwargs).toContain(slashes(100_000));
  });

  it.each([
    ['kwargs:user=ann', ['win44', 'win1000']],
    ['kwargs:user=bob', ['big']],
    ['kwargs:n=3', ['plain']],
    ['kwargs:user=nobody', []],
    ['kwargs:paths', ['win44', 'win1000']],
    ['kwargs:"C:\\\\\\\\"', ['win44']],
    ['args:"[({"', ['big']],
    ['name:tasks.copy', ['win44', 'win1000']],
    ['state:PENDING name:plain', ['plain']],
    ['worker:nobody', []],
    ['result:anything', []],
    ['tasks.blob', ['big']],
    ['"tasks.plain"', ['plain']],
    ['kwargs:user=ann AND name:copy', ['win44', 'win1000']],
    ['kwargs:user=bob OR kwargs:user=carol', ['big', 'plain']],
    ['(kwargs:user=ann OR kwargs:user=bob) name:blob', ['big']],
  ])('%s', async (search, expected) => {
    const r = await service.fetch(`/api/tasks?limit=100&search=${encodeURIComponent(search)}`, {
      headers: { Authorization: `Bearer ${OPERATOR}` },
    });
    expect(r.status).toBe(200);
    const found = Object.keys((await r.json()) as Record<string, unknown>);
    const names = Object.fromEntries(Object.entries(ids).map(([k, v]) => [v, k]));
    expect(found.map((id) => names[id] ?? id).sort()).toEqual([...expected].sort());
    expect((await service.fetch('/-/healthy')).status).toBe(200);
  });
});

/** A GET whose answer the client stops reading after its first bytes: the server is left mid-answer. */
async function stalledRequest(urlPath: string, token: string): Promise<{ socket: Socket; head: string }> {
  const { port } = new URL(service.url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
  const [first] = (await once(socket, 'data')) as [Buffer];
  socket.pause();
  return { socket, head: first.toString('latin1').split('\r\n')[0]! };
}

describe('task lists are bounded by page and by caller', () => {
  const BULK = 1000;
  const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });
  const count = async (urlPath: string, token = VIEWER) => {
    const r = await service.fetch(urlPath, bearer(token));
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    // 1000 tasks of 30 000 characters of args each: a full page with payloads is about 30 MB.
    await sendTasks(
      { ...broker.celery, sendSentEvent: true },
      Array.from({ length: BULK }, (_, i) => ({
        name: 'tasks.bulk',
        queue: 'sec-nobody',
        argsrepr: `('${String(i).padEnd(30_000, 'x')}',)`,
      })),
    );
    await waitFor(
      `the ${BULK} bulk tasks in the store`,
      async () => (Object.keys((await count(`/api/tasks?taskname=tasks.bulk&limit=${BULK}`)).body).length === BULK ? true : undefined),
      60_000,
      500,
    );
  });

  it('/api/tasks answers 100 tasks without limit and at most 1000; the console at most its largest page', async () => {
    expect(Object.keys((await count('/api/tasks')).body)).toHaveLength(100);
    expect(Object.keys((await count('/api/tasks?limit=1000')).body)).toHaveLength(1000);
    const over = await count('/api/tasks?limit=1001');
    expect(over.status).toBe(400);
    expect(over.body.error).toMatch(/limit must be a whole number from 0 to 1000/);
    const page = await service.fetch('/ui/tasks?limit=500', bearer(VIEWER));
    expect(page.status).toBe(200);
    expect((await page.text()).match(/<tr data-task-id=/g)).toHaveLength(500);
    const bigPage = await service.fetch('/ui/tasks?limit=501', bearer(VIEWER));
    expect(bigPage.status).toBe(400);
    expect(await bigPage.text()).toContain('limit must be a whole number from 0 to 500');
  });

  it('one caller has at most two task lists in flight: a third is 429 at once, another caller is served, and then it is free again', async () => {
    const path = `/api/tasks?taskname=tasks.bulk&limit=${BULK}`;
    const held = [await stalledRequest(path, OPERATOR), await stalledRequest(path, OPERATOR)];
    try {
      expect(held.map((h) => h.head)).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
      const third = await service.fetch('/api/tasks?limit=1', bearer(OPERATOR));
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBe('1');
      expect((await count('/api/tasks?limit=5', OTHER_OPERATOR)).status).toBe(200);
      expect((await service.fetch('/-/healthy')).status).toBe(200);
    } finally {
      for (const h of held) h.socket.destroy();
    }
    await waitFor(
      'the first caller free again',
      async () => ((await count('/api/tasks?limit=1', OPERATOR)).status === 200 ? true : undefined),
      10_000,
      100,
    );
  });
});

describe('task submission is off unless configured', () => {
  it('an admin cannot send any task while tasks.submit.allow is empty', async () => {
    for (const path of ['async-apply', 'send-task', 'apply']) {
      const r = await service.fetch(`/api/task/${path}/tasks.add`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ args: [1, 2], queue: 'sec-nobody' }),
      });
      expect(r.status, path).toBe(path === 'apply' ? 503 : 403);
      expect(((await r.json()) as { error: string }).error, path).toMatch(
        path === 'apply' ? /no result backend is configured/ : /task submission is off: tasks.submit.allow lists no task/,
      );
    }
  });
});
