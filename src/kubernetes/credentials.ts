import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Secret } from '../config/secret.js';

/**
 * How this service reaches a Kubernetes API server: its address, the CA that signed it, and a
 * bearer token read afresh for every request — the kubelet rotates a projected service-account
 * token (hourly by default), so one read at start would stop working.
 */
export interface KubeCredentials {
  /** https://host:port, without a trailing slash. */
  readonly server: string;
  /** PEM; undefined: the system CAs. */
  readonly ca: Buffer | undefined;
  /** Client certificate and key (PEM), for kubeconfigs that authenticate that way. */
  readonly clientCert?: { cert: Buffer; key: Buffer };
  readonly insecureSkipTlsVerify: boolean;
  /** The namespace the credentials belong to (service account) or the context names. */
  readonly namespace: string | undefined;
  /** Where they came from, for messages: "in-cluster service account" or the kubeconfig path. */
  readonly source: string;
  token(): Promise<Secret | undefined>;
}

export class KubeCredentialsError extends Error {
  override name = 'KubeCredentialsError';
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The pod's service account: KUBERNETES_SERVICE_HOST/PORT, the cluster CA, the mounted token. */
export function inClusterCredentials(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeCredentials {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KubeCredentialsError(
      'not in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT unset): set kubernetes.kubeconfig to reach the API server from outside',
    );
  }
  let ca: Buffer;
  try {
    ca = readFileSync(path.join(dir, 'ca.crt'));
  } catch (e) {
    throw new KubeCredentialsError(`cannot read the cluster CA ${path.join(dir, 'ca.crt')}: ${(e as Error).message}`, { cause: e });
  }
  let namespace: string | undefined;
  try {
    namespace = readFileSync(path.join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    namespace = undefined;
  }
  const tokenFile = path.join(dir, 'token');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca,
    insecureSkipTlsVerify: false,
    namespace,
    source: 'in-cluster service account',
    token: () => readToken(tokenFile),
  };
}

async function readToken(file: string): Promise<Secret> {
  try {
    return new Secret((await readFile(file, 'utf8')).trim());
  } catch (e) {
    throw new KubeCredentialsError(`cannot read the token ${file}: ${(e as Error).message}`, { cause: e });
  }
}

type Named<T> = Array<{ name?: string } & Record<string, T>>;
interface Kubeconfig {
  'current-context'?: string;
  contexts?: Named<{ cluster?: string; user?: string; namespace?: string }>;
  clusters?: Named<{
    server?: string;
    'certificate-authority'?: string;
    'certificate-authority-data'?: string;
    'insecure-skip-tls-verify'?: boolean;
  }>;
  users?: Named<{
    token?: string;
    tokenFile?: string;
    'client-certificate'?: string;
    'client-certificate-data'?: string;
    'client-key'?: string;
    'client-key-data'?: string;
    exec?: unknown;
    'auth-provider'?: unknown;
  }>;
}

/**
 * A kubeconfig file's context (the current one unless `context` names another): server, CA
 * (file, relative to the kubeconfig, or inline data), and a token (inline, or tokenFile re-read
 * on every request) or a client certificate. exec and auth-provider plugins run programs or
 * refresh tokens with cloud SDKs this service does not carry: refused with a clear error.
 */
export function kubeconfigCredentials(file: string, context?: string): KubeCredentials {
  let doc: Kubeconfig;
  try {
    doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as Kubeconfig;
  } catch (e) {
    throw new KubeCredentialsError(`kubernetes.kubeconfig ${file}: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const fail = (why: string) => new KubeCredentialsError(`kubernetes.kubeconfig ${file}: ${why}`);
  const pick = <T>(list: Named<T> | undefined, name: string | undefined, what: string): T => {
    const entry = list?.find((e) => e.name === name)?.[what];
    if (!entry) throw fail(`no ${what} named "${name ?? ''}"`);
    return entry;
  };
  const ctxName = context ?? doc['current-context'];
  if (!ctxName) throw fail('no current-context (set kubernetes.context)');
  const ctx = pick(doc.contexts, ctxName, 'context');
  const cluster = pick(doc.clusters, ctx.cluster, 'cluster');
  const user = pick(doc.users, ctx.user, 'user');
  if (!cluster.server?.startsWith('https://')) throw fail(`cluster ${ctx.cluster}: server must be an https:// URL`);
  if (user.exec || user['auth-provider'])
    throw fail(`user ${ctx.user}: exec and auth-provider plugins are not supported; use a token, tokenFile or client certificate`);
  const dir = path.dirname(file);
  const bytes = (data: string | undefined, ref: string | undefined, what: string): Buffer | undefined => {
    if (data) return Buffer.from(data, 'base64');
    if (!ref) return undefined;
    try {
      return readFileSync(path.resolve(dir, ref));
    } catch (e) {
      throw fail(`${what} ${ref}: ${(e as Error).message}`);
    }
  };
  const cert = bytes(user['client-certificate-data'], user['client-certificate'], 'client-certificate');
  const key = bytes(user['client-key-data'], user['client-key'], 'client-key');
  if ((cert === undefined) !== (key === undefined))
    throw fail(`user ${ctx.user}: a client certificate needs its key, and the other way round`);
  const inline = user.token ? new Secret(user.token) : undefined;
  const tokenFile = user.tokenFile ? path.resolve(dir, user.tokenFile) : undefined;
  if (!inline && !tokenFile && !cert) throw fail(`user ${ctx.user}: no token, tokenFile or client certificate`);
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ca: bytes(cluster['certificate-authority-data'], cluster['certificate-authority'], 'certificate-authority'),
    ...(cert && key ? { clientCert: { cert, key } } : {}),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    namespace: ctx.namespace,
    source: file,
    token: async () => (tokenFile ? readToken(tokenFile) : inline),
  };
}

/** kubernetes.kubeconfig when set, else the pod's service account. Throws KubeCredentialsError. */
export function kubeCredentials(config: { kubeconfig?: string | undefined; context?: string | undefined }): KubeCredentials {
  return config.kubeconfig ? kubeconfigCredentials(config.kubeconfig, config.context) : inClusterCredentials();
}
