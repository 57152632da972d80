import { z } from 'zod';
import { authSchema } from './auth-schema.js';
import { kubernetesSchema } from './kubernetes-schema.js';
import { listenerKeys } from './listener-schema.js';
import { checkRemediationAgainstAuth, remediationSchema } from './remediation-schema.js';
import { tasksSchema } from './tasks-schema.js';
import { Secret } from './secret.js';

/**
 * The whole configuration, one schema: the YAML file's keys, and (flattened with "-" and "_")
 * the command-line flags and CELERY_AUTOPILOT_* environment variables. Defaults live here and
 * nowhere else. Unknown keys are errors.
 */

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

const seconds = (min: number, max: number) => z.number().min(min).max(max);

const LOG_LEVEL_ALIASES: Record<string, string> = { warning: 'warn', critical: 'fatal' };

export const configSchema = z
  .object({
    broker_url: z.string().min(1).default('amqp://guest:guest@localhost:5672//'),
    /**
     * Flower's `broker_api`: the RabbitMQ management API (http://user:pass@host:15672/api/), for
     * /api/queues/length with ready + unacknowledged messages and consumers. Unset: passive declares.
     */
    broker_api: z
      .string()
      .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
      .transform((s) => new Secret(s))
      .optional(),
    /** Celery's `broker_transport_options` that change where things live on the broker. */
    broker_transport_options: z
      .object({
        global_keyprefix: z.string().max(128).default(''),
        priority_steps: z
          .array(z.number().int().min(0).max(255))
          .min(1)
          .max(256)
          .default([0, 3, 6, 9])
          .refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]!), 'priority_steps must be strictly increasing'),
        sep: z.string().min(1).max(8).default('\x06\x16'),
        master_name: z.string().min(1).optional(),
        /** Sentinel's own AUTH (Celery's `sentinel_kwargs`), apart from the master's in the URL. */
        sentinel_username: z.string().min(1).max(256).optional(),
        sentinel_password: z
          .string()
          .min(1)
          .transform((s) => new Secret(s))
          .optional(),
      })
      .strict()
      .prefault({}),
    /**
     * TLS to a managed broker, used with amqps:// and rediss:// URLs: files (PEM), read once at
     * start; only their paths are ever shown. Unset, the system's CAs verify the broker.
     */
    broker_tls: z
      .object({
        /** CA bundle that signed the broker's certificate. */
        ca_file: z.string().min(1).optional(),
        /** Client certificate and its key, for brokers that require mutual TLS. */
        cert_file: z.string().min(1).optional(),
        key_file: z.string().min(1).optional(),
        /** Name sent as SNI and checked against the certificate (default: the URL's host). */
        server_name: z.string().min(1).max(253).optional(),
        /** false accepts any certificate: a test setup only, never a managed broker. */
        verify: z.boolean().default(true),
      })
      .strict()
      .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), 'cert_file and key_file go together')
      .prefault({}),
    listen_address: z.string().min(1).default('0.0.0.0'),
    /**
     * Behind a reverse proxy, which X-Forwarded-For hops to believe for client addresses (audit,
     * login throttling): Express's "trust proxy" — e.g. "loopback", "10.0.0.0/8", or a hop count
     * like "1". Empty: trust none, use the socket's address.
     */
    trust_proxy: z.string().max(512).default(''),
    /**
     * Serve under a sub-path behind a reverse proxy (Flower's url_prefix), e.g. "flower" or
     * "/ops/celery": every link, form action, asset and redirect carries it. Requests may arrive
     * with it (the proxy passes the path on) or without it (the proxy strips it). "" = the root.
     */
    url_prefix: z
      .string()
      .max(200)
      .regex(
        /^\/?(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*)?\/?$/,
        'a URL path such as "flower" or "/ops/celery": letters, digits and ._~- between slashes',
      )
      .transform((p) => (p.replace(/^\/+|\/+$/g, '') === '' ? '' : `/${p.replace(/^\/+|\/+$/g, '')}`))
      .default(''),
    /** Not 9808 (celery-exporter) nor 5555 (Flower), so all three can run side by side. */
    port: z.number().int().min(0).max(65535).default(9818),
    ...listenerKeys,
    /**
     * Any case (`INFO` as celery-exporter and Flower take it); their `warning` and `critical`
     * are accepted as `warn` and `fatal`.
     */
    log_level: z
      .string()
      .transform((v) => LOG_LEVEL_ALIASES[v.toLowerCase()] ?? v.toLowerCase())
      .pipe(z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']))
      .default('info'),
    events: z
      .object({
        /** Fixed event queue name (must start with "celeryev."); default: celeryev.<random uuid> per start. */
        queue_name: z
          .string()
          .regex(/^celeryev\.[A-Za-z0-9._:@-]{1,200}$/, 'must look like celeryev.<id>')
          .optional(),
        /** x-message-ttl: Celery uses 5 s, which drops events whenever a consumer falls behind. */
        queue_message_ttl_seconds: seconds(1, 86_400).default(60),
        /** x-expires: a restarted exporter with a fixed queue_name resumes its queue within this. */
        queue_expires_seconds: seconds(10, 604_800).default(60),
        prefetch: z.number().int().min(1).max(65_535).default(2000),
        /** Bodies larger than this are dropped (and counted) before parsing. */
        max_message_bytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(1024 * 1024),
        /**
         * Redis only: events read off the socket and waiting to be processed may use this much
         * memory, so a burst waits here rather than overflowing Redis's 32 MB pub/sub buffer.
         */
        max_backlog_bytes: z
          .number()
          .int()
          .min(1024 * 1024)
          .max(8 * 1024 * 1024 * 1024)
          .default(256 * 1024 * 1024),
        /**
         * At low and normal rates, read the broker's event socket in batches this far apart
         * instead of once per arriving packet: each wake-up of the process costs more than the few
         * events it would carry (src/transport/read-pacing.ts). Bursts are read at once. 0: off.
         */
        read_pacing_ms: z.number().int().min(0).max(1000).default(100),
        /** A Redis subscription with no traffic and no PING answer within this is reconnected. */
        broker_heartbeat_seconds: seconds(1, 600).default(10),
        /**
         * Send `enable_events` to the live workers every `enable_events_interval_seconds`, as
         * Flower does, so workers started without -E still send task events (and a restarted
         * worker gets them again). Off: workers without -E export no task metrics.
         */
        enable_events: z.boolean().default(true),
        enable_events_interval_seconds: seconds(1, 86_400).default(60),
      })
      .strict()
      .prefault({}),
    reconnect: z
      .object({
        initial_delay_seconds: seconds(0.05, 60).default(0.5),
        max_delay_seconds: seconds(0.1, 600).default(15),
      })
      .strict()
      .prefault({}),
    metrics: z
      .object({
        /** Prefix of the Celery metrics (celery-exporter's `--metric-prefix`). */
        prefix: z
          .string()
          .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/)
          .default('celery_'),
        /** Prefix of our own telemetry, kept apart from the translated Celery metrics. */
        self_prefix: z
          .string()
          .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/)
          .default('celery_autopilot_'),
        runtime_buckets: buckets.default(DEFAULT_BUCKETS),
        queue_wait_buckets: buckets.default(DEFAULT_QUEUE_WAIT_BUCKETS),
        static_labels: z.record(labelName, z.string().max(256)).default({}),
        default_queue_name: queueName.default('celery'),
        /** Queues reported even when no worker consumes them (a backlog with no consumer is news). */
        queues: z.array(queueName).max(1000).default([]),
        /**
         * A queue seen once (consumed by a live worker, or named by task-sent routing) stays
         * reported this long after it was last consumed or sent to, with 0 workers when its
         * consumers are gone: CeleryQueueNoWorkers needs the series. 0 = for ever.
         */
        queue_retention_seconds: seconds(0, 31_536_000).default(86_400),
        /** Queue depths are read at scrape time, with this timeout, and cached this long. */
        queue_length_timeout_seconds: seconds(0.05, 30).default(2),
        queue_length_cache_seconds: seconds(0, 600).default(5),
        /** How often workers are asked for active_queues and stats (queue discovery, process counts). */
        inspect_interval_seconds: seconds(1, 3600).default(30),
        /**
         * Liveness window. Unset: Celery's rule, last heartbeat received + 2 × the worker's freq.
         * Set: a fixed window in seconds (celery-exporter's --worker-timeout).
         */
        worker_timeout_seconds: seconds(1, 86_400).optional(),
        /**
         * The window of the autoscaling signals (celery_queue_time_to_drain_seconds,
         * celery_queue_processes_needed): rates are counted over the last this many seconds.
         */
        rate_window_seconds: z.number().int().min(5).max(3600).default(60),
        /** An offline worker's series are removed this long after it went away. */
        purge_offline_worker_seconds: seconds(0, 604_800).default(600),
      })
      .strict()
      .prefault({}),
    cardinality: z
      .object({
        /**
         * task-sent comes from clients named gen<pid>@host: "generic" folds them into one label
         * value (celery-exporter's --generic-hostname-task-sent-metric), "host" keeps the host
         * part, "full" keeps everything.
         */
        task_sent_hostname: z.enum(['generic', 'host', 'full']).default('generic'),
        /** Distinct task names tracked; later ones are reported under `overflow_value`. */
        max_task_names: z.number().int().min(1).max(1_000_000).default(1000),
        /** Distinct hostname label values (workers and clients); later ones use `overflow_value`. */
        max_hostnames: z.number().int().min(1).max(1_000_000).default(1000),
        /** Distinct queue_name label values. */
        max_queues: z.number().int().min(1).max(100_000).default(500),
        /**
         * Distinct name × hostname × queue_name combinations with their own series (each costs
         * ~20 series with the default buckets); later ones are folded into one overflow series.
         */
        max_task_series: z.number().int().min(1).max(10_000_000).default(50_000),
        overflow_value: z.string().min(1).max(64).default('other'),
        /** In-flight tasks remembered (for name/queue lookup and dedupe); least recently seen evicted. */
        max_tracked_tasks: z.number().int().min(100).max(10_000_000).default(100_000),
      })
      .strict()
      .prefault({}),
    auth: authSchema.prefault({}),
    control: z
      .object({
        /** Idle timeout while collecting replies (kombu's default is 1 s). */
        reply_timeout_ms: z.number().int().min(50).max(60_000).default(1000),
        /** Largest accepted request body for control endpoints. */
        max_body_bytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(64 * 1024),
        /** Flower's /api/workers is served from a snapshot refreshed this often (one parallel inspect round). */
        workers_refresh_seconds: seconds(1, 3600).default(30),
      })
      .strict()
      .prefault({}),
    audit: z
      .object({
        /** JSON-lines audit log: a file path (appended), "-" for stdout, or "" for none (memory only). */
        file: z.string().default('-'),
        /** Recent records kept in memory for the API. */
        keep: z.number().int().min(10).max(100_000).default(1000),
        /** ...and at most this much of them, as JSON (records carry alert labels of any size). */
        keep_bytes: z
          .number()
          .int()
          .min(64 * 1024)
          .max(1024 * 1024 * 1024)
          .default(4 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    remediation: remediationSchema.prefault({}),
    kubernetes: kubernetesSchema.prefault({}),
    tasks: tasksSchema.prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => checkRemediationAgainstAuth(c.remediation, c.auth.insecure_no_auth, ctx));

export type ParsedConfig = z.output<typeof configSchema>;
