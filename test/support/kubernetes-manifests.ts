import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './prometheus.js';

const run = promisify(execFile);

/** Debian's kubectl (package kubernetes-client), with kustomize built in. */
export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** `kubectl kustomize <dir>` (relative to the repository), parsed into objects. */
export async function kustomize(dir: string): Promise<KubeObject[]> {
  const { stdout } = await run(KUBECTL, ['kustomize', dir], { cwd: REPO_ROOT, maxBuffer: 32 * 1024 * 1024 }).catch((e: unknown) => {
    const err = e as { stderr?: string; message: string };
    throw new Error(`kubectl kustomize ${dir} failed: ${err.stderr ?? err.message}`);
  });
  return parseAllDocuments(stdout).map((d) => d.toJS() as KubeObject);
}

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;

/**
 * The schema model of an object's apiVersion and kind: kubernetes-models for the built-in API
 * groups, @kubernetes-models/prometheus-operator and @kubernetes-models/keda for theirs. An
 * object of any other kind is an error: nothing ships unvalidated.
 */
export async function modelOf(o: Pick<KubeObject, 'apiVersion' | 'kind'>): Promise<ModelClass> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  let specifier: string;
  if (group === '') specifier = `kubernetes-models/${version}/${o.kind}`;
  else if (group === 'monitoring.coreos.com') specifier = `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}`;
  else if (group === 'keda.sh') specifier = `@kubernetes-models/keda/${group}/${version}/${o.kind}`;
  else specifier = `kubernetes-models/${group}/${version}/${o.kind}`;
  const mod = (await import(specifier)) as Record<string, ModelClass>;
  const model = mod[o.kind];
  if (!model) throw new Error(`${specifier} exports no ${o.kind}`);
  return model;
}

/** Validates against the schema; throws with the object's kind and name and what is wrong. */
export async function validateObject(o: KubeObject): Promise<void> {
  const Model = await modelOf(o);
  try {
    new Model(o).validate();
  } catch (e) {
    throw new Error(`${o.kind}/${o.metadata?.name}: ${(e as Error).message}`, { cause: e });
  }
}
