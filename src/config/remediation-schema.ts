import { z } from 'zod';
import { Secret } from './secret.js';

/**
 * The actions that stay off unless allow_dangerous_actions lists them (revoke_terminate: revoke
 * with terminate; purge_queue: the remediation action that empties a queue, messages lost).
 */
export const DANGEROUS = ['shutdown', 'pool_restart', 'revoke_terminate', 'purge_queue'] as const;
export type DangerousAction = (typeof DANGEROUS)[number];

/**
 * The `remediation:` section: whether Alertmanager webhooks may act at all, the rules file,
 * global safeguards, how the webhook authenticates, and where replicas share their state.
 */
export const remediationSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Let Alertmanager webhooks act (needs rules_file and a webhook credential).'),
    rules_file: z
      .string()
      .min(1)
      .optional()
      .describe('YAML rules (see alertmanager/remediation-rules.yml); validated at start, by --check-config and on reload (SIGHUP).'),
    dry_run: z.boolean().default(false).describe('Decide and audit, but send nothing.'),
    kill_switch: z
      .boolean()
      .default(false)
      .describe('Start with every action stopped (an admin can flip it through the API or the console).'),
    allow_dangerous_actions: z
      .array(z.enum(DANGEROUS))
      .default([])
      .describe('shutdown, pool_restart, revoke_terminate and purge_queue stay off unless listed here.'),
    max_actions: z
      .object({
        count: z.number().int().min(1).max(100_000).describe('Actions at most per window, across all rules.'),
        window_seconds: z.number().min(1).max(604_800).describe('The window of max_actions.count.'),
      })
      .strict()
      .default({ count: 30, window_seconds: 600 })
      .describe('A cap on actions across all rules, per window.'),
    memory_seconds: z
      .number()
      .min(60)
      .max(30 * 86_400)
      .default(7 * 86_400)
      .describe('How long an alert instance (fingerprint + startsAt) is remembered, for idempotency and shrink-back.'),
    max_state_entries: z
      .number()
      .int()
      .min(100)
      .max(10_000_000)
      .default(100_000)
      .describe(
        'In memory (no state_redis_url), at most this many remembered keys (idempotency, cooldowns, locks, counters); past it the oldest are forgotten and counted in celery_autopilot_remediation_state_evictions_total. In Redis, its maxmemory bounds them.',
      ),
    in_flight_seconds: z
      .number()
      .min(1)
      .max(3600)
      .default(120)
      .describe("Upper bound on one action's duration: the per-worker in-flight lock expires after it."),
    busy_shrink_retries: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(10)
      .describe('A shrink refused only because every pool process is busy is sent again this many times...'),
    busy_shrink_retry_seconds: z.number().min(0.1).max(600).default(2).describe('...this far apart.'),
    proposal_expire_seconds: z
      .number()
      .min(10)
      .max(7 * 86_400)
      .default(1800)
      .describe('Rules in mode approve: a proposal nobody approved or rejected expires after this.'),
    pending_resize_seconds: z
      .number()
      .min(1)
      .max(600)
      .default(10)
      .describe("A grow or shrink counts towards the bounds this long, until stats show it (the pool's tick is 5 s)."),
    kill_switch_refresh_seconds: z
      .number()
      .min(0.05)
      .max(60)
      .default(0.5)
      .describe(
        'With state_redis_url, how often each replica re-reads the shared kill switch for the value it shows (decisions read it afresh every time).',
      ),
    webhook: z
      .object({
        bearer_token: z
          .string()
          .min(16)
          .transform((s) => new Secret(s))
          .optional()
          .describe("Alertmanager's http_config.authorization credentials (Bearer), 16+ characters. Prefer bearer_token_file."),
        bearer_token_file: z
          .string()
          .min(1)
          .optional()
          .describe('A file holding the bearer token (the one Alertmanager reads as credentials_file).'),
        basic_auth: z
          .object({
            username: z.string().min(1).describe('Basic-auth username Alertmanager sends.'),
            password: z
              .string()
              .min(8)
              .transform((s) => new Secret(s))
              .describe('Basic-auth password Alertmanager sends (8+ characters; under 16 is warned about).'),
          })
          .strict()
          .optional()
          .describe("Alertmanager's http_config.basic_auth, as an alternative to a bearer token."),
        max_body_bytes: z
          .number()
          .int()
          .min(1024)
          .max(64 * 1024 * 1024)
          .default(4 * 1024 * 1024)
          .describe('Largest accepted webhook body.'),
      })
      .strict()
      .prefault({})
      .describe('How Alertmanager authenticates to the receiver (/api/v1/alertmanager).'),
    state_redis_url: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .transform((s) => new Secret(s))
      .optional()
      .describe('Shared state for several replicas: a redis:// or rediss:// URL. Unset: in memory, one replica.'),
    state_key_prefix: z.string().max(128).default('celery-autopilot:remediation:').describe("Prefix of the shared state's Redis keys."),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.enabled && !r.rules_file)
      ctx.addIssue({ code: 'custom', path: ['rules_file'], message: 'remediation is enabled but no rules file is given' });
    if (r.webhook.bearer_token && r.webhook.bearer_token_file) {
      ctx.addIssue({ code: 'custom', path: ['webhook'], message: 'give bearer_token or bearer_token_file, not both' });
    }
  });

/**
 * The check that needs another section: the receiver never runs unauthenticated unless the whole
 * service was deliberately opened with auth.insecure_no_auth. Called from the top-level schema.
 */
export function checkRemediationAgainstAuth(r: RemediationConfig, insecureNoAuth: boolean, ctx: z.RefinementCtx): void {
  const w = r.webhook;
  if (r.enabled && !w.bearer_token && !w.bearer_token_file && !w.basic_auth && !insecureNoAuth) {
    ctx.addIssue({
      code: 'custom',
      path: ['remediation', 'webhook'],
      message: 'give bearer_token_file, bearer_token or basic_auth (the receiver never runs unauthenticated unless auth.insecure_no_auth)',
    });
  }
}

export type RemediationConfig = z.output<typeof remediationSchema>;
