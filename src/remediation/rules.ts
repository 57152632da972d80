import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { COMMANDS, prepareCommand, WRITE_COMMAND_NAMES } from '../control/commands.js';
import { CommandValidationError } from '../celery/validators.js';
import type { DangerousAction } from '../config/remediation-schema.js';
import type { Alert } from './alertmanager.js';
import { globMatch } from '../glob.js';
import { checkTemplate, isTemplated, probeArguments, TemplateError } from './template.js';
import { checkPurgeRule } from './queue-target.js';

/**
 * The control commands a rule may take: the writing ones (reads make no sense as remediation),
 * as the control layer defines them. The dangerous ones are off unless enabled.
 */
export const REMEDIATION_ACTIONS = [...WRITE_COMMAND_NAMES, 'scale_deployment', 'purge_queue'] as const;
export type RemediationAction = (typeof REMEDIATION_ACTIONS)[number];
/** The Celery control commands among them; scale_deployment goes to Kubernetes (deployments.ts), purge_queue to the broker (queue-act.ts). */
export type WorkerAction = (typeof WRITE_COMMAND_NAMES)[number];
export const isWorkerAction = (a: RemediationAction): a is WorkerAction => a !== 'scale_deployment' && a !== 'purge_queue';
// Declared with the config key that lifts them (config/remediation-schema.ts): config/ never depends on remediation/.
export type { DangerousAction } from '../config/remediation-schema.js';

const labelName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'not a valid label name');
// The node-name glob of the control API (letters, digits, _ . @ - and the wildcards * ?).
const workerGlob = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.@*?-]+$/, 'a glob over worker names like celery@web-*');

const actionStep = z
  .object({
    action: z.enum(REMEDIATION_ACTIONS),
    arguments: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

const ruleSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'rule names are lower-case letters, digits, "_" and "-"'),
    match: z
      .object({
        status: z.enum(['firing', 'resolved', 'any']).default('firing'),
        labels: z.record(labelName, z.string()).default({}),
        labels_regex: z.record(labelName, z.string()).default({}),
      })
      .strict(),
    action: z.enum(REMEDIATION_ACTIONS),
    arguments: z.record(z.string(), z.unknown()).default({}),
    target: z
      .object({
        queue_label: labelName.optional(),
        worker_label: labelName.optional(),
        pattern: z.string().min(1).max(200).optional(),
        /** scale_deployment: the Deployment (a name or a template such as "{{ labels.deployment }}"). */
        deployment: z.string().min(1).max(253).optional(),
        /** ...and its namespace; unset: the service account's own namespace (or the kubeconfig context's). */
        namespace: z.string().min(1).max(253).optional(),
        /** purge_queue: the queue (a name or a template such as "{{ labels.queue_name }}"). */
        queue: z.string().min(1).max(255).optional(),
        /**
         * Globs the resolved workers must match. Targets read from alert labels are only as
         * trustworthy as whoever can write a series with that label (a Pushgateway, a target with
         * honor_labels): this keeps such a rule on the workers it is meant for.
         */
        allow: z.union([workerGlob, z.array(workerGlob).min(1).max(50)]).optional(),
      })
      .strict()
      .refine(
        (t) => [t.queue_label, t.worker_label, t.pattern, t.deployment, t.queue].filter((v) => v !== undefined).length === 1,
        'give exactly one of queue_label, worker_label, pattern, deployment, queue',
      )
      .refine(
        (t) => t.namespace === undefined || t.deployment !== undefined || t.queue_label !== undefined,
        'namespace goes with deployment',
      ),
    bounds: z
      .object({
        max_pool_processes: z.number().int().min(1).max(1000).optional(),
        min_pool_processes: z.number().int().min(0).max(1000).default(1),
        max_autoscale: z.number().int().min(1).max(1000).optional(),
        /** scale_deployment: the Deployment's replicas stay within these (both required). */
        min_replicas: z.number().int().min(0).max(10_000).optional(),
        max_replicas: z.number().int().min(1).max(10_000).optional(),
      })
      .strict()
      .prefault({}),
    cooldown_seconds: z.number().min(0).max(86_400).default(300),
    max_actions: z
      .object({ count: z.number().int().min(1).max(10_000), window_seconds: z.number().min(1).max(604_800) })
      .strict()
      .optional(),
    dry_run: z.boolean().default(false),
    /** approve: propose, and act only once an operator approves (every safeguard runs again then). */
    mode: z.enum(['act', 'approve']).default('act'),
    /** Effective if the alert resolves or the queue's time to drain falls within within_seconds. */
    verify: z
      .object({
        within_seconds: z.number().min(1).max(86_400),
        /** After an ineffective action, the next firing of the same alert runs this rule instead. */
        escalate_to: z.string().min(1).optional(),
        /** How long an ineffective verdict keeps the rule from acting on that alert again. */
        block_seconds: z.number().min(1).max(604_800).default(3600),
      })
      .strict()
      .optional(),
    on_resolved: actionStep.optional(),
  })
  .strict();

