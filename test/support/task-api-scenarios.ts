import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { startWorker, type CeleryWorker, type WorkerOptions } from './celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import { isolatedBroker, type BrokerUnderTest } from './exporter-scenarios.js';

export type Caller = 'viewer' | 'operator' | 'admin' | 'none';

export interface TaskApiAnswer {
  status: number;
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of many shapes, checked with toMatchObject
  body: any;
  text: string;
}

/**
 * One broker, one service with a viewer and an operator token, and real Celery workers started on
 * demand: what the task API suites share. Everything is isolated (own vhost / key prefix).
 */
export class TaskApiRig {
  broker!: BrokerUnderTest;
  service!: RunningExporter;
  readonly workers: CeleryWorker[] = [];
  readonly id = randomBytes(3).toString('hex');
  readonly #tokens: Record<Exclude<Caller, 'none'>, string> = {
    viewer: `v-${randomUUID()}`,
    operator: `o-${randomUUID()}`,
    admin: `a-${randomUUID()}`,
  };
  #dir = '';
  #args: string[] = [];

  constructor(
    readonly kind: 'amqp' | 'redis',
    readonly suite: string,
  ) {}

  node(role: string): string {
    return `${this.suite}${this.id}-${role}@cap`;
  }

  async start(
    extraConfig: Record<string, unknown> | ((rig: TaskApiRig) => Record<string, unknown>) = {},
    extraArgs: string[] = [],
  ): Promise<void> {
    this.broker = await isolatedBroker(this.kind, this.suite);
    this.#dir = mkdtempSync(path.join(tmpdir(), `${this.suite}-`));
    if (typeof extraConfig === 'function') extraConfig = extraConfig(this);
    const configFile = path.join(this.#dir, 'autopilot.yaml');
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    writeFileSync(
      configFile,
      toYaml({
        auth: {
          tokens: [
            { name: 'viewer', sha256: sha(this.#tokens.viewer), role: 'viewer' },
            { name: 'operator', sha256: sha(this.#tokens.operator), role: 'operator' },
            { name: 'admin', sha256: sha(this.#tokens.admin), role: 'admin' },
          ],
        },
        audit: { file: '' },
        ...extraConfig,
      }),
    );
    this.#args = [...this.broker.exporterArgs, '--config', configFile, '--metrics-inspect-interval-seconds', '3600', ...extraArgs];
    await this.#startService();
  }

  /** A file in the rig's own directory (removed with it). */
  file(name: string): string {
    return path.join(this.#dir, name);
  }

  /** Stops the service and starts a new one with the same configuration (a restart); `whileDown` runs in between. */
  async restart(whileDown?: () => Promise<void>): Promise<void> {
    await this.service.stop();
    await whileDown?.();
    await this.#startService();
  }

  async #startService(): Promise<void> {
    this.service = await startExporter(this.#args);
    await waitFor('service ready', async () => ((await this.service.get('/-/ready')).status === 200 ? true : undefined), 20_000, 100);
  }

  async worker(role: string, options: Partial<WorkerOptions> = {}): Promise<CeleryWorker> {
    const w = await startWorker({
      brokerUrl: this.broker.celery.brokerUrl,
      transportOptions: this.broker.celery.transportOptions,
      nodename: this.node(role),
      ...options,
    });
    this.workers.push(w);
    return w;
  }

  async call(method: 'GET' | 'POST', urlPath: string, as: Caller = 'operator', json?: unknown): Promise<TaskApiAnswer> {
    const headers: Record<string, string> = {};
    if (as !== 'none') headers.Authorization = `Bearer ${this.#tokens[as]}`;
    let body: string | undefined;
    if (json !== undefined) {
      body = typeof json === 'string' ? json : JSON.stringify(json);
      headers['Content-Type'] = 'application/json';
    }
    // Bounded: a request that hangs fails the test, not the suite's timeout.
    const res = await fetch(`${this.service.url}${urlPath}`, { method, headers, body, signal: AbortSignal.timeout(30_000) });
    return answer(res);
  }

  get(urlPath: string, as: Caller = 'operator'): Promise<TaskApiAnswer> {
    return this.call('GET', urlPath, as);
  }

  /** The Authorization header of a caller, for requests built by hand. */
  authorization(as: Exclude<Caller, 'none'>): string {
    return `Bearer ${this.#tokens[as]}`;
  }

  /** Waits until the store shows the task in `state`; the error says what it held instead. */
  async taskInState(id: string, state: string, timeoutMs = 40_000): Promise<void> {
    const store = this.service.service.taskStore!;
    await waitFor(
      `task ${id} in ${state}`,
      () => (store.get(id)?.state === state ? true : undefined),
      timeoutMs,
      200,
      () => JSON.stringify(store.get(id) ?? null),
    );
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.workers.map((w) => w.stop()));
    await this.service?.stop();
    await this.broker?.cleanup();
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** A response read whole: JSON parsed when it is JSON, the text kept either way. */
export async function answer(res: Response): Promise<TaskApiAnswer> {
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: parsed, text };
}
