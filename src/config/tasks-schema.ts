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
    allow: z
      .array(taskGlob)
      .max(100)
      .default([])
      .describe(
        "Task-name globs that may be sent, e.g. reports.*,billing.retry_invoice. Empty: submission is off. Celery's own tasks (celery.*) only through a glob that itself starts with celery.",
      ),
    role: z.enum(ROLES).default('admin').describe('The least role that may send an allowed task.'),
    create_missing_queues: z
      .boolean()
      .default(false)
      .describe(
        'Send to queues no live worker consumes and metrics.queues does not list. Off: such a send is refused, and a missing RabbitMQ queue is never declared.',
      ),
  })
  .strict();

export const tasksSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe("Keep recent tasks from the event stream (Flower's task API, the console's task pages). Off: those answer 503."),
    max_tasks: z
      .number()
      .int()
      .min(100)
      .max(10_000_000)
      .default(50_000)
      .describe(
        'Tasks kept; the least recently updated is evicted first (about 0.7 KB each with short reprs, 1.7 KB with 1 KB args: bench/tasks-store.mjs).',
      ),
    max_args_chars: chars(1024).describe(
      "A kept task's args are cut to this many characters (Celery itself cuts args and kwargs at 1024).",
    ),
    max_kwargs_chars: chars(1024).describe("A kept task's kwargs are cut to this many characters."),
    max_result_chars: chars(1024).describe("A kept task's result is cut to this many characters."),
    max_exception_chars: chars(1024).describe("A kept task's exception is cut to this many characters."),
    max_traceback_chars: chars(8192).describe("A kept task's traceback is cut to this many characters."),
    payload_role: z
      .enum(ROLES)
      .default('operator')
      .describe('args, kwargs and results may hold personal data: the least role that sees (and searches) them.'),
    result_backend: z
      .string()
      .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL (Celery's Redis result backend)")
      .transform((s) => new Secret(s))
      .optional()
      .describe(
        "Celery's result backend, for /api/task/result, /api/task/apply and /api/task/abort: a redis:// or rediss:// URL (Celery's result_backend). Unset: those endpoints answer 503.",
      ),
    result_key_prefix: z
      .string()
      .max(128)
      .default('')
      .describe('result_backend_transport_options.global_keyprefix (Celery 5.3+): put before celery-task-meta-<id>.'),
    result_expires_seconds: z
      .number()
      .int()
      .min(1)
      .max(365 * 86_400)
      .default(86_400)
      .describe("Celery's result_expires: how long an ABORTED mark written by /api/task/abort lives."),
    persist: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Flower's --persistent: an SQLite file that keeps the task history across restarts (WAL, batched writes; an unreadable file is moved aside and rebuilt). Unset: memory only.",
      ),
    persist_interval_seconds: z
      .number()
      .min(0.1)
      .max(60)
      .default(1)
      .describe('How often changed tasks are written to persist: a crash loses at most this much.'),
    submit: submitSchema
      .prefault({})
      .describe(
        "Task submission (Flower's apply, async-apply and send-task): off unless `allow` names tasks. A publish runs code on the workers with arguments the caller chooses.",
      ),
    max_result_wait_seconds: z
      .number()
      .min(1)
      .max(3600)
      .default(60)
      .describe('Upper bound on timeout for /api/task/result (viewers: 5 s at most) and on the wait of /api/task/apply.'),
    max_result_waiters: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(200)
      .describe(
        'Result waits in progress at once, whoever asks (429 beyond): each is an open request and a key in the one MGET that reads every waited result each 100 ms.',
      ),
  })
  .strict();
