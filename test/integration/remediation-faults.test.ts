import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  notification,
  postWebhook,
  startRemediationService,
  waitForConsumer,
  type RemediationRecord,
  type RemediationService,
  type TestAlert,
} from '../support/alertmanager.js';
import { inspectStats, type WorkerStats } from '../support/celery/client.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { describeCommands, startPidboxSpy, type PidboxSpy, type SpiedCommand } from '../support/pidbox-spy.js';
import { metricValue } from '../support/prom.js';
import { REPO_ROOT } from '../support/prometheus.js';
import { TcpProxy } from '../support/tcp-proxy.js';

/** A raw POST that reports the status even when the server answers before the body is sent. */
function postRaw(url: string, body: Buffer, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-length': String(body.length), ...headers } });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    // EPIPE/ECONNRESET after an early 413 is expected; only an error without an answer counts.
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    req.end(body);
  });
}

const SPIED_ACTIONS = new Set([
  'pool_grow',
  'pool_shrink',
  'autoscale',
  'add_consumer',
  'cancel_consumer',
  'rate_limit',
  'time_limit',
  'revoke',
  'pool_restart',
  'shutdown',
]);

/**
 * Alertmanager deliveries gone wrong, against a real RabbitMQ and real Celery 5.2.6 workers; a
 * spy on the pidbox exchange is the proof of what went on the wire. The service reaches the
 * broker through a TCP proxy, so one test can take the broker away from it alone.
 */
