import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startAlertingLoop,
  type AlertingLoop,
  startRemediationService,
  type RemediationRecord,
  type RemediationService,
} from '../support/alertmanager.js';
import { isolatedBroker, type BrokerUnderTest } from '../support/exporter-scenarios.js';
import { sendTasks } from '../support/celery/client.js';
import { waitFor } from '../support/exporter.js';
import { kubeconfigIn, startKubeApiServer, type TestKubeApiServer } from '../support/kube-apiserver.js';

/**
 * The whole loop with Deployments: real Celery workers as the replicas of a test Kubernetes API
 * server, celery-autopilot → Prometheus (the shipped CeleryQueueBacklog, tightened) →
 * Alertmanager (the shipped config, short timers) → scale_deployment +1 → the new pod's worker
 * comes online and consumes (recorded on the decision) → the backlog drains → resolved → the
 * pod that leaves stops consuming first → back to one replica.
 */
describe.each<'amqp' | 'redis'>(['amqp', 'redis'])('scale_deployment, the full loop on %s', (kind) => {
  const NS = 'celery';
  const QUEUE = 'backlog';
  const DEPLOYMENT = 'celery-backlog';
  let broker: BrokerUnderTest;
  let api: TestKubeApiServer;
  let dir: string;
  let service: RemediationService;
  let loop: AlertingLoop | undefined;
  let seen = '';

  beforeAll(async () => {
    broker = await isolatedBroker(kind, 'scale-loop');
    api = await startKubeApiServer();
    const token = `token-${kind}-0123456789abcdef`;
    api.tokens.set(token, { user: 'system:serviceaccount:celery:celery-autopilot' });
    dir = await mkdtemp(path.join(tmpdir(), 'cap-scale-loop-'));
    await api.writeKubeconfig(kubeconfigIn(dir), token, NS);
    await api.addDeployment({
      namespace: NS,
      name: DEPLOYMENT,
      replicas: 1,
      worker: { ...broker.celery, queues: [QUEUE], concurrency: 1, prefetchMultiplier: 1 },
    });
    // The two ways to name the Deployment: a template over the alert's labels (RabbitMQ run), or
    // the queue → Deployment map in the config (Redis run).
    const target = kind === 'amqp' ? `{ deployment: "celery-{{ labels.queue_name }}", namespace: ${NS} }` : '{ queue_label: queue_name }';
    const rules = path.join(dir, 'rules.yml');
    await writeFile(
      rules,
      `rules:
  - name: scale-on-backlog
    match: { status: firing, labels: { alertname: CeleryQueueBacklog } }
    action: scale_deployment
    arguments: { by: 1 }
    target: ${target}
    bounds: { min_replicas: 1, max_replicas: 3 }
    cooldown_seconds: 300
    on_resolved: { action: scale_deployment, arguments: { by: -1 } }
`,
    );
    service = await startRemediationService(broker.exporterArgs, rules, {
      kubernetes: { kubeconfig: kubeconfigIn(dir), confirm_seconds: 60, queue_deployments: { [QUEUE]: `${NS}/${DEPLOYMENT}` } },
    });
    await waitFor('service ready', async () => ((await service.exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    loop = await startAlertingLoop(service, { CeleryQueueBacklog: { threshold: 20, for: '2s' } });
  });

  afterAll(async () => {
    await loop?.stop();
    await service?.stop();
    await api?.stop();
    await broker?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const acted = async (
    what: string,
    status: 'firing' | 'resolved',
    timeoutMs: number,
  ): Promise<RemediationRecord & { deployment?: Record<string, unknown> }> =>
    waitFor(
      what,
      async () => {
        const records = (await service.decisions()).filter((d) => d.rule === 'scale-on-backlog');
        seen = JSON.stringify(records.map((d) => ({ s: d.alert.status, o: d.outcome, r: d.reason, e: (d as { error?: string }).error })));
        return records.find((d) => d.alert.status === status && d.outcome !== 'suppressed');
      },
      timeoutMs,
      500,
      () =>
        `${seen}\napi: ${api.requests
          .filter((r) => r.method !== 'GET')
          .map((r) => `${r.method} ${r.path} ${r.status}`)
          .join(', ')}\n${loop?.logs() ?? ''}`,
    );

  it('alert → +1 replica → its worker online and consuming → backlog drains → resolved → the new pod stops consuming, then −1', async () => {
    const first = api.pods(NS, DEPLOYMENT).map((p) => p.nodename);
    await sendTasks(
      { ...broker.celery, sendSentEvent: true },
      Array.from({ length: 80 }, () => ({ name: 'tasks.sleep', args: [0.2], queue: QUEUE })),
    );

    const up = await acted('scale_deployment on the firing alert', 'firing', 60_000);
    expect(up).toMatchObject({ action: 'scale_deployment', outcome: 'acted', targets: [`${NS}/${DEPLOYMENT}`], arguments: { by: 1 } });
    expect(up.alert.labels).toMatchObject({ alertname: 'CeleryQueueBacklog', queue_name: QUEUE });
    const grown = api.pods(NS, DEPLOYMENT).map((p) => p.nodename);
    const added = grown.filter((n) => !first.includes(n));
    expect(added).toHaveLength(1);
    // Confirmed through Celery: both pods' workers online and consuming the queue, with times.
    expect(up.deployment).toMatchObject({
      namespace: NS,
      name: DEPLOYMENT,
      before: 1,
      after: 2,
      confirmation: { confirmed: true, queue: QUEUE },
    });
    const online = (up.deployment!.confirmation as { workers: Array<{ worker: string; online_at: string }> }).workers;
    expect(online.map((w) => w.worker).sort()).toEqual([...grown].sort());
    expect(online.every((w) => !Number.isNaN(Date.parse(w.online_at)))).toBe(true);
    // The write: a merge patch carrying the resourceVersion just read.
    const patch = api.requests.find((r) => r.method === 'PATCH' && r.status === 200)!;
    expect(patch).toMatchObject({
      contentType: 'application/merge-patch+json',
      body: { metadata: { resourceVersion: expect.any(String) }, spec: { replicas: 2 } },
    });

    const down = await acted('the scale-down on resolve', 'resolved', 90_000);
    expect(down.deployment).toMatchObject({ before: 2, after: 1, confirmation: { confirmed: true } });
    expect(down.deployment!.cancelled).toMatchObject([{ worker: added[0], status: 'ok' }]);
    // At the moment the count dropped, the leaving pod's worker had already stopped consuming.
    const lowered = api.requests.filter((r) => r.leaving !== undefined);
    expect(lowered).toHaveLength(1);
    expect(lowered[0]!.leaving, JSON.stringify(lowered[0]!.leaving)).toEqual([
      { pod: expect.any(String), worker: added[0], consumerCancelled: true },
    ]);
    await api.settled(NS, DEPLOYMENT);
    expect(api.pods(NS, DEPLOYMENT).map((p) => p.nodename)).toEqual(first);
    expect(api.replicas(NS, DEPLOYMENT)).toBe(1);
    // Exactly two writes, whatever Alertmanager repeated.
    expect(api.requests.filter((r) => r.method === 'PATCH').map((r) => r.status)).toEqual([200, 200]);
  });
});
