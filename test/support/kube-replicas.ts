import { randomBytes } from 'node:crypto';
import { startWorker, type CeleryWorker, type WorkerOptions } from './celery/worker.js';

/**
 * The pods of one test Deployment, each a real Celery 5.2.6 worker process consuming the queue:
 * a scale-up starts workers named `celery@<pod name>` (the hostname mapping the manifests and
 * README document: `-n celery@$(POD_NAME)`), a scale-down stops the newest ones (SIGTERM, waited
 * for), as a ReplicaSet does when every pod is ready and none has a deletion cost.
 */

export type WorkerTemplate = Omit<WorkerOptions, 'nodename'>;

export interface TestPod {
  readonly name: string;
  readonly createdAt: Date;
  readonly nodename: string;
  worker?: CeleryWorker;
  ready: boolean;
  terminating: boolean;
  /** Set when the worker could not start (its log), so a test can say why. */
  error?: string;
}

export class TestReplicaSet {
  readonly pods: TestPod[] = [];
  #want = 0;
  #work: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(
    readonly deployment: string,
    /** Undefined: bare pods, ready at once with no process (for tests of the API alone). */
    private readonly template: WorkerTemplate | undefined,
    private readonly onChange: () => void,
  ) {}

  /** Pods that count towards the Deployment (not terminating). */
  get live(): TestPod[] {
    return this.pods.filter((p) => !p.terminating);
  }

  /** Converges on `replicas` in the background, one change at a time, like a controller. */
  scaleTo(replicas: number): void {
    this.#want = replicas;
    this.#work = this.#work.then(() => this.#reconcile()).catch(() => undefined);
  }

  /** Resolves once the last requested count is reached (every live pod ready or failed). */
  async settled(): Promise<void> {
    let before: Promise<void>;
    do {
      before = this.#work;
      await before;
    } while (before !== this.#work);
  }

  async #reconcile(): Promise<void> {
    if (this.#stopped) return;
    const live = this.live;
    if (live.length < this.#want) {
      const made = Array.from({ length: this.#want - live.length }, () => this.#create());
      await Promise.all(made.map((pod) => this.#start(pod)));
    } else if (live.length > this.#want) {
      await Promise.all(this.leavingFirst(live.length - this.#want).map((pod) => this.#stop(pod)));
    }
  }

  /** The pods a scale-down by `n` removes: not ready ones, then the newest, as a ReplicaSet picks. */
  leavingFirst(n: number): TestPod[] {
    const order = [...this.live].sort(
      (a, b) => Number(a.ready) - Number(b.ready) || b.createdAt.getTime() - a.createdAt.getTime() || (b.name > a.name ? 1 : -1),
    );
    return order.slice(0, Math.max(0, n));
  }

  #create(): TestPod {
    const name = `${this.deployment}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const pod: TestPod = { name, createdAt: new Date(), nodename: `celery@${name}`, ready: false, terminating: false };
    this.pods.push(pod);
    this.onChange();
    return pod;
  }

  async #start(pod: TestPod): Promise<void> {
    if (!this.template) {
      pod.ready = true;
      this.onChange();
      return;
    }
    try {
      pod.worker = await startWorker({ ...this.template, nodename: pod.nodename });
      pod.ready = true;
    } catch (e) {
      pod.error = (e as Error).message;
    }
    this.onChange();
  }

  async #stop(pod: TestPod): Promise<void> {
    pod.terminating = true;
    this.onChange();
    await pod.worker?.stop(20_000);
    this.pods.splice(this.pods.indexOf(pod), 1);
    this.onChange();
  }

  /** Stops every worker (test cleanup). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#work;
    await Promise.all(this.pods.map((p) => p.worker?.stop(10_000)));
    this.pods.length = 0;
  }
}
