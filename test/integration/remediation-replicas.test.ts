import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notification, postWebhook, startRemediationService, waitForConsumer, type RemediationRecord, type RemediationService } from '../support/alertmanager.js';
import { inspectStats } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { describeCommands, startPidboxSpy, type PidboxSpy } from '../support/pidbox-spy.js';
import { REPO_ROOT } from '../support/prometheus.js';

const REDIS_URL = 'redis://127.0.0.1:6379/0';

/**
 * Two replicas behind one Alertmanager receiver (an HA pair): both get every notification and
 * share idempotency, in-flight locks and cooldowns in Redis, so a worker is grown once.
 */
describe('two remediation replicas sharing Redis state', () => {
  const QUEUE = 'shared_q';
  const nodename = `rem-ha-${randomBytes(3).toString('hex')}@cap`;
  const keyPrefix = `${uniqueId('cap-test-remediation')}:`;
  let vhost: Awaited<ReturnType<typeof createVhost>>;
  const replicas: RemediationService[] = [];
  let spy: PidboxSpy;
  let worker: CeleryWorker;

  beforeAll(async () => {
    vhost = await createVhost(uniqueId('rem-ha'));
    const rules = path.join(REPO_ROOT, 'test/fixtures/remediation/replicas.yml');
    for (let i = 0; i < 2; i++) {
      replicas.push(
        await startRemediationService(['--broker-url', vhost.url], rules, {
          remediation: { state_redis_url: REDIS_URL, state_key_prefix: keyPrefix, memory_seconds: 120 },
        }),
      );
    }
    spy = await startPidboxSpy({ kind: 'amqp', url: vhost.url });
    worker = await startWorker({ brokerUrl: vhost.url, nodename, queues: [QUEUE], concurrency: 1 });
    for (const r of replicas) await waitForConsumer(r, nodename, QUEUE);
  });

  afterAll(async () => {
    await worker?.stop();
    await spy?.close();
    await Promise.allSettled(replicas.map((r) => r.stop()));
    await vhost?.remove();
    // Only this suite's keys, found by their unique prefix.
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  });

  it('the same notification posted to both at once: one pool_grow on the wire, one acted decision across both', async () => {
    const mark = spy.mark();
    const body = notification([{ labels: { alertname: 'CeleryQueueBacklog', queue_name: QUEUE, autopilot_action: 'pool_grow', severity: 'warning' }, annotations: { autopilot_grow_by: '1' } }]);
    const answers = await Promise.all(replicas.map((r) => postWebhook(r.url, body, r.webhookToken)));
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    await Promise.all(replicas.map((r) => r.idle()));
    // Alertmanager repeats to both: duplicates on each, whichever acted.
    const repeats = await Promise.all(replicas.map((r) => postWebhook(r.url, body, r.webhookToken)));
    expect(repeats.map((a) => a.status)).toEqual([200, 200]);
    await Promise.all(replicas.map((r) => r.idle()));
    await spy.barrier();

    expect(describeCommands(spy.since(mark).filter((c) => c.method !== 'stats'))).toBe(`pool_grow → ${nodename}`);
    const all: RemediationRecord[] = (await Promise.all(replicas.map((r) => r.decisions()))).flat();
    expect(all).toHaveLength(4);
    const acted = all.filter((d) => d.outcome === 'acted');
    expect(acted).toHaveLength(1);
    expect(acted[0]).toMatchObject({ action: 'pool_grow', targets: [nodename], arguments: { n: 1 } });
    // The one that lost the race saw the other's in-flight lock or its idempotency key.
    const others = all.filter((d) => d.outcome !== 'acted');
    expect(others.every((d) => d.outcome === 'suppressed' && (d.reason === 'duplicate' || d.reason === 'in_flight'))).toBe(true);
    await waitFor('the pool to grow to 2 processes, once', async () => ((await inspectStats({ brokerUrl: vhost.url }, [nodename]))[nodename]?.pool.processes?.length === 2 ? true : undefined), 20_000, 500);
  });
});
