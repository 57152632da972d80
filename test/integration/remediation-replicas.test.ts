import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  notification,
  postWebhook,
  startRemediationService,
  waitForConsumer,
  type RemediationRecord,
  type RemediationService,
} from '../support/alertmanager.js';
import { inspectStats } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { describeCommands, startPidboxSpy, type PidboxSpy } from '../support/pidbox-spy.js';
import { metricValue } from '../support/prom.js';
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

  const startReplica = () =>
    startRemediationService(['--broker-url', vhost.url], path.join(REPO_ROOT, 'test/fixtures/remediation/replicas.yml'), {
      remediation: { state_redis_url: REDIS_URL, state_key_prefix: keyPrefix, memory_seconds: 120 },
    });

  beforeAll(async () => {
    vhost = await createVhost(uniqueId('rem-ha'));
    for (let i = 0; i < 2; i++) replicas.push(await startReplica());
    spy = await startPidboxSpy({ kind: 'amqp', url: vhost.url });
    worker = await startWorker({ brokerUrl: vhost.url, nodename, queues: [QUEUE], concurrency: 1 });
    for (const r of replicas) await waitForConsumer(r, nodename, QUEUE);
  });

  // A pool change is followed by re-inspections of that worker (at once and after the pool's
  // 5 s tick): let them finish, so "nothing on the wire" in the next test is about that test.
  beforeEach(async () => {
    const pending = () => replicas.reduce((n, r) => n + r.exporter.service.pendingInspections, 0);
    await waitFor("the re-inspections after the previous test's changes", () => (pending() === 0 ? true : undefined), 30_000, 100);
    await spy.barrier();
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
    const body = notification([
      {
        labels: { alertname: 'CeleryQueueBacklog', queue_name: QUEUE, autopilot_action: 'pool_grow', severity: 'warning' },
        annotations: { autopilot_grow_by: '1' },
      },
    ]);
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
    await waitFor(
      'the pool to grow to 2 processes, once',
      async () => ((await inspectStats({ brokerUrl: vhost.url }, [nodename]))[nodename]?.pool.processes?.length === 2 ? true : undefined),
      20_000,
      500,
    );
  });

  it('the kill switch set through one replica stops the other too, and a restarted replica still obeys it', async () => {
    const flip = (r: RemediationService, enabled: boolean) =>
      fetch(`${r.url}/api/v1/remediation/kill-switch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${r.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ enabled }),
      });
    const gauge = async (r: RemediationService) => metricValue(await r.exporter.scrape(), 'celery_autopilot_remediation_kill_switch', {});
    const obeys = (r: RemediationService, value: number, what: string) =>
      waitFor(what, async () => ((await gauge(r)) === value ? true : undefined), 15_000, 100);
    // A new alert instance (its own startsAt): only the kill switch may stop it before the bounds.
    const backlog = (startsAt: string) =>
      notification([
        { labels: { alertname: 'CeleryQueueBacklog', queue_name: QUEUE, autopilot_action: 'pool_grow', severity: 'warning' }, startsAt },
      ]);
    const stoppedBy = async (r: RemediationService, startsAt: string) => {
      const mark = spy.mark();
      expect((await postWebhook(r.url, backlog(startsAt), r.webhookToken)).status).toBe(200);
      await r.idle();
      await spy.barrier();
      expect(spy.since(mark, { all: true })).toEqual([]);
      expect((await r.decisions(1))[0]).toMatchObject({ outcome: 'suppressed', reason: 'kill_switch', targets: [nodename] });
    };

    expect([await gauge(replicas[0]!), await gauge(replicas[1]!)]).toEqual([0, 0]);
    expect((await flip(replicas[0]!, true)).status).toBe(200);
    await obeys(replicas[1]!, 1, 'the other replica to obey the kill switch');
    await stoppedBy(replicas[1]!, '2026-11-30T04:00:00Z');

    // A restart keeps it: the new process reads the stored switch, not its configured default.
    await replicas[1]!.stop();
    replicas[1] = await startReplica();
    await waitForConsumer(replicas[1], nodename, QUEUE);
    await obeys(replicas[1], 1, 'the restarted replica to obey the stored kill switch');
    await stoppedBy(replicas[1], '2026-11-30T05:00:00Z');

    expect((await flip(replicas[1], false)).status).toBe(200);
    await obeys(replicas[0]!, 0, 'the first replica to see the switch released');
  });
});
