import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/audit-log.js';
import { kubernetesSchema } from '../../src/config/kubernetes-schema.js';
import { KubernetesClient } from '../../src/kubernetes/client.js';
import { kubeconfigCredentials } from '../../src/kubernetes/credentials.js';
import { silentLogger } from '../../src/log.js';
import { ActionMetrics } from '../../src/metrics/remediation-metrics.js';
import type { Alert } from '../../src/remediation/alertmanager.js';
import { Remediator, type Decision, type RemediationExecutor } from '../../src/remediation/engine.js';
import { compileRules } from '../../src/remediation/rules.js';
import { MemoryState } from '../../src/remediation/state.js';
import { kubeconfigIn, startKubeApiServer, type TestKubeApiServer } from '../support/kube-apiserver.js';

/**
 * scale_deployment's safeguards against the test API server (bare pods: the API alone; the
 * full loop with real workers is remediation-scale-deployment.test.ts): autoscaler ownership,
 * bounds, dry run, kill switch, idempotency, and the Kubernetes API's refusals as decisions.
 */
describe('scale_deployment safeguards', () => {
  const NS = 'celery';
  const TOKEN = 'safeguards-token-0123456789';
  let api: TestKubeApiServer;
  let dir: string;
  let client: KubernetesClient;

  const RULES = `
rules:
  - name: up
    match: { labels: { alertname: Backlog } }
    action: scale_deployment
    arguments: { by: "{{ annotations.by | default: 1 }}" }
    target: { deployment: "{{ labels.deployment }}", namespace: ${NS} }
    bounds: { min_replicas: 1, max_replicas: 3 }
    cooldown_seconds: 0
    on_resolved: { action: scale_deployment, arguments: { by: -5 } }
  - name: pin
    match: { labels: { alertname: Pin } }
    action: scale_deployment
    arguments: { replicas: 3 }
    target: { deployment: "{{ labels.deployment }}" }
    bounds: { min_replicas: 1, max_replicas: 3 }
    dry_run: true
`;
  /** A Celery side with no workers: confirmation gives up quickly. */
  const executor: RemediationExecutor = {
    brokerConnected: () => true,
    consumersOf: () => [],
    matching: () => [],
    isLive: () => false,
    poolStats: async () => new Map(),
    run: async (_a, _args, workers) => workers.map((worker) => ({ worker, status: 'ok' as const })),
  };

  let remediator: Remediator;
  let audit: AuditLog;
  const setup = (killSwitch = false) => {
    audit = new AuditLog(undefined);
    remediator = new Remediator(
      compileRules(RULES, []),
      executor,
      new MemoryState(),
      audit,
      new ActionMetrics(new Registry(), 'celery_autopilot_'),
      silentLogger(),
      {
        dryRun: false,
        killSwitch,
        allowDangerous: [],
        memorySeconds: 3600,
        inFlightSeconds: 60,
        busyShrinkRetries: 0,
        busyShrinkRetryMs: 1,
        confirmMs: 300,
      },
      {
        kubernetes: { client, config: kubernetesSchema.parse({}), defaultNamespace: NS },
        sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
      },
    );
  };
  let n = 0;
  const decide = async (labels: Record<string, string>, extra: Partial<Alert> = {}): Promise<Decision & Record<string, unknown>> => {
    remediator.accept({
      version: '4',
      truncatedAlerts: 0,
      malformedAlerts: 0,
      alerts: [
        {
          status: 'firing',
          labels,
          annotations: {},
          startsAt: `2026-12-01T00:00:${String(n++).padStart(2, '0')}Z`,
          fingerprint: `fp-${n}`,
          ...extra,
        },
      ],
    });
    await remediator.idle();
    return audit.recent('remediation', 1)[0] as unknown as Decision & Record<string, unknown>;
  };
  const writes = (from: number) => api.requests.slice(from).filter((r) => r.method !== 'GET');

  beforeAll(async () => {
    api = await startKubeApiServer();
    api.tokens.set(TOKEN, { user: 'system:serviceaccount:celery:celery-autopilot' });
    dir = await mkdtemp(path.join(tmpdir(), 'cap-scale-guards-'));
    await api.writeKubeconfig(kubeconfigIn(dir), TOKEN, NS);
    client = new KubernetesClient(kubeconfigCredentials(kubeconfigIn(dir)));
    for (const name of ['free', 'hpa-owned', 'keda-owned'])
      await api.addDeployment({ namespace: NS, name, replicas: 1, worker: undefined });
    api.addHpa(NS, 'web-hpa', 'hpa-owned');
    api.addScaledObject(NS, 'worker-so', 'keda-owned');
  });
  afterAll(async () => {
    await api?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => setup());

  it('refuses a Deployment an HPA or a KEDA ScaledObject owns, says why and what to do, writes nothing', async () => {
    const mark = api.requests.length;
    for (const [name, owner] of [
      ['hpa-owned', 'HorizontalPodAutoscaler/web-hpa'],
      ['keda-owned', 'ScaledObject/worker-so'],
    ]) {
      const d = await decide({ alertname: 'Backlog', deployment: name! });
      expect(d).toMatchObject({ outcome: 'suppressed', reason: 'autoscaler_owned' });
      expect(d.skipped[0]!.detail).toContain(`${owner} scales ${NS}/${name} and would overwrite this change`);
      expect(d.skipped[0]!.detail).toContain('minReplicas/maxReplicas');
    }
    expect(writes(mark)).toEqual([]);
  });

  it('bounds: +5 from 1 stops at max_replicas 3; at the ceiling nothing is written; on resolve back down, never below what it added', async () => {
    const up = await decide(
      { alertname: 'Backlog', deployment: 'free' },
      { annotations: { by: '5' }, fingerprint: 'fp-bounds', startsAt: '2026-12-02T00:00:00Z' },
    );
    expect(up).toMatchObject({ outcome: 'acted', targets: [`${NS}/free`], deployment: { before: 1, after: 3 } });
    expect(api.replicas(NS, 'free')).toBe(3);
    const mark = api.requests.length;
    const again = await decide({ alertname: 'Backlog', deployment: 'free' });
    expect(again).toMatchObject({ outcome: 'suppressed', reason: 'bound' });
    expect(again.skipped[0]!.detail).toBe('already at 3 replicas (bounds 1–3)');
    expect(writes(mark)).toEqual([]);
    // Resolved: by -5, but only the 2 this alert added, and never under min_replicas.
    const down = await decide(
      { alertname: 'Backlog', deployment: 'free' },
      { status: 'resolved', fingerprint: 'fp-bounds', startsAt: '2026-12-02T00:00:00Z' },
    );
    expect(down).toMatchObject({ outcome: 'acted', deployment: { before: 3, after: 1 } });
    expect(api.replicas(NS, 'free')).toBe(1);
  });

  it('dry run records before → after and writes nothing; the kill switch stops it before the API is asked', async () => {
    const mark = api.requests.length;
    const dry = await decide({ alertname: 'Pin', deployment: 'free' });
    expect(dry).toMatchObject({ outcome: 'dry_run', targets: [`${NS}/free`], deployment: { before: 1, after: 3 } });
    expect(writes(mark)).toEqual([]);
    expect(api.replicas(NS, 'free')).toBe(1);
    setup(true);
    const m2 = api.requests.length;
    const stopped = await decide({ alertname: 'Backlog', deployment: 'free' });
    expect(stopped).toMatchObject({ outcome: 'suppressed', reason: 'kill_switch', targets: [`${NS}/free`] });
    expect(api.requests.length).toBe(m2);
  });

  it("a label that is not a Deployment name is refused before any request; the API's 404 and 403 are failed decisions, sent once", async () => {
    const mark = api.requests.length;
    const bad = await decide({ alertname: 'Backlog', deployment: '../../secrets' });
    expect(bad).toMatchObject({ outcome: 'failed', reason: 'bad_arguments', error: 'not a Deployment name: "../../secrets"' });
    expect(api.requests.length).toBe(mark);
    const missing = await decide({ alertname: 'Backlog', deployment: 'missing' });
    expect(missing).toMatchObject({ outcome: 'failed', reason: 'kubernetes' });
    expect(missing.error).toContain('deployments.apps "missing" not found');
    api.tokens.set(TOKEN, { user: 'system:serviceaccount:celery:celery-autopilot', can: (verb) => verb !== 'patch' });
    try {
      const m2 = api.requests.length;
      const forbidden = await decide({ alertname: 'Backlog', deployment: 'free' });
      expect(forbidden).toMatchObject({ outcome: 'failed', reason: 'kubernetes' });
      expect(forbidden.error).toContain('cannot patch resource "deployments/scale"');
      expect(writes(m2).map((r) => `${r.method} ${r.status}`)).toEqual(['PATCH 403']);
    } finally {
      api.tokens.set(TOKEN, { user: 'system:serviceaccount:celery:celery-autopilot' });
    }
  });
});