describe('remediation webhook faults on RabbitMQ with real workers', () => {
  const id = randomBytes(3).toString('hex');
  const node = (role: string) => `rem${id}-${role}@cap`;
  const queue = (role: string) => `remq-${role}`;
  let vhost: Awaited<ReturnType<typeof createVhost>>;
  let proxy: TcpProxy;
  let service: RemediationService;
  let spy: PidboxSpy;
  const workers = new Map<string, CeleryWorker>();
  const celery = () => ({ brokerUrl: vhost.url });

  const decisions = async (where: (d: RemediationRecord) => boolean = () => true) => (await service.decisions()).filter(where);
  const post = (body: unknown, token: string | undefined = service.webhookToken) => postWebhook(service.url, body, token);
  const stats = async (role: string): Promise<WorkerStats> => {
    const reply = (await inspectStats(celery(), [node(role)]))[node(role)];
    if (!reply) throw new Error(`${node(role)} did not answer stats`);
    return reply;
  };
  const processes = async (role: string) => (await stats(role)).pool.processes?.length;
  /** `--autoscale` workers report their range in stats (docs/wire-protocol.md §B5). */
  const autoscaler = async (role: string) => (await stats(role)).autoscaler as { max: number; min: number } | undefined;
  const actionsSince = (mark: number): SpiedCommand[] => spy.since(mark, { all: true }).filter((c) => SPIED_ACTIONS.has(c.method));
  const metric = async (name: string, labels: Record<string, string>) => metricValue(await service.exporter.scrape(), name, labels) ?? 0;

  beforeAll(async () => {
    vhost = await createVhost(uniqueId('rem-faults'));
    proxy = new TcpProxy('127.0.0.1', 5672);
    const proxyPort = await proxy.listen();
    service = await startRemediationService(
      [
        '--broker-url',
        vhost.url.replace('127.0.0.1:5672/', `127.0.0.1:${proxyPort}/`),
        '--reconnect-initial-delay-seconds',
        '0.1',
        '--reconnect-max-delay-seconds',
        '0.5',
      ],
      path.join(REPO_ROOT, 'test/fixtures/remediation/faults.yml'),
      {
        metrics: {
          // Each worker is inspected once when it appears; after that the only pidbox traffic is
          // what a test causes, so "nothing on the wire" can be checked literally.
          inspect_interval_seconds: 600,
          // A fixed liveness window: a worker under SIGSTOP stays a known target for the test.
          worker_timeout_seconds: 30,
        },
      },
    );
    await waitFor('service ready', async () => ((await service.exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    spy = await startPidboxSpy({ kind: 'amqp', url: vhost.url });
    const start = async (role: string, sizing: { concurrency: number } | { autoscale: [number, number] } = { concurrency: 1 }) => {
      const w = await startWorker({ brokerUrl: vhost.url, nodename: node(role), queues: [queue(role)], ...sizing });
      workers.set(role, w);
    };
    // Two at a time: five Python workers starting at once are slow on two cores.
    await Promise.all([start('main'), start('canary')]);
    await Promise.all([start('w1'), start('w2')]);
    await start('auto', { autoscale: [3, 1] });
    for (const role of workers.keys()) await waitForConsumer(service, node(role), queue(role));
  });

  // A pool change is followed by re-inspections of that worker (at once and after the pool's
  // 5 s tick): let them finish, so "nothing on the wire" in the next test is about that test.
  beforeEach(async () => {
    await waitFor(
      "the re-inspections after the previous test's changes",
      () => (service.exporter.service.pendingInspections === 0 ? true : undefined),
      30_000,
      100,
    );
    await spy.barrier();
  });

  afterAll(async () => {
    for (const w of workers.values()) w.kill('SIGCONT');
    await Promise.allSettled([...workers.values()].map((w) => w.stop()));
    await spy?.close();
    await service?.stop();
    await proxy?.close();
    await vhost?.remove();
  });

  it('bad credentials → 401, a 5 MB body → 413, invalid JSON or no alerts → 400; nothing decided, nothing sent', async () => {
    const mark = spy.mark();
    const before = (await decisions()).length;
    const body = notification([{ labels: { alertname: 'TestBacklog', queue_name: queue('main') } }]);
    expect((await postWebhook(service.url, body, undefined)).status).toBe(401);
    expect((await post(body, 'not-the-token')).status).toBe(401);
    expect((await post(body, service.adminToken)).status).toBe(401); // an API token is not the webhook's
    const basic = `Basic ${Buffer.from(`alertmanager:${service.webhookToken}`).toString('base64')}`;
    expect(
      await postRaw(`${service.url}/api/v1/alertmanager`, Buffer.from(JSON.stringify(body)), {
        'content-type': 'application/json',
        authorization: basic,
      }),
    ).toBe(401);

    const auth = { 'content-type': 'application/json', authorization: `Bearer ${service.webhookToken}` };
    const huge = Buffer.from(JSON.stringify({ ...body, padding: 'x'.repeat(5 * 1024 * 1024) }));
    expect(await postRaw(`${service.url}/api/v1/alertmanager`, huge, auth)).toBe(413);
    expect(await postRaw(`${service.url}/api/v1/alertmanager`, Buffer.from('{"version": "4", "alerts": [{'), auth)).toBe(400);
    expect((await post({ version: '4', status: 'firing' })).status).toBe(400);
    expect((await post('[]')).status).toBe(400);

    await service.idle();
    await spy.barrier();
    expect((await decisions()).length).toBe(before);
    expect(spy.since(mark, { all: true })).toEqual([]);
    expect(await metric('celery_autopilot_remediation_webhooks_total', { status: '4xx' })).toBe(8);
    expect(await metric('celery_autopilot_remediation_webhooks_total', { status: '2xx' })).toBe(0);
  });

  it('many deliveries never count as failed API logins: the API stays open to the same address', async () => {
    // Regression: the API's authenticate middleware once saw each delivery's bearer token as a
    // failed login and throttled 127.0.0.1 (429) after 10 of them.
    for (let i = 0; i < 15; i++) {
      expect((await post(notification([{ labels: { alertname: 'NoRuleMatchesThis' } }]), service.webhookToken)).status).toBe(200);
    }
    const res = await fetch(`${service.url}/api/v1/remediation/decisions`, { headers: { authorization: `Bearer ${service.adminToken}` } });
    expect(res.status).toBe(200);
  });

  it('the same notification posted three times sends one pool_grow, and the pool really grows', async () => {
    const mark = spy.mark();
    const body = notification([{ labels: { alertname: 'TestBacklog', queue_name: queue('main') } }]);
    const answers = [await post(body), await post(body), await post(body)];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    await service.idle();
    await spy.barrier();

    expect(describeCommands(actionsSince(mark))).toBe(`pool_grow → ${node('main')}`);
    const mine = await decisions((d) => d.rule === 'grow-on-backlog');
    expect(mine.map((d) => `${d.outcome}/${d.reason ?? ''}`).reverse()).toEqual(['acted/', 'suppressed/duplicate', 'suppressed/duplicate']);
    expect(mine.at(-1)).toMatchObject({ targets: [node('main')], arguments: { n: 1 }, results: [{ worker: node('main'), status: 'ok' }] });
    expect(await metric('celery_autopilot_remediation_decisions_total', { rule: 'grow-on-backlog', outcome: 'acted' })).toBe(1);
    expect(await metric('celery_autopilot_remediation_suppressed_total', { rule: 'grow-on-backlog', reason: 'duplicate' })).toBe(2);
    await waitFor('main to run 2 pool processes', async () => ((await processes('main')) === 2 ? true : undefined), 20_000, 500);
  });

  it('a page size is a whole number from 1 to 1000: anything else is refused with 400, not read as 100 or clamped', async () => {
    // Three decisions and their audit records exist by now (the test above).
    const get = (path: string) => fetch(`${service.url}${path}`, { headers: { authorization: `Bearer ${service.adminToken}` } });
    for (const path of ['/api/v1/audit', '/api/v1/remediation/decisions']) {
      for (const bad of ['abc', '0', '1001', '2.5', '-1', '1e3']) {
        const res = await get(`${path}?limit=${bad}`);
        expect(res.status, `${path}?limit=${bad}`).toBe(400);
        expect(await res.json()).toMatchObject({ field: 'limit' });
      }
      const two = await get(`${path}?limit=2`);
      expect(two.status).toBe(200);
      expect(((await two.json()) as unknown[]).length).toBe(2);
    }
  });

  it('a missing, empty or unknown target sends no command at all, never a broadcast; the canary hears nothing', async () => {
    const canaryBefore = await stats('canary');
    const mark = spy.mark();
    const alerts: TestAlert[] = [
      { labels: { alertname: 'HostBusy' } },
      { labels: { alertname: 'HostBusy', hostname: '' } },
      { labels: { alertname: 'HostBusy', hostname: `ghost-${id}@nowhere` } },
      { labels: { alertname: 'TestBacklog' } },
      { labels: { alertname: 'TestBacklog', queue_name: '' } },
      { labels: { alertname: 'TestBacklog', queue_name: `nobody-consumes-${id}` } },
    ];
    expect(await post(notification(alerts))).toMatchObject({ status: 200, body: { decisions: 6 } });
    await service.idle();
    await spy.barrier();

    expect(spy.since(mark, { all: true })).toEqual([]);
    const refused = (await decisions()).slice(0, 6);
    expect(refused.map((d) => `${d.outcome}/${d.reason}`)).toEqual(Array(6).fill('suppressed/no_target'));
    expect(refused.every((d) => d.targets.length === 0)).toBe(true);
    // Over the whole suite so far, the only undirected command is the service's own wake-up heartbeat.
    expect(
      spy.since(0, { all: true }).filter((c) => (c.destination === null || c.destination.length === 0) && c.method !== 'heartbeat'),
    ).toEqual([]);
    const canaryAfter = await stats('canary');
    expect(canaryAfter.pool.processes).toEqual(canaryBefore.pool.processes);
    expect(canaryAfter.prefetch_count).toBe(canaryBefore.prefetch_count);
  });

  it('grow past the ceiling, shrink below the floor, autoscale min > max or above its ceiling: refused and audited', async () => {
    const mark = spy.mark();
    const autoBefore = await autoscaler('auto');
    const alerts: TestAlert[] = [
      { labels: { alertname: 'HostBusyAtCeiling', hostname: node('canary') } },
      { labels: { alertname: 'HostIdle', hostname: node('canary') } },
      { labels: { alertname: 'HostScale', hostname: node('auto'), min: '5', max: '2' } },
      { labels: { alertname: 'HostScale', hostname: node('auto'), min: '1', max: '10' } },
    ];
    expect((await post(notification(alerts))).status).toBe(200);
    await service.idle();
    await spy.barrier();

    expect(actionsSince(mark)).toEqual([]);
    const refused = (await decisions()).slice(0, 4).reverse();
    expect(refused.map((d) => `${d.rule}:${d.outcome}/${d.reason}`)).toEqual([
      'grow-at-ceiling:suppressed/bound',
      'shrink-named-worker:suppressed/bound',
      'autoscale-named-worker:suppressed/bound',
      'autoscale-named-worker:suppressed/bound',
    ]);
    expect(refused[0]!.skipped).toEqual([{ worker: node('canary'), reason: 'bound', detail: 'already at 1 processes (ceiling 1)' }]);
    expect(refused[1]!.skipped).toEqual([{ worker: node('canary'), reason: 'bound', detail: 'already at 1 processes (floor 1)' }]);
    expect(refused[2]!.skipped[0]!.detail).toMatch(/min=5 max=2/);
    expect(await processes('canary')).toBe(1);
    expect(await autoscaler('auto')).toMatchObject({ max: autoBefore?.max, min: autoBefore?.min });
  });

  it('50 alerts in one POST, most for unknown workers, truncatedAlerts > 0: one decision per alert, the cap honoured', async () => {
    const mark = spy.mark();
    const batch = randomBytes(3).toString('hex');
    // Real workers at 0, 10, 20 (acted: the cap is 3 per hour) and 30, 40, 45 (capped); 44 ghosts.
    const real = new Map([
      [0, 'w1'],
      [10, 'w2'],
      [20, 'w1'],
      [30, 'w2'],
      [40, 'w1'],
      [45, 'w2'],
    ]);
    const alerts: TestAlert[] = Array.from({ length: 50 }, (_, i) => ({
      // Distinct label sets: Alertmanager never puts one alert (one label set) twice in a notification.
      labels: { alertname: 'HostBusy', batch, index: String(i), hostname: real.has(i) ? node(real.get(i)!) : `ghost${i}-${id}@gone` },
    }));
    const answer = await post(notification(alerts, { truncatedAlerts: 7 }));
    expect(answer).toMatchObject({ status: 200, body: { alerts: 50, decisions: 50 } });
    await service.idle();
    await spy.barrier();

    const mine = (await decisions((d) => d.alert.labels.batch === batch)).reverse();
    expect(mine).toHaveLength(50);
    const summary = (d: RemediationRecord) => `${d.outcome}/${d.reason ?? ''}`;
    expect([...real.keys()].map((i) => summary(mine[i]!))).toEqual([
      'acted/',
      'acted/',
      'acted/',
      'suppressed/cap',
      'suppressed/cap',
      'suppressed/cap',
    ]);
    expect(mine.filter((_, i) => !real.has(i)).every((d) => summary(d) === 'suppressed/no_target')).toBe(true);
    expect(describeCommands(actionsSince(mark))).toBe(
      [`pool_grow → ${node('w1')}`, `pool_grow → ${node('w2')}`, `pool_grow → ${node('w1')}`].join('\n'),
    );
    // Ghosts are refused from the live worker list: not even a stats request goes to them.
    expect(spy.since(mark, { all: true }).some((c) => c.destination?.some((n) => n.endsWith('@gone')))).toBe(false);
    await waitFor(
      'w1 at 3 and w2 at 2 processes',
      async () => ((await processes('w1')) === 3 && (await processes('w2')) === 2 ? true : undefined),
      20_000,
      500,
    );
  });

  it('the kill switch is told which way: a missing, empty or unknown value is a 400 naming the field, and the switch stays as it was', async () => {
    const admin = { authorization: `Bearer ${service.adminToken}`, 'content-type': 'application/json' };
    for (const body of [{}, { enabled: '' }, { enabled: 'maybe' }, { enabled: 2 }]) {
      const res = await fetch(`${service.url}/api/v1/remediation/kill-switch`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify(body),
      });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.json()).toMatchObject({ field: 'enabled' });
    }
    expect(await metric('celery_autopilot_remediation_kill_switch', {})).toBe(0);
  });

  it('kill switch (admin API) and dry-run: webhook 2xx, the would-be command audited, nothing on the wire', async () => {
    const admin = { authorization: `Bearer ${service.adminToken}`, 'content-type': 'application/json' };
    const flip = async (enabled: boolean) =>
      fetch(`${service.url}/api/v1/remediation/kill-switch`, { method: 'POST', headers: admin, body: JSON.stringify({ enabled }) });
    expect((await flip(true)).status).toBe(200);
    expect(await metric('celery_autopilot_remediation_kill_switch', {})).toBe(1);
    try {
      const mark = spy.mark();
      const answer = await post(
        notification([{ labels: { alertname: 'TestBacklog', queue_name: queue('canary') }, startsAt: '2026-11-30T03:00:00Z' }]),
      );
      expect(answer.status).toBe(200);
      await service.idle();
      await spy.barrier();
      expect(spy.since(mark, { all: true })).toEqual([]);
      expect((await decisions())[0]).toMatchObject({
        rule: 'grow-on-backlog',
        action: 'pool_grow',
        outcome: 'suppressed',
        reason: 'kill_switch',
        targets: [node('canary')],
        arguments: { n: 1 },
      });
    } finally {
      expect((await flip(false)).status).toBe(200);
    }
    expect(await metric('celery_autopilot_remediation_kill_switch', {})).toBe(0);

    const mark = spy.mark();
    expect((await post(notification([{ labels: { alertname: 'DryBacklog', queue_name: queue('canary') } }]))).status).toBe(200);
    await service.idle();
    await spy.barrier();
    expect((await decisions())[0]).toMatchObject({
      rule: 'grow-dry-run',
      action: 'pool_grow',
      outcome: 'dry_run',
      targets: [node('canary')],
      arguments: { n: 1 },
    });
    // A dry run reads the target's live pool size (read-only stats) to say what it would do; it changes nothing.
    expect(describeCommands(spy.since(mark, { all: true }))).toBe(`stats → ${node('canary')}`);
    expect(await processes('canary')).toBe(1);
  });

  it('broker down when the webhook arrives → 503 and nothing recorded; after it returns no command is sent late; the retry acts', async () => {
    const body = notification([{ labels: { alertname: 'HostScale', hostname: node('auto'), min: '2', max: '3' } }]);
    const before = (await decisions()).length;
    const mark = spy.mark();
    proxy.pause();
    try {
      await waitFor(
        'the service to lose the broker',
        () => (service.exporter.service.transport.isConnected() ? undefined : true),
        10_000,
        50,
      );
      const answer = await post(body);
      expect(answer.status).toBe(503);
      await service.idle();
      expect((await decisions()).length).toBe(before);
      // A dry-run rule sends nothing, so it is accepted; its bounds need the broker: one decision, failed, not lost.
      expect(
        (await post(notification([{ labels: { alertname: 'DryBacklog', queue_name: queue('canary') }, startsAt: '2026-11-30T04:00:00Z' }])))
          .status,
      ).toBe(200);
      await service.idle();
      expect(await decisions()).toHaveLength(before + 1);
      expect((await decisions())[0]).toMatchObject({ rule: 'grow-dry-run', outcome: 'failed', reason: 'broker_unavailable' });
    } finally {
      proxy.resume();
    }
    await waitFor('service ready again', async () => ((await service.exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    await new Promise((r) => setTimeout(r, 3000)); // room for anything queued to come out late
    await spy.barrier();
    expect(actionsSince(mark)).toEqual([]);
    expect(await metric('celery_autopilot_remediation_webhooks_total', { status: '5xx' })).toBe(1);

    // Alertmanager retries the 5xx: now it acts, once.
    expect((await post(body)).status).toBe(200);
    await service.idle();
    await spy.barrier();
    expect(describeCommands(actionsSince(mark))).toBe(`autoscale → ${node('auto')}`);
    expect((await decisions())[0]).toMatchObject({ rule: 'autoscale-named-worker', outcome: 'acted', arguments: { min: 2, max: 3 } });
    expect(await autoscaler('auto')).toMatchObject({ min: 2, max: 3 });
  });

  it('a worker stopped (SIGSTOP) mid-action: outcome no_reply, not retried, its late reply ignored', async () => {
    const auto = workers.get('auto')!;
    const body = notification([{ labels: { alertname: 'HostScale', hostname: node('auto'), min: '1', max: '4' } }]);
    const mark = spy.mark();
    auto.kill('SIGSTOP');
    try {
      expect((await post(body)).status).toBe(200);
      await service.idle();
      expect((await decisions())[0]).toMatchObject({
        rule: 'autoscale-named-worker',
        outcome: 'no_reply',
        results: [{ worker: node('auto'), status: 'no_reply' }],
      });
      // Alertmanager's repeat is a duplicate: the command is not sent again.
      expect((await post(body)).status).toBe(200);
      await service.idle();
      expect((await decisions())[0]).toMatchObject({ outcome: 'suppressed', reason: 'duplicate' });
    } finally {
      auto.kill('SIGCONT');
    }
    // The worker wakes up and runs the command it had queued (kombu 5.2 ignores the request's
    // expiry, docs/wire-protocol.md §B1); its reply comes after the collection ended and changes nothing.
    await waitFor('the late autoscale to take effect', async () => ((await autoscaler('auto'))?.max === 4 ? true : undefined), 20_000, 500);
    await spy.barrier();
    expect(describeCommands(actionsSince(mark))).toBe(`autoscale → ${node('auto')}`);
    const latest = await decisions((d) => d.rule === 'autoscale-named-worker');
    expect(latest.slice(0, 2).map((d) => `${d.outcome}/${d.reason ?? ''}`)).toEqual(['suppressed/duplicate', 'no_reply/']);
    expect(await metric('celery_autopilot_remediation_decisions_total', { rule: 'autoscale-named-worker', outcome: 'no_reply' })).toBe(1);
  });
});
