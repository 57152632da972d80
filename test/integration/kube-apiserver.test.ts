import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectActiveQueues } from '../support/celery/client.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { kubeconfigIn, startKubeApiServer, type TestKubeApiServer } from '../support/kube-apiserver.js';
import { kubectl } from '../support/kubectl.js';

/**
 * The test Kubernetes API server is what Debian's kubectl accepts: discovery, get --raw, scale,
 * and the Status objects of every refusal. Its replicas are real Celery workers consuming a queue.
 */
describe('test Kubernetes API server, driven by kubectl, replicas are real Celery workers', () => {
  const NS = 'celery';
  const QUEUE = 'kq';
  let api: TestKubeApiServer;
  let vhost: Awaited<ReturnType<typeof createVhost>>;
  let dir: string;
  let kubeconfig: string;
  const admin = 'admin-token-0123456789';

  beforeAll(async () => {
    vhost = await createVhost(uniqueId('kube-api'));
    api = await startKubeApiServer();
    api.tokens.set(admin, { user: 'admin' });
    dir = await mkdtemp(path.join(tmpdir(), 'cap-kube-'));
    kubeconfig = kubeconfigIn(dir);
    await api.writeKubeconfig(kubeconfig, admin, NS);
    await api.addDeployment({
      namespace: NS,
      name: 'celery-worker',
      replicas: 1,
      worker: { brokerUrl: vhost.url, queues: [QUEUE], concurrency: 1 },
    });
  });

  afterAll(async () => {
    await api?.stop();
    await vhost?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const consuming = async (names: string[]) => {
    const replies = await inspectActiveQueues({ brokerUrl: vhost.url }, names);
    return names.filter((n) => replies[n]?.some((q) => q.name === QUEUE));
  };

  it('kubectl reads discovery and the scale subresource, and kubectl scale adds and removes real workers (newest leaves first)', async () => {
    const version = await kubectl(kubeconfig, 'version', '-o', 'json');
    expect(version.code, version.stderr).toBe(0);
    expect(JSON.parse(version.stdout).serverVersion.gitVersion).toMatch(/^v1\.32/);
    const raw = await kubectl(kubeconfig, 'get', '--raw', `/apis/apps/v1/namespaces/${NS}/deployments/celery-worker/scale`);
    expect(raw.code, raw.stderr).toBe(0);
    expect(JSON.parse(raw.stdout)).toMatchObject({
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      spec: { replicas: 1 },
      status: { replicas: 1, selector: 'app=celery-worker' },
    });
    const first = api.pods(NS, 'celery-worker').map((p) => p.nodename);
    expect(await consuming(first)).toEqual(first);

    const up = await kubectl(kubeconfig, 'scale', 'deployment/celery-worker', '--replicas=3');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain('deployment.apps/celery-worker scaled');
    // kubectl sends a JSON merge patch of spec.replicas to the scale subresource.
    const patch = api.requests.filter((r) => r.method === 'PATCH').at(-1)!;
    expect(patch).toMatchObject({
      path: `/apis/apps/v1/namespaces/${NS}/deployments/celery-worker/scale`,
      contentType: 'application/merge-patch+json',
      body: { spec: { replicas: 3 } },
      status: 200,
    });
    await api.settled(NS, 'celery-worker');
    const three = api.pods(NS, 'celery-worker').map((p) => p.nodename);
    expect(three).toHaveLength(3);
    await waitFor('three workers consuming', async () => ((await consuming(three)).length === 3 ? true : undefined), 30_000);
    const pods = await kubectl(kubeconfig, 'get', '--raw', `/api/v1/namespaces/${NS}/pods?labelSelector=app%3Dcelery-worker`);
    expect((JSON.parse(pods.stdout) as { items: unknown[] }).items).toHaveLength(3);

    const down = await kubectl(kubeconfig, 'scale', 'deployment/celery-worker', '--replicas=1');
    expect(down.code, down.stderr).toBe(0);
    await api.settled(NS, 'celery-worker');
    // The first pod stays: the two newest went, and their workers are gone.
    expect(api.pods(NS, 'celery-worker').map((p) => p.nodename)).toEqual(first);
    expect(await consuming(three)).toEqual(first);
  });

  it('refusals are Status objects kubectl understands: 401, 403, 404, 409, 422', async () => {
    const bad = path.join(dir, 'bad-kubeconfig');
    await api.writeKubeconfig(bad, 'not-a-token-at-all', NS);
    const unauthorized = await kubectl(bad, 'get', '--raw', `/apis/apps/v1/namespaces/${NS}/deployments/celery-worker/scale`);
    expect(unauthorized.code).not.toBe(0);
    expect(unauthorized.stderr).toMatch(/Unauthorized/);

    api.tokens.set('viewer-token-0123456', {
      user: 'system:serviceaccount:celery:viewer',
      can: (verb) => verb === 'get' || verb === 'list',
    });
    const viewer = path.join(dir, 'viewer-kubeconfig');
    await api.writeKubeconfig(viewer, 'viewer-token-0123456', NS);
    const forbidden = await kubectl(viewer, 'scale', 'deployment/celery-worker', '--replicas=2');
    expect(forbidden.code).not.toBe(0);
    expect(forbidden.stderr).toContain(
      'deployments.apps "celery-worker" is forbidden: User "system:serviceaccount:celery:viewer" cannot patch resource "deployments/scale" in API group "apps" in the namespace "celery"',
    );

    const missing = await kubectl(kubeconfig, 'scale', 'deployment/nope', '--replicas=2');
    expect(missing.stderr).toContain('deployments.apps "nope" not found');

    // A PUT of the scale with a resourceVersion that has moved on (another writer) is a 409.
    const scalePath = `/apis/apps/v1/namespaces/${NS}/deployments/celery-worker/scale`;
    const stale = JSON.parse((await kubectl(kubeconfig, 'get', '--raw', scalePath)).stdout) as { metadata: { resourceVersion: string } };
    api.interfereBeforeNextWrite(NS, 'celery-worker');
    const file = path.join(dir, 'scale.json');
    await writeFile(file, JSON.stringify({ ...stale, spec: { replicas: 1 } }));
    const conflict = await kubectl(kubeconfig, 'replace', '--raw', scalePath, '-f', file);
    expect(conflict.code).not.toBe(0);
    expect(conflict.stderr).toContain('the object has been modified; please apply your changes to the latest version and try again');
    expect(api.requests.at(-1)).toMatchObject({ method: 'PUT', status: 409 });

    await writeFile(
      file,
      JSON.stringify({ kind: 'Scale', apiVersion: 'autoscaling/v1', metadata: { name: 'celery-worker' }, spec: { replicas: -1 } }),
    );
    const invalid = await kubectl(kubeconfig, 'replace', '--raw', scalePath, '-f', file);
    expect(invalid.stderr).toContain('spec.replicas: Invalid value: -1: must be greater than or equal to 0');
    expect(api.requests.at(-1)).toMatchObject({ method: 'PUT', status: 422 });
    expect(api.replicas(NS, 'celery-worker')).toBe(1);

    // kubectl patch on the subresource: JSON patch and strategic merge patch, as a real server takes them.
    const patches = [
      ['--type=json', '[{"op":"replace","path":"/spec/replicas","value":1}]', 'application/json-patch+json'],
      ['--type=strategic', '{"spec":{"replicas":1}}', 'application/strategic-merge-patch+json'],
    ];
    for (const [type, patch, contentType] of patches) {
      const done = await kubectl(kubeconfig, 'patch', 'deployment/celery-worker', '--subresource=scale', type!, '-p', patch!);
      expect(done.code, done.stderr).toBe(0);
      expect(api.requests.at(-1)).toMatchObject({ method: 'PATCH', contentType, status: 200 });
    }
  });

  it('lists HorizontalPodAutoscalers and ScaledObjects as kubectl reads them', async () => {
    api.addHpa(NS, 'web', 'web-deployment');
    api.addScaledObject(NS, 'celery-worker', 'celery-worker');
    const hpa = await kubectl(kubeconfig, 'get', '--raw', `/apis/autoscaling/v2/namespaces/${NS}/horizontalpodautoscalers`);
    expect(JSON.parse(hpa.stdout)).toMatchObject({
      kind: 'HorizontalPodAutoscalerList',
      items: [{ spec: { scaleTargetRef: { kind: 'Deployment', name: 'web-deployment' } } }],
    });
    const so = await kubectl(kubeconfig, 'get', 'scaledobjects', '-o', 'json');
    expect(so.code, so.stderr).toBe(0);
    expect(JSON.parse(so.stdout)).toMatchObject({
      items: [{ metadata: { name: 'celery-worker' }, spec: { scaleTargetRef: { name: 'celery-worker' } } }],
    });
  });
});