const rulesFileSchema = z.object({ rules: z.array(ruleSchema).max(500).default([]) }).strict();

export type RuleSpec = z.output<typeof ruleSchema>;

export interface RemediationRule extends RuleSpec {
  readonly regexes: ReadonlyArray<readonly [string, RegExp]>;
}

export class RulesError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid remediation rules:\n  - ${problems.join('\n  - ')}`);
    this.name = 'RulesError';
  }
}

const NUMERIC_TEXT = /^-?\d+(\.\d+)?$/;

/**
 * The one conversion of rule arguments: a numeric string (YAML's quoted "1", or a label rendered
 * into part of a string) for an argument the command wants as a number becomes that number.
 * Applied to literal values at load and to rendered values before a decision; anything else is
 * left for the command's own validator to refuse.
 */
export function convertArguments(action: RemediationAction, args: Record<string, unknown>): Record<string, unknown> {
  const numeric = isWorkerAction(action) ? (COMMANDS.get(action)?.numericArguments ?? []) : SCALE_ARGUMENTS;
  const out = { ...args };
  for (const name of numeric) {
    const v = out[name];
    if (typeof v === 'string' && NUMERIC_TEXT.test(v)) out[name] = Number(v);
  }
  return out;
}

/**
 * A step's arguments checked at load with the command's own validator: literal numbers given as
 * text are converted (other text for a number is refused), templates take their default or, with
 * none, a value of the expected type. A value only an alert can supply is checked when it comes.
 */
function checkStepArguments(
  action: RemediationAction,
  args: Record<string, unknown>,
  where: string,
  problems: string[],
): Record<string, unknown> {
  if (action === 'purge_queue') {
    if (Object.keys(args).length > 0) problems.push(`${where}: purge_queue takes no arguments (its queue is target.queue)`);
    return args;
  }
  if (!isWorkerAction(action)) return checkScaleArguments(args, where, problems);
  const numeric = COMMANDS.get(action)?.numericArguments ?? [];
  for (const name of numeric) {
    const v = args[name];
    if (typeof v === 'string' && !isTemplated(v) && !NUMERIC_TEXT.test(v))
      problems.push(`${where}: arguments.${name}: "${v.slice(0, 40)}" is not a number`);
  }
  const converted = convertArguments(action, args);
  const { probe, fromAlert } = probeArguments(converted, (name) => (numeric.includes(name) ? 1 : 'placeholder'));
  try {
    prepareCommand(action, convertArguments(action, probe));
  } catch (e) {
    if (!(e instanceof CommandValidationError)) throw e;
    const field = e.field?.split(/[.[]/)[0];
    if (field === undefined || !fromAlert.has(field)) problems.push(`${where}: arguments: ${e.message}`);
  }
  return converted;
}

const SCALE_ARGUMENTS = ['by', 'replicas'] as const;

/**
 * scale_deployment's arguments: `by` (± replicas) or `replicas` (an absolute count), integers,
 * literal or templated; nothing else. Returns them converted as convertArguments does.
 */
function checkScaleArguments(args: Record<string, unknown>, where: string, problems: string[]): Record<string, unknown> {
  const converted = convertArguments('scale_deployment', args);
  const unknown = Object.keys(args).filter((k) => !(SCALE_ARGUMENTS as readonly string[]).includes(k));
  if (unknown.length > 0) problems.push(`${where}: scale_deployment takes only by or replicas, not ${unknown.join(', ')}`);
  const given = SCALE_ARGUMENTS.filter((k) => args[k] !== undefined);
  if (given.length !== 1) problems.push(`${where}: scale_deployment needs exactly one of arguments.by, arguments.replicas`);
  for (const k of given) {
    const v = converted[k];
    if (typeof v === 'string' && isTemplated(v)) continue;
    if (typeof v !== 'number' || !Number.isInteger(v)) problems.push(`${where}: arguments.${k} must be an integer`);
    else if (k === 'replicas' && v < 0) problems.push(`${where}: arguments.replicas must be 0 or more`);
    else if (k === 'by' && v === 0) problems.push(`${where}: arguments.by must not be 0`);
  }
  return converted;
}

/** Does `target.allow` (if given) let this rule act on this worker? */
export function targetAllowed(rule: RemediationRule, worker: string): boolean {
  const allow = rule.target.allow;
  if (allow === undefined) return true;
  return (Array.isArray(allow) ? allow : [allow]).some((glob: string) => globMatch(glob, worker));
}

/** Is this step one of the dangerous ones (shutdown, pool_restart, revoke with terminate, purge_queue)? */
export function dangerOf(action: RemediationAction, args: Record<string, unknown>): DangerousAction | undefined {
  if (action === 'shutdown' || action === 'pool_restart' || action === 'purge_queue') return action;
  if (action === 'revoke' && args.terminate !== undefined && args.terminate !== false && args.terminate !== 'false')
    return 'revoke_terminate';
  return undefined;
}

/**
 * Parses and checks a rules document completely (names unique, regexes compile, templates are
 * well-formed, dangerous actions enabled, grow/autoscale have a ceiling); all problems at once.
 */
export function compileRules(text: string, allowDangerous: readonly DangerousAction[], source = 'rules'): RemediationRule[] {
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (e) {
    throw new RulesError([`${source}: ${(e as Error).message.split('\n')[0]}`]);
  }
  const parsed = rulesFileSchema.safeParse(doc);
  if (!parsed.success) {
    throw new RulesError(parsed.error.issues.map((i) => `${source}: ${i.path.map(String).join('.') || '(top level)'}: ${i.message}`));
  }
  const problems: string[] = [];
  const seen = new Set<string>();
  const rules: RemediationRule[] = [];
  parsed.data.rules.forEach((rule, index) => {
    const where = `${source}: rules.${index} (${rule.name})`;
    if (seen.has(rule.name)) problems.push(`${where}: duplicate rule name`);
    seen.add(rule.name);
    const regexes: Array<readonly [string, RegExp]> = [];
    for (const [label, pattern] of Object.entries(rule.match.labels_regex)) {
      try {
        // Anchored like Alertmanager's own matchers, so "db" cannot match "db-archive".
        regexes.push([label, new RegExp(`^(?:${pattern})$`)]);
      } catch (e) {
        problems.push(`${where}: match.labels_regex.${label}: ${(e as Error).message}`);
      }
    }
    for (const step of [rule, ...(rule.on_resolved ? [rule.on_resolved] : [])]) {
      const before = problems.length;
      for (const text of templateStrings(step.arguments)) {
        try {
          checkTemplate(text);
        } catch (e) {
          if (e instanceof TemplateError) problems.push(`${where}: arguments: ${e.message}`);
          else throw e;
        }
      }
      if (problems.length === before) step.arguments = checkStepArguments(step.action, step.arguments, where, problems);
      const danger = dangerOf(step.action, step.arguments);
      if (danger && !allowDangerous.includes(danger)) {
        problems.push(`${where}: ${danger} is disabled (enable it in remediation.allow_dangerous_actions)`);
      }
    }
    if (rule.action === 'pool_grow' && rule.bounds.max_pool_processes === undefined) {
      problems.push(`${where}: pool_grow needs bounds.max_pool_processes (a ceiling)`);
    }
    if (rule.action === 'autoscale' && rule.bounds.max_autoscale === undefined) {
      problems.push(`${where}: autoscale needs bounds.max_autoscale (a ceiling)`);
    }
    checkScaleRule(rule, where, problems);
    checkPurgeRule(rule, where, problems);
    if (rule.match.status === 'resolved' && rule.on_resolved)
      problems.push(`${where}: on_resolved only makes sense for rules matching firing alerts`);
    rules.push({ ...rule, regexes });
  });
  for (const rule of rules) {
    const to = rule.verify?.escalate_to;
    if (to !== undefined && (to === rule.name || !seen.has(to)))
      problems.push(`${source}: rule ${rule.name}: verify.escalate_to names ${to === rule.name ? 'itself' : `no rule called ${to}`}`);
  }
  if (problems.length > 0) throw new RulesError(problems);
  return rules;
}

/** scale_deployment: bounds on replicas, a Deployment (or a queue to map to one), both steps scaling. */
function checkScaleRule(rule: RuleSpec, where: string, problems: string[]): void {
  const scales = [rule.action, rule.on_resolved?.action].map((a) => a === 'scale_deployment');
  if (!scales[0] && !scales[1]) {
    if (rule.target.deployment !== undefined) problems.push(`${where}: target.deployment is for scale_deployment`);
    return;
  }
  if (scales[0] !== (scales[1] ?? scales[0]) && rule.on_resolved)
    problems.push(`${where}: on_resolved of a scale_deployment rule must scale the Deployment too (and the other way round)`);
  const b = rule.bounds;
  if (b.min_replicas === undefined || b.max_replicas === undefined)
    problems.push(`${where}: scale_deployment needs bounds.min_replicas and bounds.max_replicas`);
  else if (b.min_replicas > b.max_replicas) problems.push(`${where}: bounds.min_replicas is above bounds.max_replicas`);
  if (rule.target.deployment === undefined && rule.target.queue_label === undefined)
    problems.push(`${where}: scale_deployment needs target.deployment (or target.queue_label with kubernetes.queue_deployments)`);
  if (rule.target.allow !== undefined) problems.push(`${where}: target.allow names workers; a scale_deployment rule names its Deployment`);
  for (const text of [rule.target.deployment, rule.target.namespace]) {
    try {
      if (text !== undefined) checkTemplate(text);
    } catch (e) {
      if (!(e instanceof TemplateError)) throw e;
      problems.push(`${where}: target: ${e.message}`);
    }
  }
}

export function loadRulesFile(path: string, allowDangerous: readonly DangerousAction[]): RemediationRule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RulesError([`${path}: ${(e as Error).message}`]);
  }
  return compileRules(text, allowDangerous, path);
}

/**
 * The rules the configuration names (none without a rules file): what the service loads at start
 * and on reload, and what `--check-config` checks. Throws RulesError.
 */
export function loadConfiguredRules(r: {
  readonly rules_file?: string | undefined;
  readonly allow_dangerous_actions: readonly DangerousAction[];
}): RemediationRule[] {
  return r.rules_file ? loadRulesFile(r.rules_file, r.allow_dangerous_actions) : [];
}

function templateStrings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(templateStrings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(templateStrings);
  return [];
}

/** Does this rule apply to this alert (status, exact labels, anchored regexes)? */
export function ruleMatches(rule: RemediationRule, alert: Alert): boolean {
  const status = rule.match.status;
  // A rule with on_resolved also sees the resolved notification of the alerts it acted on.
  if (status !== 'any' && status !== alert.status && !(alert.status === 'resolved' && rule.on_resolved)) return false;
  for (const [label, value] of Object.entries(rule.match.labels)) if (alert.labels[label] !== value) return false;
  for (const [label, re] of rule.regexes) if (!re.test(alert.labels[label] ?? '')) return false;
  return true;
}
