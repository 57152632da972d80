import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { TestReplicaSet, type TestPod, type WorkerTemplate } from './kube-replicas.js';
import { issueServerCertificate, makeCertificates } from './tls-endpoints.js';

/**
 * A Kubernetes API server for tests, since none can be installed here: HTTPS with a CA made by
 * openssl, bearer tokens, and the documented behaviour of what scale_deployment uses — discovery
 * (enough for kubectl), Deployments, their `scale` subresource (GET, merge PATCH, PUT, with
 * resourceVersion preconditions → 409), pods by label selector, HPA and KEDA ScaledObject lists,
 * and Status objects for 401/403/404/409/415/422. Debian's kubectl runs against it in the same
 * tests, so it cannot drift from what a real server accepts. Every replica is a real Celery
 * worker (kube-replicas.ts).
 */

export interface TokenGrant {
  /** The user the API reports in a 403, e.g. system:serviceaccount:celery:celery-autopilot. */
  user: string;
  /** RBAC in one function: may `user` do `verb` on `resource` (e.g. deployments/scale) named `name`? */
  can?: (verb: string, resource: string, name: string | undefined) => boolean;
}

export interface TestDeploymentSpec {
  namespace: string;
  name: string;
  replicas: number;
  /** How each replica's Celery worker starts; undefined: bare pods with no process (API-only tests). */
  worker: WorkerTemplate | undefined;
}

interface StoredDeployment {
  namespace: string;
  name: string;
  uid: string;
  created: string;
  replicas: number;
  generation: number;
  resourceVersion: string;
  set: TestReplicaSet;
}

export interface RecordedRequest {
  method: string;
  path: string;
  contentType?: string;
  body?: unknown;
  status: number;
  userAgent?: string;
  /**
   * A write that lowered the replicas: the pods that leave, and whether each one's worker had
   * already stopped consuming (Celery logs "Canceling queue <q>" on cancel_consumer) when the
   * count dropped.
   */
  leaving?: Array<{ pod: string; worker: string; consumerCancelled: boolean }>;
}

export interface TestKubeApiServer {
  readonly url: string;
  readonly caFile: string;
  readonly requests: RecordedRequest[];
  /** Token → who it is and what it may do. Change it at any time (a rotated token). */
  readonly tokens: Map<string, TokenGrant>;
  addDeployment(spec: TestDeploymentSpec): Promise<void>;
  /** An HPA whose scaleTargetRef is this Deployment. */
  addHpa(namespace: string, name: string, deployment: string): void;
  /** A KEDA ScaledObject whose scaleTargetRef is this Deployment. */
  addScaledObject(namespace: string, name: string, deployment: string): void;
  /** Another writer changes the Deployment before the next write: its resourceVersion moves on. */
  interfereBeforeNextWrite(namespace: string, name: string, replicas?: number): void;
  pods(namespace: string, name: string): readonly TestPod[];
  replicas(namespace: string, name: string): number;
  /** Resolves once the Deployment's workers match its replicas. */
  settled(namespace: string, name: string): Promise<void>;
  /** A kubeconfig for `token`, written to `file` (kubectl and the service's kubernetes.kubeconfig). */
  writeKubeconfig(file: string, token: string, namespace?: string): Promise<void>;
  stop(): Promise<void>;
}

const GROUP_OF: Record<string, string> = {
  deployments: 'apps',
  scale: 'apps',
  horizontalpodautoscalers: 'autoscaling',
  scaledobjects: 'keda.sh',
  pods: '',
};

