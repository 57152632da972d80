import { READY_STATES, type ResultBackend, type TaskMeta } from './result-backend.js';

/** Every waiter is taken (tasks.max_result_waiters): 429, retry later. */
export class TooManyWaitersError extends Error {}

interface Waiter {
  readonly until: number;
  resolve(meta: TaskMeta | null): void;
  reject(e: unknown): void;
}

export interface ResultWaitersOptions {
  /** Waits in progress at most, whoever asks (tasks.max_result_waiters). */
  readonly maxWaiters: number;
  /** How often the waited results are read: one MGET for all of them. */
  readonly pollMs: number;
  readonly now?: () => number;
}

/** Keys per MGET: a long command would hold Redis (single-threaded) for everyone else. */
const KEYS_PER_READ = 500;

/**
 * Requests that wait for a task's result (/api/task/result?timeout=, /api/task/apply). Each used
 * to poll Redis on its own every 100 ms: 500 waits made ~4 800 commands/s on the backend, for ids
 * anyone could name. Here every waited id is read in one MGET per period, shared by all the
 * requests waiting for it, and the number of waits is bounded; a request whose client has gone
 * stops waiting at once.
 */
export class ResultWaiters {
  readonly #byId = new Map<string, Set<Waiter>>();
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  #reading = false;
  readonly #now: () => number;

  constructor(
    private readonly backend: Pick<ResultBackend, 'getMany'>,
    private readonly options: ResultWaitersOptions,
  ) {
    this.#now = options.now ?? Date.now;
  }

  /** Waits in progress. */
  get size(): number {
    return this.#count;
  }

  /** Throws TooManyWaitersError when no wait could start now (checked before publishing for apply). */
  ensureRoom(): void {
    if (this.#count >= this.options.maxWaiters)
      throw new TooManyWaitersError(`${this.options.maxWaiters} result waits are in progress (tasks.max_result_waiters): retry later`);
  }

  /** The task's meta once it is ready, or the latest (null: PENDING) when `timeoutMs` has passed or `signal` aborts. */
  wait(taskId: string, timeoutMs: number, signal?: AbortSignal): Promise<TaskMeta | null> {
    this.ensureRoom();
    return new Promise((resolve, reject) => {
      let waiters = this.#byId.get(taskId);
      if (!waiters) this.#byId.set(taskId, (waiters = new Set()));
      const set = waiters;
      const waiter: Waiter = {
        until: this.#now() + timeoutMs,
        resolve: (meta) => done(() => resolve(meta)),
        reject: (e) => done(() => reject(e)),
      };
      const gone = () => waiter.resolve(null);
      const done = (settle: () => void) => {
        if (!set.delete(waiter)) return;
        this.#count--;
        if (set.size === 0 && this.#byId.get(taskId) === set) this.#byId.delete(taskId);
        signal?.removeEventListener('abort', gone);
        settle();
      };
      set.add(waiter);
      this.#count++;
      signal?.addEventListener('abort', gone, { once: true });
      // The first read comes at once: a task that is already done is answered without a period's wait.
      this.#schedule(0);
    });
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#reading || this.#count === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // #read settles every wait itself (a failed read rejects the waits it covered).
      this.#read().catch(() => undefined);
    }, delayMs);
    this.#timer.unref();
  }

  async #read(): Promise<void> {
    this.#reading = true;
    try {
      const ids = [...this.#byId.keys()];
      for (let i = 0; i < ids.length; i += KEYS_PER_READ) {
        const chunk = ids.slice(i, i + KEYS_PER_READ);
        let metas: Awaited<ReturnType<ResultBackend['getMany']>>;
        try {
          metas = await this.backend.getMany(chunk);
        } catch (e) {
          // The backend is down: those waits end as a single read would have (503).
          for (const id of chunk) for (const w of [...(this.#byId.get(id) ?? [])]) w.reject(e);
          continue;
        }
        const now = this.#now();
        chunk.forEach((id, n) => {
          const meta = metas[n];
          for (const w of [...(this.#byId.get(id) ?? [])]) {
            if (meta instanceof Error) w.reject(meta);
            else if ((meta && READY_STATES.has(meta.status)) || now >= w.until) w.resolve(meta ?? null);
          }
        });
      }
    } finally {
      this.#reading = false;
      this.#schedule(this.options.pollMs);
    }
  }
}
