import { z } from 'zod';

/** The `metrics:` and `cardinality:` sections: what the Prometheus exposition looks like, and its bounds. */

// prometheus/client_python's default buckets, which celery-exporter uses for task runtime.
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
// celery-exporter's DEFAULT_QUEUE_WAIT_BUCKETS: waits run from seconds to hours. 10 stays a
// boundary because the shipped CeleryQueueWaitHigh rule reads le="10".
export const DEFAULT_QUEUE_WAIT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

const buckets = z
  .array(z.number().positive().finite())
  .min(1)
  .max(64)
  .refine((b) => b.every((v, i) => i === 0 || v > b[i - 1]!), 'buckets must be strictly increasing');

const labelName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'not a valid Prometheus label name');
const queueName = z
  .string()
  .min(1)
  .max(255)
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  .regex(/^[^\s\x00-\x1f]+$/, 'queue names may not contain spaces or control characters');

export const seconds = (min: number, max: number) => z.number().min(min).max(max);

export const metricsSchema = z
  .object({
    prefix: z
      .string()
      .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/)
      .default('celery_')
      .describe("Prefix of the Celery metrics (celery-exporter's --metric-prefix)."),
    self_prefix: z
      .string()
      .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/)
      .default('celery_autopilot_')
      .describe("Prefix of this service's own telemetry, kept apart from the Celery metrics."),
    runtime_buckets: buckets
      .default(DEFAULT_BUCKETS)
      .describe("Histogram buckets of task runtime, in seconds (default: prometheus_client's)."),
    queue_wait_buckets: buckets
      .default(DEFAULT_QUEUE_WAIT_BUCKETS)
      .describe(
        'Histogram buckets of queue wait, in seconds (celery-exporter\'s). Keep 10: the shipped CeleryQueueWaitHigh alert reads le="10".',
      ),
    static_labels: z.record(labelName, z.string().max(256)).default({}).describe('Labels added to every series, e.g. env=prod,team=core.'),
    default_queue_name: queueName
      .default('celery')
      .describe('queue_name when nothing else tells (no task-sent routing and no known consumer).'),
    queues: z
      .array(queueName)
      .max(1000)
      .default([])
      .describe('Queues reported even when no worker consumes them (a backlog with no consumer is news).'),
    queue_retention_seconds: seconds(0, 31_536_000)
      .default(86_400)
      .describe(
        'A queue seen once (consumed by a live worker, or named by task-sent routing) stays reported this long after it was last consumed or sent to, with 0 workers when its consumers are gone: CeleryQueueNoWorkers needs the series. 0: for ever.',
      ),
    queue_length_timeout_seconds: seconds(0.05, 30).default(2).describe('Queue depths are read at scrape time, with this timeout.'),
    queue_length_cache_seconds: seconds(0, 600).default(5).describe('...and cached this long.'),
    inspect_interval_seconds: seconds(1, 3600)
      .default(30)
      .describe(
        'How often live workers are asked for active_queues and stats (queue discovery, process counts, and what /api/workers shows of them); new workers within a second.',
      ),
    worker_timeout_seconds: seconds(1, 86_400)
      .optional()
      .describe(
        "Liveness window. Unset: Celery's rule, last heartbeat received + 2 × the worker's frequency. Set: a fixed window (celery-exporter's --worker-timeout).",
      ),
    rate_window_seconds: z
      .number()
      .int()
      .min(5)
      .max(3600)
      .default(60)
      .describe(
        'Window of the autoscaling signals (celery_queue_time_to_drain_seconds, celery_queue_processes_needed): rates are counted over the last this many seconds.',
      ),
    purge_offline_worker_seconds: seconds(0, 604_800)
      .default(600)
      .describe("An offline worker's series are removed this long after it went away."),
  })
  .strict()
  .prefault({})
  .describe('The Prometheus exposition: names, buckets, labels, and how queues and workers are reported.');

export const cardinalitySchema = z
  .object({
    task_sent_hostname: z
      .enum(['generic', 'host', 'full'])
      .default('generic')
      .describe(
        "task-sent comes from clients named gen<pid>@host: generic folds them into one label value (celery-exporter's --generic-hostname-task-sent-metric), host keeps the host part, full keeps everything.",
      ),
    max_task_names: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(1000)
      .describe('Distinct task names tracked; later ones are reported under overflow_value.'),
    max_hostnames: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(1000)
      .describe('Distinct hostname label values (workers and clients); later ones use overflow_value.'),
    max_queues: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(500)
      .describe('Distinct queue_name label values; later ones use overflow_value.'),
    max_task_series: z
      .number()
      .int()
      .min(1)
      .max(10_000_000)
      .default(50_000)
      .describe(
        'Distinct name × hostname × queue_name combinations with their own series (each ≈ 25 series with the default buckets); later ones are folded into one overflow series.',
      ),
    overflow_value: z.string().min(1).max(64).default('other').describe('The label value that stands for everything past a cap.'),
    max_tracked_tasks: z
      .number()
      .int()
      .min(100)
      .max(10_000_000)
      .default(100_000)
      .describe('In-flight tasks remembered (for name and queue lookup and dedupe); the least recently seen are evicted.'),
  })
  .strict()
  .prefault({})
  .describe('Bounds on label values and series, so a flood of task names or hosts cannot exhaust memory or Prometheus.');