/** A Status object as the API server sends it. */
function status(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

const notFound = (resource: string, name: string) =>
  new HttpError(
    404,
    status(404, 'NotFound', `${resource} "${name}" not found`, { name, group: resource.split('.')[1] ?? '', kind: resource.split('.')[0] }),
  );

export async function startKubeApiServer(options: { keda?: boolean } = {}): Promise<TestKubeApiServer> {
  const keda = options.keda ?? true;
  const certs = await makeCertificates();
  const cert = {
    caFile: certs.caFile,
    ...(await issueServerCertificate(certs, 'kube-apiserver', 'IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc')),
  };
  const tokens = new Map<string, TokenGrant>();
  const deployments = new Map<string, StoredDeployment>();
  const hpas: Array<{ namespace: string; name: string; target: string }> = [];
  const scaledObjects: Array<{ namespace: string; name: string; target: string }> = [];
  const interfere = new Map<string, number | undefined>();
  const requests: RecordedRequest[] = [];
  let version = 1000;
  const nextVersion = () => String(++version);
  const key = (ns: string, name: string) => `${ns}/${name}`;

  const deploymentOf = (ns: string, name: string): StoredDeployment => {
    const d = deployments.get(key(ns, name));
    if (!d) throw notFound('deployments.apps', name);
    return d;
  };

  const server: Server = createServer({ key: await readFile(cert.key), cert: await readFile(cert.cert) }, (req, res) => {
    handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const record: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname + url.search, status: 0 };
    if (req.headers['user-agent']) record.userAgent = req.headers['user-agent'];
    if (req.headers['content-type']) record.contentType = req.headers['content-type'];
    requests.push(record);
    const send = (code: number, body: unknown) => {
      record.status = code;
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      if (text !== '') {
        try {
          body = JSON.parse(text);
        } catch {
          throw new HttpError(400, status(400, 'BadRequest', 'the request body is not valid JSON'));
        }
        record.body = body;
      }
      const grant = authenticate(req.headers.authorization);
      send(200, route(record, url, body, grant, (req.headers['content-type'] ?? '').split(';')[0]!.trim()));
    } catch (e) {
      if (e instanceof HttpError) send(e.code, e.body);
      else send(500, status(500, 'InternalError', (e as Error).message));
    }
  }

  function authenticate(header: string | undefined): TokenGrant {
    const m = /^Bearer (.+)$/.exec(header ?? '');
    const grant = m ? tokens.get(m[1]!) : undefined;
    if (!grant) throw new HttpError(401, status(401, 'Unauthorized', 'Unauthorized'));
    return grant;
  }

  function authorize(grant: TokenGrant, verb: string, resource: string, ns: string, name?: string): void {
    if (grant.can && !grant.can(verb, resource, name)) {
      const [base, sub] = resource.split('/');
      const group = GROUP_OF[sub ?? base!] ?? '';
      const shown = `${base}${group ? `.${group}` : ''}`;
      throw new HttpError(
        403,
        status(
          403,
          'Forbidden',
          `${shown}${name ? ` "${name}"` : ''} is forbidden: User "${grant.user}" cannot ${verb} resource "${resource}" in API group "${group}" in the namespace "${ns}"`,
          { ...(name ? { name } : {}), group, kind: base },
        ),
      );
    }
  }

  function route(record: RecordedRequest, url: URL, body: unknown, grant: TokenGrant, contentType: string): unknown {
    const method = record.method;
    const p = url.pathname.replace(/\/+$/, '');
    const discovery = keda || !p.startsWith('/apis/keda.sh') ? discoveryDocument(p, server, keda) : undefined;
    if (discovery !== undefined && method === 'GET') return discovery;
    let m = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)(\/scale)?$/.exec(p);
    if (m) {
      const [, ns, name, scale] = m as unknown as [string, string, string, string | undefined];
      const verb = method === 'GET' ? 'get' : method === 'PATCH' ? 'patch' : method === 'PUT' ? 'update' : '';
      if (verb === '' || (verb !== 'get' && !scale))
        throw new HttpError(405, status(405, 'MethodNotAllowed', `${method} is not supported here`));
      authorize(grant, verb, scale ? 'deployments/scale' : 'deployments', ns, name);
      const d = deploymentOf(ns, name);
      if (!scale) return deploymentObject(d);
      if (verb === 'get') return scaleObject(d);
      return writeScale(d, verb, verb === 'patch' ? patchBody(contentType, body) : body, url, record);
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(p);
    if (m && method === 'GET') {
      const ns = m[1]!;
      authorize(grant, 'get', 'namespaces', ns, ns);
      if (![...deployments.values()].some((d) => d.namespace === ns)) throw notFound('namespaces', ns);
      return { kind: 'Namespace', apiVersion: 'v1', metadata: { name: ns }, status: { phase: 'Active' } };
    }
    m = /^\/api\/v1\/namespaces\/([^/]+)\/pods$/.exec(p);
    if (m && method === 'GET') {
      const ns = m[1]!;
      authorize(grant, 'list', 'pods', ns);
      return podList(ns, url.searchParams.get('labelSelector') ?? '');
    }
    m = /^\/apis\/(autoscaling\/v2|keda\.sh\/v1alpha1)\/namespaces\/([^/]+)\/(horizontalpodautoscalers|scaledobjects)$/.exec(p);
    // Without KEDA installed its group does not exist: 404, as from a real server.
    if (m && !keda && m[1] === 'keda.sh/v1alpha1') m = null;
    if (m && method === 'GET') {
      const [, gv, ns, resource] = m as unknown as [string, string, string, string];
      authorize(grant, 'list', resource, ns);
      const isHpa = resource === 'horizontalpodautoscalers';
      const items = (isHpa ? hpas : scaledObjects).filter((o) => o.namespace === ns);
      return {
        kind: isHpa ? 'HorizontalPodAutoscalerList' : 'ScaledObjectList',
        apiVersion: gv,
        metadata: { resourceVersion: String(version) },
        items: items.map((o) => ({
          metadata: { name: o.name, namespace: o.namespace },
          spec: { scaleTargetRef: isHpa ? { apiVersion: 'apps/v1', kind: 'Deployment', name: o.target } : { name: o.target } },
        })),
      };
    }
    throw new HttpError(404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }

  /**
   * A PATCH body as the fields it sets: a JSON merge patch (kubectl scale) or strategic merge
   * patch is the object itself; a JSON patch (RFC 6902) may test, add or replace
   * /spec/replicas and /metadata/resourceVersion. Any other media type is a 415.
   */
  function patchBody(contentType: string, body: unknown): unknown {
    if (contentType === 'application/merge-patch+json' || contentType === 'application/strategic-merge-patch+json') return body;
    if (contentType !== 'application/json-patch+json') {
      throw new HttpError(
        415,
        status(
          415,
          'UnsupportedMediaType',
          `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
        ),
      );
    }
    const out: { metadata?: { resourceVersion?: unknown }; spec?: { replicas?: unknown } } = {};
    for (const op of Array.isArray(body) ? (body as Array<{ op?: string; path?: string; value?: unknown }>) : []) {
      if (!['add', 'replace', 'test'].includes(op.op ?? ''))
        throw new HttpError(422, status(422, 'Invalid', `unsupported JSON patch operation: ${op.op}`));
      if (op.path === '/spec/replicas') out.spec = { replicas: op.value };
      else if (op.path === '/metadata/resourceVersion') out.metadata = { resourceVersion: op.value };
      else throw new HttpError(422, status(422, 'Invalid', `the server rejected our request due to an error in our request: ${op.path}`));
    }
    return out;
  }

  function writeScale(d: StoredDeployment, verb: string, body: unknown, url: URL, record: RecordedRequest): unknown {
    const k = key(d.namespace, d.name);
    if (interfere.has(k)) {
      const replicas = interfere.get(k);
      interfere.delete(k);
      if (replicas !== undefined) setReplicas(d, replicas);
      else d.resourceVersion = nextVersion();
    }
    const obj = (body ?? {}) as { metadata?: { resourceVersion?: unknown }; spec?: { replicas?: unknown } };
    if (url.searchParams.get('dryRun')) throw new HttpError(400, status(400, 'BadRequest', 'dryRun is not supported by this test server'));
    const rv = obj.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== d.resourceVersion) {
      throw new HttpError(
        409,
        status(
          409,
          'Conflict',
          `Operation cannot be fulfilled on deployments.apps "${d.name}": the object has been modified; please apply your changes to the latest version and try again`,
          { name: d.name, group: 'apps', kind: 'deployments' },
        ),
      );
    }
    const replicas = obj.spec?.replicas;
    if (verb === 'update' && replicas === undefined) throw invalid(d, 'spec.replicas', replicas, 'Required value');
    if (replicas !== undefined) {
      if (typeof replicas !== 'number' || !Number.isInteger(replicas)) throw invalid(d, 'spec.replicas', replicas, 'must be an integer');
      if (replicas < 0) throw invalid(d, 'spec.replicas', replicas, 'must be greater than or equal to 0');
      if (replicas < d.replicas) {
        record.leaving = d.set.leavingFirst(d.set.live.length - replicas).map((p) => ({
          pod: p.name,
          worker: p.nodename,
          consumerCancelled: /Canceling queue /.test(p.worker?.logs() ?? ''),
        }));
      }
      if (replicas !== d.replicas) setReplicas(d, replicas);
    }
    return scaleObject(d);
  }

  function invalid(d: StoredDeployment, field: string, value: unknown, why: string): HttpError {
    const message = `Scale.autoscaling "${d.name}" is invalid: ${field}: Invalid value: ${JSON.stringify(value)}: ${why}`;
    return new HttpError(
      422,
      status(422, 'Invalid', message, {
        name: d.name,
        group: 'autoscaling',
        kind: 'Scale',
        causes: [{ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${why}`, field }],
      }),
    );
  }

  function setReplicas(d: StoredDeployment, replicas: number): void {
    d.replicas = replicas;
    d.generation++;
    d.resourceVersion = nextVersion();
    d.set.scaleTo(replicas);
  }

  const selectorOf = (d: StoredDeployment) => ({ app: d.name });

  function deploymentObject(d: StoredDeployment): unknown {
    const live = d.set.live;
    return {
      kind: 'Deployment',
      apiVersion: 'apps/v1',
      metadata: {
        name: d.name,
        namespace: d.namespace,
        uid: d.uid,
        resourceVersion: d.resourceVersion,
        generation: d.generation,
        creationTimestamp: d.created,
        labels: selectorOf(d),
      },
      spec: {
        replicas: d.replicas,
        selector: { matchLabels: selectorOf(d) },
        template: { metadata: { labels: selectorOf(d) }, spec: { containers: [{ name: 'worker', image: 'celery-worker:test' }] } },
      },
      status: {
        observedGeneration: d.generation,
        replicas: live.length,
        readyReplicas: live.filter((p) => p.ready).length,
        availableReplicas: live.filter((p) => p.ready).length,
        updatedReplicas: live.length,
      },
    };
  }

  function scaleObject(d: StoredDeployment): unknown {
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name: d.name, namespace: d.namespace, uid: d.uid, resourceVersion: d.resourceVersion, creationTimestamp: d.created },
      spec: { replicas: d.replicas },
      status: { replicas: d.set.live.length, selector: `app=${d.name}` },
    };
  }

  function podList(ns: string, selector: string): unknown {
    const want = Object.fromEntries(
      selector
        .split(',')
        .filter(Boolean)
        .map((pair) => pair.split('=') as [string, string]),
    );
    const items = [...deployments.values()]
      .filter((d) => d.namespace === ns && Object.entries(want).every(([k, v]) => selectorOf(d)[k as 'app'] === v))
      .flatMap((d) =>
        d.set.pods.map((pod) => ({
          metadata: {
            name: pod.name,
            namespace: ns,
            labels: selectorOf(d),
            creationTimestamp: pod.createdAt.toISOString(),
            ...(pod.terminating ? { deletionTimestamp: new Date().toISOString() } : {}),
          },
          status: {
            phase: pod.ready ? 'Running' : 'Pending',
            conditions: [{ type: 'Ready', status: pod.ready ? 'True' : 'False' }],
          },
        })),
      );
    return { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(version) }, items };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const find = (ns: string, name: string) => deploymentOf(ns, name);

  return {
    url,
    caFile: cert.caFile,
    requests,
    tokens,
    async addDeployment(spec) {
      const d: StoredDeployment = {
        namespace: spec.namespace,
        name: spec.name,
        uid: randomUUID(),
        created: new Date().toISOString(),
        replicas: spec.replicas,
        generation: 1,
        resourceVersion: nextVersion(),
        set: new TestReplicaSet(spec.name, spec.worker, () => undefined),
      };
      deployments.set(key(spec.namespace, spec.name), d);
      d.set.scaleTo(spec.replicas);
      await d.set.settled();
    },
    addHpa: (namespace, name, target) => void hpas.push({ namespace, name, target }),
    addScaledObject: (namespace, name, target) => void scaledObjects.push({ namespace, name, target }),
    interfereBeforeNextWrite: (ns, name, replicas) => void interfere.set(key(ns, name), replicas),
    pods: (ns, name) => find(ns, name).set.pods,
    replicas: (ns, name) => find(ns, name).replicas,
    settled: (ns, name) => find(ns, name).set.settled(),
    async writeKubeconfig(file, token, namespace = 'default') {
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: url, 'certificate-authority': cert.caFile } }],
        users: [{ name: 'test', user: { token } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace } }],
        'current-context': 'test',
      };
      await writeFile(file, stringifyYaml(config), { mode: 0o600 });
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...deployments.values()].map((d) => d.set.stop()));
      await certs.remove();
    },
  };
}

