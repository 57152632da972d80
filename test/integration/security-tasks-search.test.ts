import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from '../support/celery/client.js';
import { waitFor } from '../support/exporter.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { startServiceProcess, type ServiceProcess } from '../support/service-process.js';

/**
 * Issue 16, finding 1, against the real service in a process of its own on a real Redis: a
 * Celery client plants hostile kwargs and args (runs of backslashes in a list, as Windows paths
 * and escaped JSON give, and 100 000 characters of backslashes, quotes and brackets through
 * Celery's own argsrepr/kwargsrepr options), then an operator runs every search operator. On the
 * old regular expression the first `kwargs:user=ann` took tens of seconds (44 backslashes) or
 * never ended (1000): every request here is bounded, so such a service fails the test instead of
 * hanging it.
 */

const OPERATOR = `o-${randomUUID()}`;
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const slashes = (n: number) => '\\'.repeat(n);

describe('finding 1: no search freezes the service, whatever task text a client planted', () => {
  let broker: BrokerUnderTest;
  let service: ServiceProcess;
  const ids = { win44: randomUUID(), win1000: randomUUID(), big: randomUUID(), plain: randomUUID() };

  beforeAll(async () => {
    broker = await isolatedBroker('redis', 'sec-search');
    service = await startServiceProcess(
      {
        auth: { tokens: [{ name: 'operator', sha256: sha(OPERATOR), role: 'operator' }] },
        tasks: { max_args_chars: 262_144, max_kwargs_chars: 262_144 },
        events: { max_message_bytes: 4_194_304 },
      },
      broker.exporterArgs,
    );
    await waitFor('service ready', async () => ((await service.fetch('/-/ready')).status === 200 ? true : undefined), 30_000, 200);
    const hostile = `\\'"[({${slashes(20)}`.repeat(4000).slice(0, 100_000);
    await sendTasks({ ...broker.celery, sendSentEvent: true }, [
      // Celery's saferepr doubles each backslash: 44 and 1000 backslashes in the repr's text.
      { name: 'tasks.copy', kwargs: { user: 'ann', paths: [`C:${slashes(22)}`] }, queue: 'sec-nobody', taskId: ids.win44 },
      { name: 'tasks.copy', kwargs: { paths: [slashes(500)], user: 'ann' }, queue: 'sec-nobody', taskId: ids.win1000 },
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
  afterAll(async () => {
    await service?.stop();
    await broker?.cleanup();
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
