import { z } from 'zod';
import { DANGEROUS } from '../remediation/rules.js';
import { Secret } from './secret.js';

/**
 * The `remediation:` section: whether Alertmanager webhooks may act at all, the rules file,
 * global safeguards, how the webhook authenticates, and where replicas share their state.
 */
export const remediationSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** YAML rules (see alertmanager/remediation-rules.yml); validated at start and on reload. */
    rules_file: z.string().min(1).optional(),
    /** Decide and audit, but send nothing. */
    dry_run: z.boolean().default(false),
    /** Start with every action stopped (an admin can flip it through the API). */
    kill_switch: z.boolean().default(false),
    /** shutdown, pool_restart and revoke with terminate stay off unless listed here. */
    allow_dangerous_actions: z.array(z.enum(DANGEROUS)).default([]),
    /** A cap on actions across all rules, per window. */
    max_actions: z.object({ count: z.number().int().min(1).max(100_000), window_seconds: z.number().min(1).max(604_800) }).strict().default({ count: 30, window_seconds: 600 }),
    /** How long an alert instance (fingerprint + startsAt) is remembered for idempotency and shrink-back. */
    memory_seconds: z.number().min(60).max(30 * 86_400).default(7 * 86_400),
    webhook: z
      .object({
        /** Alertmanager http_config.authorization credentials (Bearer). Prefer the _file form. */
        bearer_token: z.string().min(16).transform((s) => new Secret(s)).optional(),
        bearer_token_file: z.string().min(1).optional(),
        /** Alertmanager http_config.basic_auth, as an alternative. */
        basic_auth: z.object({ username: z.string().min(1), password: z.string().min(8).transform((s) => new Secret(s)) }).strict().optional(),
        max_body_bytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    /** Shared state for several replicas behind one URL: a Redis URL; unset keeps it in memory. */
    state_redis_url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').transform((s) => new Secret(s)).optional(),
    state_key_prefix: z.string().max(128).default('celery-autopilot:remediation:'),
  })
  .strict();

export type RemediationConfig = z.output<typeof remediationSchema>;