/** What a real API server answers on the discovery paths kubectl reads (JSON, not aggregated). */
function discoveryDocument(p: string, server: Server, keda: boolean): unknown {
  const resource = (name: string, kind: string, verbs: string[], extra: Record<string, unknown> = {}) => ({
    name,
    singularName: name.includes('/') ? '' : kind.toLowerCase(),
    namespaced: true,
    kind,
    verbs,
    ...extra,
  });
  switch (p) {
    case '/version':
      return { major: '1', minor: '32', gitVersion: 'v1.32.0-celery-autopilot-test', platform: 'linux/amd64' };
    case '/api':
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${(server.address() as AddressInfo).port}` }],
      };
    case '/apis':
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [
          ['apps', 'v1'],
          ['autoscaling', 'v2'],
          ['keda.sh', 'v1alpha1'],
        ]
          .filter(([name]) => keda || name !== 'keda.sh')
          .map(([name, v]) => ({
            name,
            versions: [{ groupVersion: `${name}/${v}`, version: v }],
            preferredVersion: { groupVersion: `${name}/${v}`, version: v },
          })),
      };
    case '/api/v1':
      return {
        kind: 'APIResourceList',
        groupVersion: 'v1',
        resources: [
          { ...resource('namespaces', 'Namespace', ['get'], { shortNames: ['ns'] }), namespaced: false },
          resource('pods', 'Pod', ['get', 'list'], { shortNames: ['po'], categories: ['all'] }),
        ],
      };
    case '/apis/apps/v1':
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: 'apps/v1',
        resources: [
          resource('deployments', 'Deployment', ['get', 'list', 'patch', 'update'], { shortNames: ['deploy'], categories: ['all'] }),
          resource('deployments/scale', 'Scale', ['get', 'patch', 'update'], { group: 'autoscaling', version: 'v1' }),
        ],
      };
    case '/apis/autoscaling/v2':
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: 'autoscaling/v2',
        resources: [
          resource('horizontalpodautoscalers', 'HorizontalPodAutoscaler', ['get', 'list'], { shortNames: ['hpa'], categories: ['all'] }),
        ],
      };
    case '/apis/keda.sh/v1alpha1':
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: 'keda.sh/v1alpha1',
        resources: [resource('scaledobjects', 'ScaledObject', ['get', 'list'], { shortNames: ['so'] })],
      };
    default:
      return undefined;
  }
}

/** A kubeconfig path inside `dir`. */
export const kubeconfigIn = (dir: string): string => path.join(dir, 'kubeconfig');
