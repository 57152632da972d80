import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  notification,
  postWebhook,
  startAlertingLoop,
  startRemediationService,
  waitForConsumer,
  type AlertingLoop,
  type RemediationRecord,
  type RemediationService,
} from '../support/alertmanager.js';
import { purgeQueue } from '../support/queue-purge.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { inspectStats, sendTasks } from '../support/celery/client.js';
import { startWorker, uniqueNodename, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { metricValue } from '../support/prom.js';

/**
 * Approve first and verify the effect, with real Prometheus (the shipped CeleryQueueBacklog,
 * tightened) and Alertmanager (the shipped config) and real workers: a rule in approve mode
 * proposes and sends nothing; an operator's approval re-runs the safeguards and acts; the alert
 * resolving makes it effective. A rule whose action does not help within its window is
 * ineffective, and the next firing of that alert runs its escalation rule instead.
 */
describe.each<'amqp' | 'redis'>(['amqp', 'redis'])('approve and verify on %s', (kind) => {
  const APPROVED = 'approved_q';
  const SLOW = 'slow_q';
  let broker: BrokerUnderTest;
  let dir: string;
  let service: RemediationService;
  let loop: AlertingLoop | undefined;
  const workers: CeleryWorker[] = [];
  const OPERATOR_PASSWORD = 'operator-password-0123';
  const nodes = { approved: uniqueNodename('approve'), slow: uniqueNodename('verify') };

  beforeAll(async () => {
    broker = await isolatedBroker(kind, 'approve-verify');
    dir = await mkdtemp(path.join(tmpdir(), 'cap-approve-'));
    const rules = path.join(dir, 'rules.yml');
    await writeFile(
      rules,
      `rules:
  - name: grow-approved
    match: { status: firing, labels: { alertname: CeleryQueueBacklog, queue_name: ${APPROVED} } }
    action: pool_grow
    arguments: { n: 1 }
    target: { queue_label: queue_name }
    bounds: { max_pool_processes: 3 }
    cooldown_seconds: 0
    mode: approve
    verify: { within_seconds: 60 }
  - name: grow-unhelpful
    match: { status: firing, labels: { alertname: CeleryQueueBacklog, queue_name: ${SLOW} } }
    action: pool_grow
    arguments: { n: 1 }
    target: { queue_label: queue_name }
    bounds: { max_pool_processes: 3 }
    cooldown_seconds: 0
    verify: { within_seconds: 3, escalate_to: escalate-slow }
  - name: restart-approved
    match: { status: firing, labels: { alertname: WorkerStuck } }
    action: pool_restart
    target: { worker_label: hostname }
    mode: approve
  - name: escalate-slow
    match: { status: firing, labels: { alertname: NeverRaisedOnItsOwn } }
    action: add_consumer
    arguments: { queue: "{{ labels.queue_name }}" }
    target: { queue_label: queue_name }
    dry_run: true
`,
    );
    service = await startRemediationService(broker.exporterArgs, rules, {
      remediation: { allow_dangerous_actions: ['pool_restart'] },
      auth: { users: [{ username: 'oper', password: { plain: OPERATOR_PASSWORD }, role: 'operator' }] },
    });
    await waitFor('service ready', async () => ((await service.exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    for (const [queue, nodename] of [
      [APPROVED, nodes.approved],
      [SLOW, nodes.slow],
    ] as const) {
      workers.push(await startWorker({ ...broker.celery, nodename, queues: [queue], concurrency: 1, prefetchMultiplier: 1 }));
      await waitForConsumer(service, nodename, queue);
    }
    loop = await startAlertingLoop(service, { CeleryQueueBacklog: { threshold: 10, for: '2s' } });
  });

  afterAll(async () => {
    await loop?.stop();
    await Promise.all(workers.map((w) => w.stop()));
    await service?.stop();
    await broker?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const api = async (method: string, p: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(service.url + p, { method, headers: { authorization: `Bearer ${service.adminToken}` } });
    return { status: res.status, body: await res.json() };
  };
  type ProposalView = {
    id: string;
    status: string;
    rule: string;
    targets: string[];
    change: Array<{ target: string; before: number; after: number }>;
    safeguardsPassed: string[];
    alert: { fingerprint: string; startsAt: string };
  };
  const proposals = async () => (await api('GET', '/api/v1/remediation/proposals')).body as ProposalView[];
  const processes = async (node: string) => (await inspectStats(broker.celery, [node]))[node]?.pool.processes?.length;
  const ofRule = async (rule: string) =>
    (await service.decisions()).filter((d) => d.rule === rule) as Array<RemediationRecord & Record<string, unknown>>;

  it('mode approve: proposes (targets, before → after, safeguards passed) and sends nothing; approval acts; the resolved alert makes it effective', async () => {
    await sendTasks(
      { ...broker.celery, sendSentEvent: true },
      Array.from({ length: 40 }, () => ({ name: 'tasks.sleep', args: [1.5], queue: APPROVED })),
    );
    const [proposal] = await waitFor(
      'a proposal',
      async () => ((await proposals()).length > 0 ? proposals() : undefined),
      60_000,
      500,
      () => loop!.logs(),
    );
    expect(proposal).toMatchObject({
      status: 'pending',
      rule: 'grow-approved',
      targets: [nodes.approved],
      change: [{ target: nodes.approved, before: 1, after: 2 }],
    });
    expect(proposal!.safeguardsPassed).toEqual([
      'arguments',
      'allow_list',
      'targets',
      'kill_switch',
      'idempotency',
      'effect',
      'cooldown',
      'in_flight',
      'bounds',
      'command',
      'caps',
      'claim',
    ]);
    // Alertmanager's resends file nothing more, and nothing reached the worker.
    await waitFor(
      'two more deliveries',
      async () => ((await ofRule('grow-approved')).length >= 3 ? true : undefined),
      30_000,
      500,
      async () => JSON.stringify((await service.decisions()).map((d) => [d.rule, d.outcome, d.reason, d.alert.status])) + loop!.logs(),
    );
    expect(await proposals()).toHaveLength(1);
    expect(await processes(nodes.approved)).toBe(1);
    const decided = await ofRule('grow-approved');
    expect(decided.map((d) => d.outcome)).toContain('proposed');
    expect(decided.filter((d) => d.outcome !== 'proposed').every((d) => d.reason === 'duplicate')).toBe(true);

    const approved = await api('POST', `/api/v1/remediation/proposals/${proposal!.id}/approve`);
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({
      proposal: { status: 'approved', decidedBy: 'token:test-admin', decision: { outcome: 'acted' } },
      decision: { outcome: 'acted', approved_by: 'token:test-admin', targets: [nodes.approved] },
    });
    await waitFor('the pool to grow', async () => ((await processes(nodes.approved)) === 2 ? true : undefined), 20_000);
    // Answered once only.
    expect((await api('POST', `/api/v1/remediation/proposals/${proposal!.id}/reject`)).status).toBe(409);

    // The backlog goes: the verdict is effective (the resolved notification or the time to drain, whichever shows first).
    await purgeQueue(broker, APPROVED);
    type V = { rule: string; result: string; via: string; seconds: number };
    const [verdict] = await waitFor(
      'the verdict',
      async () => {
        const v = (await api('GET', '/api/v1/remediation/verifications')).body as V[];
        const mine = v.filter((x) => x.rule === 'grow-approved');
        return mine.length > 0 ? mine : undefined;
      },
      60_000,
      500,
    );
    expect(verdict).toMatchObject({ rule: 'grow-approved', result: 'effective' });
    expect(['resolved', 'time_to_drain']).toContain(verdict!.via);
    expect(
      metricValue(await service.exporter.scrape(), 'celery_autopilot_remediation_verifications_total', {
        rule: 'grow-approved',
        result: 'effective',
      }),
    ).toBe(1);
    const audit = (await api('GET', '/api/v1/audit?kind=admin')).body as Array<Record<string, unknown>>;
    expect(audit.find((r) => r.action === 'approve_proposal')).toMatchObject({ proposal: proposal!.id, by: { actor: 'token:test-admin' } });
  });

  it('approving a dangerous action (pool_restart) takes an admin; an operator may reject it', async () => {
    const answer = await postWebhook(
      service.url,
      notification([{ labels: { alertname: 'WorkerStuck', hostname: nodes.approved } }]),
      service.webhookToken,
    );
    expect(answer.status).toBe(200);
    await service.idle();
    const p = (await proposals()).find((x) => x.rule === 'restart-approved')!;
    expect(p).toMatchObject({ status: 'pending', targets: [nodes.approved] });
    const asOperator = (answer: string) =>
      fetch(`${service.url}/api/v1/remediation/proposals/${p.id}/${answer}`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`oper:${OPERATOR_PASSWORD}`).toString('base64')}` },
      });
    const refused = await asOperator('approve');
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ error: 'approving pool_restart needs the admin role' });
    const rejected = await asOperator('reject');
    expect(rejected.status).toBe(200);
    expect(await rejected.json()).toMatchObject({ proposal: { status: 'rejected', decidedBy: 'basic:oper' } });
  });

  it('verify: an action that does not help in time is ineffective, and the next firing of that alert escalates instead of repeating it', async () => {
    await sendTasks(
      { ...broker.celery, sendSentEvent: true },
      Array.from({ length: 30 }, () => ({ name: 'tasks.sleep', args: [2], queue: SLOW })),
    );
    const grown = await waitFor(
      'grow-unhelpful to act',
      async () => (await ofRule('grow-unhelpful')).find((d) => d.outcome === 'acted'),
      60_000,
      500,
      () => loop!.logs(),
    );
    type V = { rule: string; result: string; via: string; timeToDrain?: number };
    const [verdict] = await waitFor(
      'the verdict',
      async () => {
        const v = ((await api('GET', '/api/v1/remediation/verifications')).body as V[]).filter((x) => x.rule === 'grow-unhelpful');
        return v.length > 0 ? v : undefined;
      },
      30_000,
      500,
    );
    expect(verdict).toMatchObject({ result: 'ineffective', via: 'timeout' });
    expect(
      metricValue(await service.exporter.scrape(), 'celery_autopilot_remediation_verifications_total', {
        rule: 'grow-unhelpful',
        result: 'ineffective',
      }),
    ).toBe(1);
    // The same alert fires again (a new startsAt): not a second blind grow, the escalation.
    const again = await postWebhook(
      service.url,
      notification([{ labels: grown.alert.labels, fingerprint: grown.alert.fingerprint, startsAt: new Date().toISOString() }]),
      service.webhookToken,
    );
    expect(again.status).toBe(200);
    await service.idle();
    const escalated = (await service.decisions()).find((d) => d.rule === 'escalate-slow') as
      (RemediationRecord & Record<string, unknown>) | undefined;
    expect(escalated).toMatchObject({
      action: 'add_consumer',
      outcome: 'dry_run',
      escalated_from: 'grow-unhelpful',
      arguments: { queue: SLOW },
    });
    expect((await ofRule('grow-unhelpful')).filter((d) => d.outcome === 'acted')).toHaveLength(1);
    await purgeQueue(broker, SLOW);
  });
});
