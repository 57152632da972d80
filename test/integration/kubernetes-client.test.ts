import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { KubernetesApiError, KubernetesClient, KubernetesUnavailableError } from '../../src/kubernetes/client.js';
import { inClusterCredentials, kubeconfigCredentials } from '../../src/kubernetes/credentials.js';
import { kubeconfigIn, startKubeApiServer, type TestKubeApiServer } from '../support/kube-apiserver.js';
import { makeCertificates } from '../support/tls-endpoints.js';

/** The Kubernetes client against the test API server (no workers: replicas start and stay at 0). */
describe('Kubernetes client', () => {
  const NS = 'celery';
  let api: TestKubeApiServer;
  let dir: string;
  const token = 'client-token-0123456789';
  const worker = undefined;

  beforeAll(async () => {
    api = await startKubeApiServer();
    api.tokens.set(token, { user: 'system:serviceaccount:celery:celery-autopilot' });
    dir = await mkdtemp(path.join(tmpdir(), 'cap-kclient-'));
    await api.writeKubeconfig(kubeconfigIn(dir), token, NS);
    await api.addDeployment({ namespace: NS, name: 'w', replicas: 0, worker });
    await api.addDeployment({ namespace: NS, name: 'hpa-owned', replicas: 0, worker });
  });
  afterAll(async () => {
    await api?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const client = () => new KubernetesClient(kubeconfigCredentials(kubeconfigIn(dir)), 5000);
  const callsTo = (pathPart: string, from: number) => api.requests.slice(from).filter((r) => r.path.includes(pathPart));

  it('a kubeconfig: verifies the server with its CA, reads the Deployment and its scale', async () => {
    const c = client();
    expect(c.source).toBe(kubeconfigIn(dir));
    expect(await c.getScale(NS, 'w')).toMatchObject({ replicas: 0, currentReplicas: 0, resourceVersion: expect.stringMatching(/^\d+$/) });
    expect(await c.getDeployment(NS, 'w')).toEqual({ selector: { app: 'w' }, replicas: 0, readyReplicas: 0 });
    expect(await c.listPods(NS, { app: 'w' })).toEqual([]);
  });

  it('a CA that did not sign the server is refused (unavailable, with the TLS reason)', async () => {
    const other = await makeCertificates();
    try {
      const file = path.join(dir, 'wrong-ca-kubeconfig');
      await api.writeKubeconfig(file, token, NS);
      const doc = parseYaml(await readFile(file, 'utf8')) as {
        clusters: Array<{ cluster: Record<string, string> }>;
      };
      doc.clusters[0]!.cluster['certificate-authority'] = other.wrongCaFile;
      await writeFile(file, stringifyYaml(doc));
      const err = await new KubernetesClient(kubeconfigCredentials(file)).getScale(NS, 'w').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KubernetesUnavailableError);
      expect(String(err)).toMatch(/self[- ]signed|unable to verify|certificate/i);
    } finally {
      await other.remove();
    }
  });

  it('in cluster: the service account token is read again on every request, so a rotated token keeps working', async () => {
    const sa = path.join(dir, 'serviceaccount');
    await mkdir(sa);
    await copyFile(api.caFile, path.join(sa, 'ca.crt'));
    await writeFile(path.join(sa, 'namespace'), `${NS}\n`);
    await writeFile(path.join(sa, 'token'), 'sa-token-one-0123456789\n');
    api.tokens.set('sa-token-one-0123456789', { user: 'system:serviceaccount:celery:celery-autopilot' });
    const port = new URL(api.url).port;
    const creds = inClusterCredentials({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port }, sa);
    expect(creds).toMatchObject({ server: `https://127.0.0.1:${port}`, namespace: NS, source: 'in-cluster service account' });
    const c = new KubernetesClient(creds);
    expect((await c.getScale(NS, 'w')).replicas).toBe(0);
    // The kubelet rotates the token: the old one stops working on the server at the same time.
    api.tokens.delete('sa-token-one-0123456789');
    api.tokens.set('sa-token-two-0123456789', { user: 'system:serviceaccount:celery:celery-autopilot' });
    await writeFile(path.join(sa, 'token'), 'sa-token-two-0123456789\n');
    expect((await c.getScale(NS, 'w')).replicas).toBe(0);
    expect(() => inClusterCredentials({}, sa)).toThrow(/set kubernetes.kubeconfig/);
  });

  it('409: another writer moved the scale; the fresh object is read and decided on again', async () => {
    const c = client();
    const seen: number[] = [];
    api.interfereBeforeNextWrite(NS, 'w', 2);
    const mark = api.requests.length;
    const { before, after, conflicts } = await c.rescale(NS, 'w', (s) => {
      seen.push(s.replicas);
      return s.replicas + 1;
    });
    expect(seen).toEqual([0, 2]);
    expect(conflicts).toBe(1);
    expect(before.replicas).toBe(2);
    expect(after?.replicas).toBe(3);
    expect(callsTo('/deployments/w/scale', mark).map((r) => `${r.method} ${r.status}`)).toEqual([
      'GET 200',
      'PATCH 409',
      'GET 200',
      'PATCH 200',
    ]);
    // The write is a merge patch carrying the resourceVersion it read.
    const patch = callsTo('/deployments/w/scale', mark).at(-1)!;
    expect(patch.contentType).toBe('application/merge-patch+json');
    expect(patch.body).toEqual({ metadata: { resourceVersion: expect.any(String) }, spec: { replicas: 3 } });
    // Nothing to change: nothing written.
    const m2 = api.requests.length;
    expect((await c.rescale(NS, 'w', (s) => s.replicas)).after).toBeUndefined();
    expect(callsTo('/scale', m2).map((r) => r.method)).toEqual(['GET']);
  });

  it('401, 403, 404 and 422 are clear errors, sent once and never retried', async () => {
    const c = client();
    const once = async (fn: () => Promise<unknown>) => {
      const mark = api.requests.length;
      const err = (await fn().catch((e: unknown) => e)) as KubernetesApiError;
      expect(err).toBeInstanceOf(KubernetesApiError);
      expect(api.requests.length - mark).toBe(1);
      return err;
    };
    const missing = await once(() => c.rescale(NS, 'nope', () => 1));
    expect(missing).toMatchObject({ status: 404, reason: 'NotFound' });
    expect(missing.message).toContain('deployments.apps "nope" not found');
    const rv = (await c.getScale(NS, 'w')).resourceVersion;
    const invalid = await once(() => c.patchScale(NS, 'w', -1, rv));
    expect(invalid).toMatchObject({ status: 422, reason: 'Invalid' });
    expect(invalid.message).toContain('must be greater than or equal to 0');
    api.tokens.set(token, { user: 'system:serviceaccount:celery:celery-autopilot', can: (verb) => verb !== 'patch' });
    try {
      const forbidden = await once(() => c.patchScale(NS, 'w', 1, rv));
      expect(forbidden).toMatchObject({ status: 403, reason: 'Forbidden' });
      expect(forbidden.message).toContain('cannot patch resource "deployments/scale"');
      expect(forbidden.message).toContain('resourceNames');
    } finally {
      api.tokens.set(token, { user: 'system:serviceaccount:celery:celery-autopilot' });
    }
    api.tokens.delete(token);
    try {
      const unauthorized = await once(() => c.getScale(NS, 'w'));
      expect(unauthorized).toMatchObject({ status: 401, reason: 'Unauthorized' });
      expect(unauthorized.message).toContain('refused the credentials');
    } finally {
      api.tokens.set(token, { user: 'system:serviceaccount:celery:celery-autopilot' });
    }
  });

  it('finds the HPAs and ScaledObjects that own a Deployment; a cluster without KEDA has none', async () => {
    api.addHpa(NS, 'web', 'hpa-owned');
    api.addScaledObject(NS, 'w-scaler', 'w');
    const c = client();
    expect(await c.scaleOwners(NS, 'hpa-owned')).toEqual(['HorizontalPodAutoscaler/web']);
    expect(await c.scaleOwners(NS, 'w')).toEqual(['ScaledObject/w-scaler']);
    expect(await c.scaleOwners(NS, 'other')).toEqual([]);
    const noKeda = await startKubeApiServer({ keda: false });
    try {
      noKeda.tokens.set(token, { user: 'u' });
      const file = path.join(dir, 'nokeda-kubeconfig');
      await noKeda.writeKubeconfig(file, token, NS);
      expect(await new KubernetesClient(kubeconfigCredentials(file)).scaleOwners(NS, 'w')).toEqual([]);
      expect(noKeda.requests.map((r) => `${r.path} ${r.status}`)).toEqual([
        `/apis/autoscaling/v2/namespaces/${NS}/horizontalpodautoscalers 200`,
        `/apis/keda.sh/v1alpha1/namespaces/${NS}/scaledobjects 404`,
      ]);
    } finally {
      await noKeda.stop();
    }
  });
});
