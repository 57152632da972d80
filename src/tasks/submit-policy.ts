import { globMatch } from '../glob.js';

/**
 * Who may execute what through task submission (tasks.submit): which task names may be sent, to
 * which queues, and which options are refused. Publishing a task runs its code on the workers
 * with arguments the caller chooses, so nothing is sendable until the configuration says so.
 */
export interface SubmitPolicyOptions {
  /** tasks.submit.allow: task-name globs; empty = submission off. */
  readonly allow: readonly string[];
  /** tasks.submit.create_missing_queues: any valid queue name may be sent to. */
  readonly createMissingQueues: boolean;
  /** metrics.queues: queues the configuration names, consumed or not. */
  readonly listedQueues: readonly string[];
}

/** A send the policy refuses, with the HTTP status that says why (403 not allowed, 409 id in use, 400 queue). */
export class SubmitRefusedError extends Error {
  constructor(
    readonly status: 400 | 403 | 409,
    message: string,
  ) {
    super(message);
  }
}

/** Celery's own tasks: registered on every worker, never listed by `registered`. */
const CELERY_BUILTIN = 'celery.';

export class SubmitPolicy {
  constructor(
    private readonly options: SubmitPolicyOptions,
    /** Does a live worker consume this queue now? */
    private readonly consumed: (queue: string) => boolean,
  ) {}

  get enabled(): boolean {
    return this.options.allow.length > 0;
  }

  /** Throws unless `name` matches a glob of tasks.submit.allow; Celery's built-ins only through a `celery.` glob. */
  checkTask(name: string): void {
    if (!this.enabled) throw new SubmitRefusedError(403, 'task submission is off: tasks.submit.allow lists no task');
    const builtin = name.startsWith(CELERY_BUILTIN);
    const allowed = this.options.allow.some((glob) => (!builtin || glob.startsWith(CELERY_BUILTIN)) && globMatch(glob, name));
    if (!allowed)
      throw new SubmitRefusedError(
        403,
        builtin
          ? `'${name}' is one of Celery's own tasks: only a tasks.submit.allow glob starting with 'celery.' allows it`
          : `'${name}' is not allowed by tasks.submit.allow`,
      );
  }

  /** checkTask as a yes or no, for pages deciding whether to offer a send. */
  allows(name: string): boolean {
    try {
      this.checkTask(name);
      return true;
    } catch {
      return false;
    }
  }

  /** Throws unless a live worker consumes `queue`, metrics.queues lists it, or creating queues is allowed. */
  checkQueue(queue: string): void {
    if (this.options.createMissingQueues || this.options.listedQueues.includes(queue) || this.consumed(queue)) return;
    throw new SubmitRefusedError(
      400,
      `no live worker consumes queue '${queue}' and metrics.queues does not list it (tasks.submit.create_missing_queues allows any queue)`,
    );
  }

  /** Whether a missing RabbitMQ queue may be declared on send. */
  get createsQueues(): boolean {
    return this.options.createMissingQueues;
  }

  /** Celery's built-ins are on every worker but `registered` hides them: no "nobody registered it" warning for them. */
  static isBuiltin(name: string): boolean {
    return name.startsWith(CELERY_BUILTIN);
  }
}
