import { z } from 'zod';
import { ROLES } from '../auth/roles.js';
import { Secret } from './secret.js';

/**
 * The `tasks:` section: the store of recent tasks behind Flower's task API (how many, how much
 * of each), who may read task payloads, and who may send which tasks.
 */
const chars = (fallback: number) =>
  z
    .number()
    .int()
    .min(16)
    .max(1024 * 1024)
    .default(fallback);

/** A task-name glob: the characters of a dotted Celery task name, plus `*` and `?`. */
const taskGlob = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.*?]+$/, 'must be a task-name glob (letters, digits, _ . and the wildcards * ?)');

/**
 * Task submission (Flower's apply, async-apply and send-task): off unless `allow` names tasks.
 * A publish runs code on the workers with arguments the caller chooses, so which tasks may be
 * sent, by whom, and to which queues is the operator of the service's decision, not the API's.
 */
const submitSchema = z
  .object({
    /**
     * Task-name globs that may be sent, e.g. [reports.*, billing.retry_invoice]. Empty: submission
     * is off. Celery's own tasks (celery.*, such as celery.accumulate or celery.chord_unlock) only
     * through a glob that itself starts with `celery.`; `*` alone does not reach them.
     */
    allow: z.array(taskGlob).max(100).default([]),
    /** The least role that may send an allowed task. */
    role: z.enum(ROLES).default('admin'),
    /**
     * Send to queues no live worker consumes and metrics.queues does not list. Off: such a send is
     * refused, and a missing RabbitMQ queue is never declared (each declaration is a durable queue
     * and exchange that outlive the request).
     */
    create_missing_queues: z.boolean().default(false),
  })
  .strict();

export const tasksSchema = z
  .object({
    /** Keep recent tasks from the event stream (Flower's task API). Off: those endpoints answer 503. */
    enabled: z.boolean().default(true),
    /**
     * Tasks kept (Flower's max_tasks, default 100 000); the least recently updated is evicted
     * first. bench/tasks-store.mjs measured about 0.7 KB per kept task with short reprs and
     * 1.7 KB with 1 KB args, so the default stays under ~90 MB even with Celery's longest reprs.
     */
    max_tasks: z.number().int().min(100).max(10_000_000).default(50_000),
    /** Each kept field is cut to this many characters (Celery itself cuts args/kwargs at 1024). */
    max_args_chars: chars(1024),
    max_kwargs_chars: chars(1024),
    max_result_chars: chars(1024),
    max_exception_chars: chars(1024),
    max_traceback_chars: chars(8192),
    /** args, kwargs and results may hold personal data: the least role that sees (and searches) them. */
    payload_role: z.enum(ROLES).default('operator'),
    /**
     * Celery's result backend, for /api/task/result, /api/task/apply and /api/task/abort: a
     * redis:// or rediss:// URL (Celery's `result_backend`). Unset: those endpoints answer 503.
     */
    result_backend: z
      .string()
      .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL (Celery's Redis result backend)")
      .transform((s) => new Secret(s))
      .optional(),
    /** `result_backend_transport_options.global_keyprefix` (Celery 5.3+): put before `celery-task-meta-<id>`. */
    result_key_prefix: z.string().max(128).default(''),
    /** Celery's `result_expires`: how long an ABORTED mark written by /api/task/abort lives. */
    result_expires_seconds: z
      .number()
      .int()
      .min(1)
      .max(365 * 86_400)
      .default(86_400),
    /**
     * Flower's --persistent: an SQLite file that keeps the task history across restarts (WAL,
     * batched writes; unreadable files are moved aside and rebuilt). Unset: memory only.
     */
    persist: z.string().min(1).optional(),
    /** How often changed tasks are written to `persist`: a crash loses at most this much. */
    persist_interval_seconds: z.number().min(0.1).max(60).default(1),
    submit: submitSchema.prefault({}),
    /** Upper bound on `timeout` for /api/task/result (viewers: 5 s at most) and on the wait of /api/task/apply. */
    max_result_wait_seconds: z.number().min(1).max(3600).default(60),
    /**
     * Result waits in progress at once, whoever asks (429 beyond): each is an open request and a
     * key in the one MGET that reads every waited result each 100 ms.
     */
    max_result_waiters: z.number().int().min(1).max(100_000).default(200),
  })
  .strict();
