import { z } from 'zod';
import { authSchema } from './auth-schema.js';
import { kubernetesSchema } from './kubernetes-schema.js';
import { listenerKeys } from './listener-schema.js';
import { cardinalitySchema, metricsSchema, seconds } from './metrics-schema.js';
import { checkRemediationAgainstAuth, remediationSchema } from './remediation-schema.js';
import { tasksSchema } from './tasks-schema.js';
import { Secret } from './secret.js';

/**
 * The whole configuration, one schema: the YAML file's keys, and (flattened with "-" and "_")
 * the command-line flags and CELERY_AUTOPILOT_* environment variables. Defaults live here and
 * nowhere else. Unknown keys are errors.
 */

const LOG_LEVEL_ALIASES: Record<string, string> = { warning: 'warn', critical: 'fatal' };

export const configSchema = z
  .object({
    broker_url: z
      .string()
      .min(1)
      .default('amqp://guest:guest@localhost:5672//')
      .describe(
        'The broker: amqp://, amqps://, redis://, rediss://, or sentinel://h1:26379;sentinel://h2:26379 (with broker_transport_options.master_name). A password in it is a secret, never printed.',
      ),
    broker_api: z
      .string()
      .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
      .transform((s) => new Secret(s))
      .optional()
      .describe(
        "Flower's `broker_api`: the RabbitMQ management API (http://user:pass@host:15672/api/), for ready and unacknowledged messages and consumers per queue. Unset: queue depths come from passive declares.",
      ),
    broker_transport_options: z
      .object({
        global_keyprefix: z.string().max(128).default('').describe("Prefix of every Redis key and channel (kombu's global_keyprefix)."),
        priority_steps: z
          .array(z.number().int().min(0).max(255))
          .min(1)
          .max(256)
          .default([0, 3, 6, 9])
          .refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]!), 'priority_steps must be strictly increasing')
          .describe("Redis priority steps: one list per step and queue, as the workers' kombu has them."),
        sep: z.string().min(1).max(8).default('\x06\x16').describe('Separator between a queue name and its priority in Redis list names.'),
        master_name: z.string().min(1).optional().describe("Redis Sentinel: the master's name (needed with a sentinel:// URL)."),
        sentinel_username: z
          .string()
          .min(1)
          .max(256)
          .optional()
          .describe("Redis Sentinel's own AUTH / ACL user (Celery's `sentinel_kwargs`), apart from the master's credentials in the URL."),
        sentinel_password: z
          .string()
          .min(1)
          .transform((s) => new Secret(s))
          .optional()
          .describe("Redis Sentinel's own password (a secret: prefer the environment variable to a flag)."),
      })
      .strict()
      .prefault({})
      .describe(
        "Celery's `broker_transport_options` that change where things live on the broker: they must match the workers' (the Redis key layout).",
      ),
    broker_tls: z
      .object({
        ca_file: z.string().min(1).optional().describe("CA bundle that signed the broker's certificate."),
        cert_file: z.string().min(1).optional().describe('Client certificate, for brokers that require mutual TLS (with key_file).'),
        key_file: z.string().min(1).optional().describe("The client certificate's private key."),
        server_name: z
          .string()
          .min(1)
          .max(253)
          .optional()
          .describe(
            "Name sent as SNI and checked against the broker's certificate (default: the URL's host); a result backend or state Redis on another host is checked against its own host.",
          ),
        verify: z.boolean().default(true).describe('false accepts any certificate: a test setup only, never a managed broker.'),
      })
      .strict()
      .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), 'cert_file and key_file go together')
      .prefault({})
      .describe(
        "TLS to a managed broker, used with amqps:// and rediss:// URLs: PEM files read once at start (only their paths are ever shown). Unset, the system's CAs verify the broker.",
      ),
    listen_address: z.string().min(1).default('0.0.0.0').describe('Address the HTTP server listens on.'),
    trust_proxy: z
      .string()
      .max(512)
      .default('')
      .describe(
        'Behind a reverse proxy, which X-Forwarded-For hops to believe for client addresses (audit, login throttling): Express\'s "trust proxy", e.g. loopback, 10.0.0.0/8, or a hop count like 1. Empty: trust none, use the socket\'s address.',
      ),
    url_prefix: z
      .string()
      .max(200)
      .regex(
        /^\/?(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*)?\/?$/,
        'a URL path such as "flower" or "/ops/celery": letters, digits and ._~- between slashes',
      )
      .transform((p) => (p.replace(/^\/+|\/+$/g, '') === '' ? '' : `/${p.replace(/^\/+|\/+$/g, '')}`))
      .default('')
      .describe(
        "Serve under a sub-path behind a reverse proxy (Flower's url_prefix), e.g. flower or /ops/celery: every link, form action, asset and redirect carries it. Requests may arrive with it (the proxy passes the path on) or without it (the proxy strips it). Empty: the root.",
      ),
    port: z
      .number()
      .int()
      .min(0)
      .max(65535)
      .default(9818)
      .describe('HTTP port. Not 9808 (celery-exporter) nor 5555 (Flower), so all three can run side by side during a migration.'),
    ...listenerKeys,
    log_level: z
      .string()
      .transform((v) => LOG_LEVEL_ALIASES[v.toLowerCase()] ?? v.toLowerCase())
      .pipe(z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']))
      .default('info')
      .describe(
        'trace, debug, info, warn, error or fatal; JSON lines on stderr. Any case (INFO, as celery-exporter and Flower take it); warning and critical are read as warn and fatal.',
      ),
    events: z
      .object({
        queue_name: z
          .string()
          .regex(/^celeryev\.[A-Za-z0-9._:@-]{1,200}$/, 'must look like celeryev.<id>')
          .optional()
          .describe(
            'A fixed event queue name (celeryev.<id>); with a long queue_expires_seconds a restarted exporter resumes its queue and loses nothing (RabbitMQ). Default: celeryev.<random uuid> per start.',
          ),
        queue_message_ttl_seconds: seconds(1, 86_400)
          .default(60)
          .describe('x-message-ttl of the event queue: Celery uses 5 s, which drops events whenever a consumer falls behind.'),
        queue_expires_seconds: seconds(10, 604_800)
          .default(60)
          .describe('x-expires of the event queue: a restarted exporter with a fixed queue_name resumes its queue within this.'),
        prefetch: z.number().int().min(1).max(65_535).default(2000).describe('RabbitMQ prefetch for the event queue; acks are batched.'),
        max_message_bytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(1024 * 1024)
          .describe('Event messages larger than this are dropped (and counted, reason="oversize") before parsing.'),
        max_backlog_bytes: z
          .number()
          .int()
          .min(1024 * 1024)
          .max(8 * 1024 * 1024 * 1024)
          .default(256 * 1024 * 1024)
          .describe(
            "Redis only: events read off the socket and waiting to be processed may use this much memory, so a burst waits here rather than overflowing Redis's 32 MB pub/sub buffer.",
          ),
        read_pacing_ms: z
          .number()
          .int()
          .min(0)
          .max(1000)
          .default(100)
          .describe(
            'At low and normal rates, read the event socket in batches this far apart instead of once per packet (each wake-up costs more than the few events it carries); bursts are read at once. 0: off.',
          ),
        broker_heartbeat_seconds: seconds(1, 600)
          .default(10)
          .describe('AMQP heartbeat / Redis PING interval: a half-open connection is found within about two of these.'),
        enable_events: z
          .boolean()
          .default(true)
          .describe(
            'Send enable_events to the live workers, as Flower does, so workers started without -E still send task events (and a restarted worker gets them again). Off: workers without -E export no task metrics.',
          ),
        enable_events_interval_seconds: seconds(1, 86_400)
          .default(60)
          .describe('How often enable_events is sent (a new worker gets it within a second of its first heartbeat).'),
      })
      .strict()
      .prefault({})
      .describe("The broker's event stream the metrics and task history are read from."),
    reconnect: z
      .object({
        initial_delay_seconds: seconds(0.05, 60).default(0.5).describe('First delay before reconnecting to the broker.'),
        max_delay_seconds: seconds(0.1, 600).default(15).describe('Longest delay between reconnection attempts.'),
      })
      .strict()
      .prefault({})
      .describe('Reconnecting to the broker: capped exponential backoff with jitter, for ever.'),
    metrics: metricsSchema,
    cardinality: cardinalitySchema,
    auth: authSchema
      .prefault({})
      .describe(
        'Who may do what: users, API tokens, GitHub, OpenID Connect and browser sessions. With nothing configured the console and the control API stay closed (fail closed).',
      ),
    control: z
      .object({
        reply_timeout_ms: z
          .number()
          .int()
          .min(50)
          .max(60_000)
          .default(1000)
          .describe("Idle timeout while collecting worker replies (kombu's default is 1 s)."),
        max_body_bytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(64 * 1024)
          .describe('Largest accepted request body for control endpoints.'),
        workers_refresh_seconds: seconds(1, 3600)
          .default(30)
          .describe(
            "Flower's /api/workers is served from a snapshot whose other inspect replies (registered, active, reserved, scheduled, revoked, conf) are refreshed this often in one parallel round; stats and active_queues follow metrics.inspect_interval_seconds.",
          ),
      })
      .strict()
      .prefault({})
      .describe("Worker remote control (Celery's pidbox): reply collection and request bounds."),
    audit: z
      .object({
        file: z
          .string()
          .default('-')
          .describe('JSON-lines audit log: a file path (appended), - for stdout, or empty for none (memory only).'),
        keep: z.number().int().min(10).max(100_000).default(1000).describe('Recent records kept in memory for the API and the console.'),
        keep_bytes: z
          .number()
          .int()
          .min(64 * 1024)
          .max(1024 * 1024 * 1024)
          .default(4 * 1024 * 1024)
          .describe('...and at most this much of them, as JSON (records carry alert labels of any size); the file keeps everything.'),
      })
      .strict()
      .prefault({})
      .describe('The audit log of control commands, remediation decisions and admin changes.'),
    remediation: remediationSchema
      .prefault({})
      .describe(
        'Alertmanager-driven remediation: whether webhooks may act at all, the rules file, global safeguards, how the webhook authenticates and where replicas share their state.',
      ),
    kubernetes: kubernetesSchema
      .prefault({})
      .describe(
        "How scale_deployment reaches the Kubernetes API server, and how pods map to Celery workers. Inside a pod nothing needs setting (the service account's token and the cluster CA are read where the kubelet mounts them).",
      ),
    tasks: tasksSchema
      .prefault({})
      .describe(
        "The store of recent tasks behind Flower's task API and the console's task pages: how many, how much of each, who sees payloads, results, and task submission.",
      ),
  })
  .strict()
  .superRefine((c, ctx) => checkRemediationAgainstAuth(c.remediation, c.auth.insecure_no_auth, ctx));

export type ParsedConfig = z.output<typeof configSchema>;
