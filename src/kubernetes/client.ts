import { request as httpsRequest } from 'node:https';
import type { KubeCredentials } from './credentials.js';

/**
 * A small typed client for the few Kubernetes API calls scale_deployment makes: a Deployment,
 * its `scale` subresource (GET, then a merge PATCH that carries the resourceVersion it read, so
 * a concurrent writer makes it a 409 instead of being overwritten), pods by label, and the HPAs
 * and KEDA ScaledObjects that may own a Deployment. node:https because fetch takes no private
 * CA without undici's own Agent; @kubernetes/client-node would bring dozens of packages for five
 * paths. Failures become KubernetesApiError (4xx: never retried, the message says what to fix)
 * or KubernetesUnavailableError (network, timeout, 5xx).
 */

export interface Scale {
  replicas: number;
  /** Pods the Deployment has now (status.replicas). */
  currentReplicas: number;
  resourceVersion: string;
}

export interface DeploymentInfo {
  selector: Record<string, string>;
  replicas: number;
  readyReplicas: number;
}

export interface PodInfo {
  name: string;
  createdAt: number;
  ready: boolean;
  terminating: boolean;
}

export class KubernetesApiError extends Error {
  override name = 'KubernetesApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class KubernetesUnavailableError extends Error {
  override name = 'KubernetesUnavailableError';
}

const HINT: Record<number, string> = {
  401: 'the API server refused the credentials (token expired, revoked or wrong)',
  403: 'not allowed: the Role of deploy/kubernetes/base/rbac.yaml must name this Deployment in resourceNames',
  404: 'not found',
  409: 'changed by someone else meanwhile',
  422: 'refused as invalid',
};

export class KubernetesClient {
  constructor(
    private readonly creds: KubeCredentials,
    private readonly timeoutMs = 10_000,
  ) {}

  get source(): string {
    return this.creds.source;
  }

