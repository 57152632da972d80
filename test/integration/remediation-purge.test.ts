import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notification, postWebhook, startRemediationService, type RemediationService } from '../support/alertmanager.js';
import { sendTasks } from '../support/celery/client.js';
import { redisIsolation, uniqueId } from '../support/isolation.js';

/**
 * purge_queue against the real service on Redis: a firing alert whose queue_name label names a
 * queue holding N real Celery messages (two priorities, so two of kombu's priority lists) empties
 * it, and the audited decision says N.
 */
describe('purge_queue remediation on Redis', () => {
  const iso = redisIsolation('rem-purge');
  const celery = { brokerUrl: iso.url, transportOptions: { global_keyprefix: iso.keyprefix } };
  const queue = uniqueId('poison');
  const N = 40;
  let dir: string;
  let service: RemediationService;
  let redis: Redis;
  /** Messages in every priority list of the queue (kombu: the queue's name, then name + \x06\x16 + priority). */
  const depth = async () => {
    const keys = (await redis.keys(`${iso.keyprefix}${queue}*`)).filter(
      (k) => k === `${iso.keyprefix}${queue}` || k.startsWith(`${iso.keyprefix}${queue}\x06\x16`),
    );
    let n = 0;
    for (const key of keys) n += await redis.llen(key);
    return { n, lists: keys.length };
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cap-purge-'));
    const rules = path.join(dir, 'rules.yml');
    await writeFile(
      rules,
      `rules:
  - name: drop-poison
    match: { labels: { alertname: PoisonQueue } }
    action: purge_queue
    target: { queue: "{{ labels.queue_name }}" }
`,
    );
    redis = new Redis(iso.url, { maxRetriesPerRequest: 1 });
    service = await startRemediationService(
      ['--broker-url', iso.url, '--broker-transport-options-global-keyprefix', iso.keyprefix],
      rules,
      {
        remediation: { allow_dangerous_actions: ['purge_queue'] },
      },
    );
  });

  afterAll(async () => {
    await service?.stop();
    const keys = await redis.keys(`${iso.keyprefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await rm(dir, { recursive: true, force: true });
  });

  it('a firing alert purges every priority list of its queue and the audit says how many went', async () => {
    await sendTasks(
      celery,
      Array.from({ length: N }, (_, i) => ({ name: 'tasks.noop', queue, priority: i % 2 ? 9 : 0 })),
    );
    expect(await depth()).toEqual({ n: N, lists: 2 });

    const answer = await postWebhook(
      service.url,
      notification([{ labels: { alertname: 'PoisonQueue', queue_name: queue } }]),
      service.webhookToken,
    );
    expect(answer.status).toBe(200);
    await service.idle();

    expect((await depth()).n).toBe(0);
    const [decision] = (await service.decisions()).filter((d) => d.rule === 'drop-poison');
    expect(decision).toMatchObject({ action: 'purge_queue', outcome: 'acted', targets: [queue], purged: { queue, removed: N } });
  });
});
