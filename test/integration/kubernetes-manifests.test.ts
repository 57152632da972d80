import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { kubernetesSchema } from '../../src/config/kubernetes-schema.js';
import { kustomize, validateObject, type KubeObject } from '../support/kubernetes-manifests.js';
import { REPO_ROOT } from '../support/prometheus.js';

const run = promisify(execFile);
const OVERLAYS = ['deploy/kubernetes/base', 'deploy/kubernetes/overlays/ha', 'deploy/kubernetes/overlays/keda'];

type Container = {
  name: string;
  args?: string[];
  env?: Array<{ name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  livenessProbe?: { httpGet?: { path: string; port: string } };
  readinessProbe?: { httpGet?: { path: string; port: string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
};
type PodSpec = {
  serviceAccountName?: string;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: unknown; secret?: { secretName: string } }>;
};
type Deployment = KubeObject & { spec: { replicas: number; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };

const find = <T extends KubeObject>(objects: KubeObject[], kind: string, name?: string): T => {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind}${name ? `/${name}` : ''} in ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o as T;
};

describe('deploy/kubernetes: kubectl kustomize builds, every object passes its schema', () => {
  it.each(OVERLAYS)('%s', async (dir) => {
    const objects = await kustomize(dir);
    expect(objects.length).toBeGreaterThanOrEqual(8);
    for (const o of objects) await validateObject(o);
    // One namespace for everything namespaced.
    expect(new Set(objects.map((o) => o.metadata.namespace))).toEqual(new Set(['celery']));
  });

  it('examples/celery-worker.yaml validates and names its workers celery@<pod name> (kubernetes.worker_hostname)', async () => {
    const [worker] = parseAllDocuments(await readFile(path.join(REPO_ROOT, 'deploy/kubernetes/examples/celery-worker.yaml'), 'utf8')).map(
      (d) => d.toJS() as Deployment,
    );
    await validateObject(worker!);
    const c = worker!.spec.template.spec.containers[0]!;
    expect(c.args?.join(' ')).toContain('-n celery@$(POD_NAME)');
    expect(c.env).toEqual([{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }]);
    expect(kubernetesSchema.parse({}).worker_hostname).toBe('celery@{pod}');
    // The name the Role and the ScaledObject expect.
    expect(worker!.metadata.name).toBe('celery-worker');
  });

  it('the validators do refuse a broken object (so a pass means something)', async () => {
    const objects = await kustomize('deploy/kubernetes/overlays/keda');
    const d = structuredClone(find<Deployment>(objects, 'Deployment'));
    d.spec.template.spec.containers[0]!.ports![0]!.containerPort = 'http' as unknown as number;
    await expect(validateObject(d)).rejects.toThrow(/containerPort must be integer/);
    const so = structuredClone(find(objects, 'ScaledObject')) as KubeObject & { spec: { scaleTargetRef: Record<string, unknown> } };
    delete so.spec.scaleTargetRef.name;
    await expect(validateObject(so)).rejects.toThrow(/scaleTargetRef must have required property 'name'|required property name/);
    const sm = structuredClone(find(objects, 'ServiceMonitor')) as KubeObject & { spec: { endpoints: Array<{ interval: string }> } };
    sm.spec.endpoints[0]!.interval = 'every 15 seconds';
    await expect(validateObject(sm)).rejects.toThrow(/interval must match pattern/);
    await expect(validateObject({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } })).rejects.toThrow();
  });

  it('the Deployment: probes, resources, non-root, read-only root with writable emptyDirs, config from the Secret', async () => {
    const objects = await kustomize('deploy/kubernetes/base');
    const d = find<Deployment>(objects, 'Deployment', 'celery-autopilot');
    const pod = d.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/-/healthy', port: 'http' });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/-/ready', port: 'http' });
    expect(c.ports).toEqual([expect.objectContaining({ name: 'http', containerPort: 9818 })]);
    expect(c.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(c.resources?.limits?.memory).toBeDefined();
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(c.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    const writable = (c.volumeMounts ?? []).filter((m) => !m.readOnly);
    for (const m of writable) expect(pod.volumes?.find((v) => v.name === m.name)?.emptyDir, m.mountPath).toBeDefined();
    expect(writable.map((m) => m.mountPath).sort()).toEqual(['/tmp', '/var/lib/celery-autopilot']);
    expect(c.args).toEqual(['--config', '/etc/celery-autopilot/config.yaml']);
    expect(pod.volumes?.find((v) => v.name === 'config')?.secret?.secretName).toBe('celery-autopilot');
    expect(c.env?.find((e) => e.name === 'CELERY_AUTOPILOT_BROKER_URL')?.valueFrom?.secretKeyRef).toEqual({
      name: 'celery-autopilot',
      key: 'broker-url',
    });
    expect(pod.serviceAccountName).toBe(find(objects, 'ServiceAccount').metadata.name);
  });

  it('Service and ServiceMonitor: the monitor selects the Service, scrapes its named port, and the job is celery-autopilot', async () => {
    const objects = await kustomize('deploy/kubernetes/base');
    const svc = find(objects, 'Service') as KubeObject & { spec: { selector: Record<string, string>; ports: Array<{ name: string }> } };
    const sm = find(objects, 'ServiceMonitor') as KubeObject & {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }>; jobLabel?: string };
    };
    const d = find<Deployment>(objects, 'Deployment');
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(d.spec.template.metadata.labels[k]).toBe(v);
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels?.[k]).toBe(v);
    expect(sm.spec.endpoints.map((e) => [e.port, e.path])).toEqual([[svc.spec.ports[0]!.name, '/metrics']]);
    // prometheus-operator names the job after the Service unless jobLabel says otherwise; the
    // shipped rules select job="celery-autopilot".
    expect(sm.spec.jobLabel).toBeUndefined();
    expect(svc.metadata.name).toBe('celery-autopilot');
  });

  it('RBAC: least privilege, scale only for named Deployments, read-only HPA and ScaledObject', async () => {
    const objects = await kustomize('deploy/kubernetes/base');
    const role = find(objects, 'Role') as KubeObject & {
      rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }>;
    };
    expect(objects.some((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toBe(false);
    for (const r of role.rules) {
      expect(r.verbs).not.toContain('*');
      expect(r.resources).not.toContain('*');
      expect(r.verbs.every((v) => ['get', 'list', 'patch', 'update'].includes(v))).toBe(true);
    }
    const scale = role.rules.find((r) => r.resources.includes('deployments/scale'))!;
    expect(scale.resourceNames?.length).toBeGreaterThan(0);
    expect(role.rules.find((r) => r.resources.includes('deployments'))?.resourceNames).toEqual(scale.resourceNames);
    const writers = role.rules.filter((r) => r.verbs.some((v) => v === 'patch' || v === 'update'));
    expect(writers.map((r) => r.resources)).toEqual([['deployments/scale']]);
    expect(role.rules.find((r) => r.apiGroups.includes('autoscaling'))).toMatchObject({
      resources: ['horizontalpodautoscalers'],
      verbs: ['get', 'list'],
    });
    expect(role.rules.find((r) => r.apiGroups.includes('keda.sh'))).toMatchObject({ resources: ['scaledobjects'], verbs: ['get', 'list'] });
    const binding = find(objects, 'RoleBinding') as KubeObject & { roleRef: { name: string }; subjects: Array<{ name: string }> };
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects.map((s) => s.name)).toEqual([find(objects, 'ServiceAccount').metadata.name]);
  });

  it('overlays/ha: two replicas spread apart, a disruption budget, and shared remediation state from the Secret', async () => {
    const objects = await kustomize('deploy/kubernetes/overlays/ha');
    const d = find<Deployment>(objects, 'Deployment');
    expect(d.spec.replicas).toBe(2);
    const c = d.spec.template.spec.containers[0]!;
    expect(c.env?.find((e) => e.name === 'CELERY_AUTOPILOT_REMEDIATION_STATE_REDIS_URL')?.valueFrom?.secretKeyRef?.name).toBe(
      'celery-autopilot',
    );
    // The base's settings survive the patch.
    expect(c.readinessProbe?.httpGet?.path).toBe('/-/ready');
    expect(c.env?.some((e) => e.name === 'CELERY_AUTOPILOT_BROKER_URL')).toBe(true);
    expect(find(objects, 'PodDisruptionBudget')).toMatchObject({ spec: { minAvailable: 1 } });
  });

  it('overlays/keda: a ScaledObject whose Prometheus triggers read our signals, each query valid PromQL (promtool)', async () => {
    const objects = await kustomize('deploy/kubernetes/overlays/keda');
    const so = find(objects, 'ScaledObject') as KubeObject & {
      spec: {
        scaleTargetRef: { name: string };
        triggers: Array<{ type: string; name: string; metadata: { query: string; threshold: string } }>;
      };
    };
    expect(so.spec.scaleTargetRef.name).toBe('celery-worker');
    const queries = so.spec.triggers.map((t) => t.metadata.query);
    expect(so.spec.triggers.every((t) => t.type === 'prometheus')).toBe(true);
    expect(queries.join('\n')).toContain('celery_queue_length{job="celery-autopilot"');
    expect(queries.join('\n')).toContain('celery_queue_processes_needed{');
    expect(queries.join('\n')).toContain('celery_queue_time_to_drain_seconds{');
    // promtool parses each query as a recording rule expression.
    const dir = await mkdtemp(path.join(tmpdir(), 'cap-keda-'));
    try {
      const file = path.join(dir, 'queries.yml');
      await writeFile(
        file,
        stringifyYaml({ groups: [{ name: 'keda', rules: queries.map((expr, i) => ({ record: `keda:trigger${i}`, expr })) }] }),
      );
      const { stdout } = await run('promtool', ['check', 'rules', file]);
      expect(stdout).toContain(`SUCCESS: ${queries.length} rules found`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