  async getDeployment(ns: string, name: string): Promise<DeploymentInfo> {
    const d = (await this.#call('GET', `/apis/apps/v1/namespaces/${seg(ns)}/deployments/${seg(name)}`)) as {
      spec?: { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
      status?: { readyReplicas?: number };
    };
    return { selector: d.spec?.selector?.matchLabels ?? {}, replicas: d.spec?.replicas ?? 0, readyReplicas: d.status?.readyReplicas ?? 0 };
  }

  async getScale(ns: string, name: string): Promise<Scale> {
    return toScale(await this.#call('GET', scalePath(ns, name)));
  }

  /** Sets spec.replicas if the scale is still at `resourceVersion` (409 otherwise). */
  async patchScale(ns: string, name: string, replicas: number, resourceVersion: string): Promise<Scale> {
    const body = { metadata: { resourceVersion }, spec: { replicas } };
    return toScale(await this.#call('PATCH', scalePath(ns, name), body, 'application/merge-patch+json'));
  }

  /**
   * Reads the scale, asks `decide` for the replica count wanted (undefined: leave it), and
   * writes it conditionally; a 409 means another writer got there first, so the fresh object is
   * read and decided on again, up to `attempts` times.
   */
  async rescale(
    ns: string,
    name: string,
    decide: (current: Scale) => number | undefined,
    attempts = 5,
  ): Promise<{ before: Scale; after: Scale | undefined; conflicts: number }> {
    for (let conflicts = 0; ; conflicts++) {
      const before = await this.getScale(ns, name);
      const want = decide(before);
      if (want === undefined || want === before.replicas) return { before, after: undefined, conflicts };
      try {
        return { before, after: await this.patchScale(ns, name, want, before.resourceVersion), conflicts };
      } catch (e) {
        if (!(e instanceof KubernetesApiError && e.status === 409) || conflicts + 1 >= attempts) throw e;
      }
    }
  }

  async listPods(ns: string, selector: Record<string, string>): Promise<PodInfo[]> {
    const labelSelector = Object.entries(selector)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const list = (await this.#call('GET', `/api/v1/namespaces/${seg(ns)}/pods?labelSelector=${encodeURIComponent(labelSelector)}`)) as {
      items?: Array<{
        metadata?: { name?: string; creationTimestamp?: string; deletionTimestamp?: string };
        status?: { conditions?: Array<{ type?: string; status?: string }> };
      }>;
    };
    return (list.items ?? []).map((p) => ({
      name: p.metadata?.name ?? '',
      createdAt: Date.parse(p.metadata?.creationTimestamp ?? '') || 0,
      ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      terminating: p.metadata?.deletionTimestamp !== undefined,
    }));
  }

  /**
   * The autoscalers that own this Deployment: HorizontalPodAutoscalers and KEDA ScaledObjects
   * whose scaleTargetRef names it (KEDA absent from the cluster: none of the latter).
   */
  async scaleOwners(ns: string, deployment: string): Promise<string[]> {
    type List = { items?: Array<{ metadata?: { name?: string }; spec?: { scaleTargetRef?: { kind?: string; name?: string } } }> };
    const hpas = (await this.#call('GET', `/apis/autoscaling/v2/namespaces/${seg(ns)}/horizontalpodautoscalers`)) as List;
    let scaledObjects: List = {};
    try {
      scaledObjects = (await this.#call('GET', `/apis/keda.sh/v1alpha1/namespaces/${seg(ns)}/scaledobjects`)) as List;
    } catch (e) {
      if (!(e instanceof KubernetesApiError && e.status === 404)) throw e;
    }
    const owns = (ref: { kind?: string; name?: string } | undefined) =>
      ref?.name === deployment && (ref.kind ?? 'Deployment') === 'Deployment';
    return [
      ...(hpas.items ?? []).filter((h) => owns(h.spec?.scaleTargetRef)).map((h) => `HorizontalPodAutoscaler/${h.metadata?.name}`),
      ...(scaledObjects.items ?? []).filter((s) => owns(s.spec?.scaleTargetRef)).map((s) => `ScaledObject/${s.metadata?.name}`),
    ];
  }

  async #call(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
    const token = await this.creds.token();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const url = new URL(this.creds.server + path);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          ca: this.creds.ca,
          ...(this.creds.clientCert ? { cert: this.creds.clientCert.cert, key: this.creds.clientCert.key } : {}),
          rejectUnauthorized: !this.creds.insecureSkipTlsVerify,
          timeout: this.timeoutMs,
          headers: {
            accept: 'application/json',
            'user-agent': 'celery-autopilot',
            ...(token ? { authorization: `Bearer ${token.reveal()}` } : {}),
            ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e) => reject(new KubernetesUnavailableError(`Kubernetes API ${url.host} unreachable: ${e.message}`, { cause: e })));
      req.end(payload);
    });
    let parsed: unknown;
    try {
      parsed = text === '' ? {} : JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    if (status >= 200 && status < 300) return parsed;
    const s = parsed as { reason?: string; message?: string };
    const what = `${method} ${path.split('?')[0]}`;
    if (status >= 500 || status === 429) throw new KubernetesUnavailableError(`${what}: ${status} ${s.message ?? ''}`.trim());
    const hint = HINT[status] ?? 'refused';
    throw new KubernetesApiError(status, s.reason ?? String(status), `${what}: ${status} ${s.reason ?? ''}, ${hint}: ${s.message ?? ''}`);
  }
}

function seg(s: string): string {
  return encodeURIComponent(s);
}

function scalePath(ns: string, name: string): string {
  return `/apis/apps/v1/namespaces/${seg(ns)}/deployments/${seg(name)}/scale`;
}

function toScale(o: unknown): Scale {
  const s = o as { metadata?: { resourceVersion?: string }; spec?: { replicas?: number }; status?: { replicas?: number } };
  return { replicas: s.spec?.replicas ?? 0, currentReplicas: s.status?.replicas ?? 0, resourceVersion: s.metadata?.resourceVersion ?? '' };
}
