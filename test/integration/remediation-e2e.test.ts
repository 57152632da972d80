import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  shippedAlertmanagerConfig,
  startRemediationService,
  waitForConsumer,
  type RemediationRecord,
  type RemediationService,
} from '../support/alertmanager.js';
import { inspectStats, sendTasks } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { describeCommands, startPidboxSpy, type PidboxSpy } from '../support/pidbox-spy.js';
import {
  REPO_ROOT,
  alertRulesWith,
  startAlertmanager,
  startPrometheus,
  type RunningAlertmanager,
  type RunningPrometheus,
} from '../support/prometheus.js';

const run = promisify(execFile);

/**
 * The whole remediation loop with every real part: Celery worker → celery-autopilot /metrics →
 * Prometheus (the shipped CeleryQueueBacklog alert, tightened) → Alertmanager (the shipped
 * config, short timers, bearer token from a file) → the webhook → pool_grow on the worker →
 * its pool really grows; repeats change nothing; the backlog is purged → the alert resolves →
 * the configured shrink-back, and nothing else.
 */
describe('remediation end to end: Prometheus → Alertmanager → webhook → pool_grow on a real worker', () => {
  const QUEUE = 'backlog_q';
  const nodename = `rem-e2e-${randomBytes(3).toString('hex')}@cap`;
  let vhost: Awaited<ReturnType<typeof createVhost>>;
  let service: RemediationService;
  let spy: PidboxSpy;
  let worker: CeleryWorker;
  let alertmanager: RunningAlertmanager | undefined;
  let prometheus: RunningPrometheus | undefined;
  const celery = () => ({ brokerUrl: vhost.url });

  const processes = async (): Promise<number | undefined> => (await inspectStats(celery(), [nodename]))[nodename]?.pool.processes?.length;
  const ofRule = (records: RemediationRecord[]) => records.filter((d) => d.rule === 'grow-workers-on-backlog');
  /** What the loop did so far, for failure messages. */
  let lastSeen = '';
  const observed = () =>
    `${lastSeen}\nspy:\n${describeCommands(spy.since(0))}\nprometheus log tail:\n${prometheus?.logs().slice(-1500) ?? ''}\nalertmanager log tail:\n${alertmanager?.logs().slice(-1500) ?? ''}`;
  const decisionsWhere = async (what: string, condition: (records: RemediationRecord[]) => boolean, timeoutMs: number) =>
    waitFor(
      what,
      async () => {
        const records = ofRule(await service.decisions());
        lastSeen = `decisions: ${JSON.stringify(records.map((d) => ({ action: d.action, status: d.alert.status, outcome: d.outcome, reason: d.reason, targets: d.targets })))}`;
        return condition(records) ? records : undefined;
      },
      timeoutMs,
      500,
      observed,
    );

  beforeAll(async () => {
    vhost = await createVhost(uniqueId('rem-e2e'));
    service = await startRemediationService(['--broker-url', vhost.url], path.join(REPO_ROOT, 'test/fixtures/remediation/e2e-grow.yml'));
    await waitFor('service ready', async () => ((await service.exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    spy = await startPidboxSpy({ kind: 'amqp', url: vhost.url });
    // prefetch multiplier 1: after the purge at most one task per process is left, so the
    // processes are idle again quickly and billiard can shrink the pool.
    worker = await startWorker({ brokerUrl: vhost.url, nodename, queues: [QUEUE], concurrency: 1, prefetchMultiplier: 1 });
    await waitForConsumer(service, nodename, QUEUE);
    alertmanager = await startAlertmanager({
      config: await shippedAlertmanagerConfig({ serviceOrigin: service.url, credentialsFile: service.webhookTokenFile }),
    });
    prometheus = await startPrometheus({
      targets: [{ job: 'celery-autopilot', url: `${service.url}/metrics` }],
      rules: [await alertRulesWith({ CeleryQueueBacklog: { threshold: 20, for: '2s' } })],
      alertmanager: new URL(alertmanager.url).host,
    });
  });

  afterAll(async () => {
    await prometheus?.stop();
    await alertmanager?.stop();
    await worker?.stop();
    await spy?.close();
    await service?.stop();
    await vhost?.remove();
  });

  it("grows the backlogged queue's worker once, ignores repeats, and shrinks it back when the alert resolves", async () => {
    expect(await processes()).toBe(1);
    const mark = spy.mark();
    await sendTasks(
      celery(),
      Array.from({ length: 300 }, () => ({ name: 'tasks.sleep', args: [0.5], queue: QUEUE })),
    );

    // Prometheus fires, Alertmanager delivers, the engine acts once.
    const firstActed = await decisionsWhere(
      'a pool_grow acted on',
      (r) => r.some((d) => d.action === 'pool_grow' && d.outcome === 'acted'),
      60_000,
    );
    const grow = firstActed.find((d) => d.action === 'pool_grow' && d.outcome === 'acted')!;
    expect(grow.alert.labels).toMatchObject({ alertname: 'CeleryQueueBacklog', queue_name: QUEUE, autopilot_action: 'pool_grow' });
    expect(grow.targets).toEqual([nodename]);
    expect(grow.arguments).toEqual({ n: 1 });
    expect(grow.results).toMatchObject([{ worker: nodename, status: 'ok' }]);
    await waitFor('the pool to grow to 2 processes', async () => ((await processes()) === 2 ? true : undefined), 20_000, 500, observed);

    // Alertmanager repeats the notification every few seconds: each is a duplicate.
    const isRepeat = (d: RemediationRecord) =>
      d.alert.fingerprint === grow.alert.fingerprint && d.alert.status === 'firing' && d.outcome === 'suppressed';
    const afterRepeats = await decisionsWhere('two repeat notifications', (r) => r.filter(isRepeat).length >= 2, 30_000);
    for (const d of afterRepeats.filter(isRepeat)) expect(d.reason).toBe('duplicate');
    expect(afterRepeats.filter((d) => d.action === 'pool_grow' && d.outcome === 'acted')).toHaveLength(1);
    expect(await processes()).toBe(2);

    // The backlog goes away, the alert resolves, the shrink-back runs.
    await run('rabbitmqctl', ['-q', '-p', vhost.vhost, 'purge_queue', QUEUE]);
    const resolved = await decisionsWhere(
      'the shrink-back on resolve',
      (r) => r.some((d) => d.alert.status === 'resolved' && d.outcome !== 'suppressed'),
      45_000,
    );
    const shrink = resolved.find((d) => d.alert.status === 'resolved' && d.outcome !== 'suppressed')!;
    expect(shrink).toMatchObject({ action: 'pool_shrink', outcome: 'acted', targets: [nodename], arguments: { n: 1 } });
    expect(shrink.alert.fingerprint).toBe(grow.alert.fingerprint);
    await waitFor('the pool to be back at 1 process', async () => ((await processes()) === 1 ? true : undefined), 20_000, 500, observed);

    // On the wire: the grow, then the shrink, both addressed to the worker, and nothing else. A
    // shrink the worker refused because all its processes were busy (a task still running after
    // the purge) is sent again, so there may be more than one; each is the same n=1.
    await spy.barrier();
    const sent = spy.since(mark);
    const lines = describeCommands(sent).split('\n');
    expect(lines[0]).toBe(`pool_grow → ${nodename}`);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.slice(1).every((l) => l === `pool_shrink → ${nodename}`)).toBe(true);
    expect(sent.every((c) => JSON.stringify(c.arguments) === JSON.stringify({ n: 1 }))).toBe(true);
    const all = ofRule(await service.decisions());
    expect(
      all
        .filter((d) => d.outcome !== 'suppressed')
        .map((d) => `${d.action}:${d.outcome}`)
        .sort(),
    ).toEqual(['pool_grow:acted', 'pool_shrink:acted']);
    expect(all.filter((d) => d.outcome === 'suppressed').every((d) => d.reason === 'duplicate')).toBe(true);
  });
});
