import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseBrokerUrl, BrokerUrlError, type BrokerEndpoint } from './broker-url.js';
import { configSchema, type ParsedConfig } from './schema.js';

/**
 * The typed, validated, frozen configuration the rest of the service receives. The raw broker
 * URL is not kept: it may hold a password, and `broker` carries it inside a Secret.
 */
export type Config = Readonly<Omit<ParsedConfig, 'broker_url'>> & { readonly broker: BrokerEndpoint };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export type CliAction = 'run' | 'check-config' | 'help' | 'version';

export interface LoadOptions {
  argv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  readFile?: (path: string) => string;
}

export const ENV_PREFIX = 'CELERY_AUTOPILOT_';

/**
 * Merges, lowest precedence first: defaults (in the schema), the YAML file (`--config` or
 * CELERY_AUTOPILOT_CONFIG), CELERY_AUTOPILOT_* environment variables, command-line flags.
 * Every problem found is reported at once; cross-field rules live in the schema's refinements.
 */
export function loadConfig(options: LoadOptions): { action: CliAction; config?: Config } {
  const leaves = configLeaves();
  const problems: string[] = [];
  const cli = parseArgv(options.argv, leaves, problems);
  if (cli.action === 'help' || cli.action === 'version') return { action: cli.action };

  const configFile = cli.configFile ?? options.env[`${ENV_PREFIX}CONFIG`];
  const fromFile = configFile ? readConfigFile(configFile, options.readFile ?? ((p) => readFileSync(p, 'utf8')), problems) : {};

  const fromEnv: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options.env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined || name === `${ENV_PREFIX}CONFIG`) continue;
    const leaf = leaves.byEnv.get(name);
    if (!leaf) {
      problems.push(`unknown environment variable ${name}`);
      continue;
    }
    setIfValid(fromEnv, leaf, value, name, problems);
  }

  const merged = deepMerge(deepMerge(fromFile, fromEnv), cli.fromFlags);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(describeIssue(issue));
  }
  let broker: BrokerEndpoint | undefined;
  if (result.success) {
    try {
      broker = parseBrokerUrl(result.data.broker_url);
      if (broker.kind === 'redis' && broker.sentinels && !result.data.broker_transport_options.master_name) {
        problems.push('broker_url: a sentinel:// URL needs broker_transport_options.master_name');
      }
      const tlsKeys = Object.entries(result.data.broker_tls).filter(([key, value]) => key !== 'verify' && value !== undefined);
      if (!broker.tls && (tlsKeys.length > 0 || !result.data.broker_tls.verify)) {
        problems.push('broker_tls is set but broker_url does not use TLS: use amqps:// or rediss://');
      }
    } catch (e) {
      if (!(e instanceof BrokerUrlError)) throw e;
      problems.push(`broker_url: ${e.message}`);
    }
  }
  if (problems.length > 0 || !result.success || !broker) throw new ConfigError(problems);
  const { broker_url: _rawUrl, ...rest } = result.data;
  return { action: cli.action, config: deepFreeze({ ...rest, broker }) };
}

/** The command line: the action, `--config`, and every other flag as a value at its key path. */
function parseArgv(
  argv: readonly string[],
  leaves: ReturnType<typeof configLeaves>,
  problems: string[],
): { action: CliAction; configFile?: string; fromFlags: Record<string, unknown> } {
  let action: CliAction = 'run';
  let configFile: string | undefined;
  const fromFlags: Record<string, unknown> = {};
  const args = [...argv];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') action = 'help';
    else if (arg === '--version') action = 'version';
    else if (arg === '--check-config') action = 'check-config';
    else if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const flag = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const leaf = leaves.byFlag.get(flag);
      if (!leaf && flag !== 'config') {
        problems.push(`unknown flag --${flag} (see --help)`);
        continue;
      }
      let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
      if (value === undefined) {
        const next = args[i + 1];
        // A boolean flag alone is true (--remediation-dry-run); it takes a following true/false too.
        if (leaf?.kind === 'boolean' && (next === undefined || !BOOLEAN_WORD.test(next))) value = 'true';
        else if (next === undefined || next.startsWith('--')) {
          problems.push(`flag --${flag} needs a value`);
          continue;
        } else {
          value = next;
          i++;
        }
      }
      if (!leaf) {
        configFile = value;
        continue;
      }
      setIfValid(fromFlags, leaf, value, `--${flag}`, problems);
    } else {
      problems.push(`unexpected argument "${arg}"`);
    }
  }
  return { action, ...(configFile !== undefined ? { configFile } : {}), fromFlags };
}

function readConfigFile(configFile: string, readFile: (path: string) => string, problems: string[]): Record<string, unknown> {
  try {
    const doc: unknown = parseYaml(readFile(configFile));
    if (doc === null || doc === undefined) return {};
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      problems.push(`config file ${configFile}: top level must be a mapping`);
      return {};
    }
    return doc as Record<string, unknown>;
  } catch (e) {
    problems.push(`config file ${configFile}: ${(e as Error).message.split('\n')[0]}`);
    return {};
  }
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.') || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return `${path === '(top level)' ? '' : path + ': '}unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_key') {
    const why = issue.issues.map((i) => i.message).join('; ');
    return `${path}: invalid key${why ? ` (${why})` : ''}`;
  }
  return `${path}: ${issue.message}`;
}

interface Leaf {
  path: string[];
  kind: 'string' | 'number' | 'boolean' | 'string[]' | 'number[]' | 'record' | 'enum';
}

let cachedLeaves: { byFlag: Map<string, Leaf>; byEnv: Map<string, Leaf>; all: Leaf[] } | undefined;

/** Every settable key, found by walking the schema, so flags and env vars can never drift from it. */
export function configLeaves(): { byFlag: Map<string, Leaf>; byEnv: Map<string, Leaf>; all: Leaf[] } {
  if (cachedLeaves) return cachedLeaves;
  const all: Leaf[] = [];
  const walk = (schema: z.ZodType, path: string[]): void => {
    const inner = unwrap(schema);
    const type = inner.def.type;
    if (type === 'object') {
      for (const [key, child] of Object.entries((inner as z.ZodObject).shape)) walk(child as z.ZodType, [...path, key]);
      return;
    }
    let kind: Leaf['kind'] = 'string';
    if (type === 'number') kind = 'number';
    else if (type === 'boolean') kind = 'boolean';
    else if (type === 'enum') kind = 'enum';
    else if (type === 'record') kind = 'record';
    else if (type === 'array') kind = unwrap((inner as z.ZodArray<z.ZodType>).element).def.type === 'number' ? 'number[]' : 'string[]';
    all.push({ path, kind });
  };
  walk(configSchema, []);
  cachedLeaves = {
    all,
    byFlag: new Map(all.map((l) => [flagName(l.path), l])),
    byEnv: new Map(all.map((l) => [envName(l.path), l])),
  };
  return cachedLeaves;
}

/** A key path's flag, without the leading "--": `events.queue_name` → `events-queue-name`. */
export const flagName = (path: readonly string[]): string => path.join('-').replaceAll('_', '-');
/** A key path's environment variable: `events.queue_name` → `CELERY_AUTOPILOT_EVENTS_QUEUE_NAME`. */
export const envName = (path: readonly string[]): string => ENV_PREFIX + path.join('_').toUpperCase();

/** The schema inside default, optional, readonly and pipe wrappers. */
export function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (;;) {
    const def = s.def as { type: string; innerType?: z.ZodType; in?: z.ZodType };
    if (def.innerType && ['default', 'prefault', 'optional', 'nullable', 'readonly'].includes(def.type)) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = def.in;
    else return s;
  }
}

const BOOLEAN_WORD = /^(true|1|yes|on|false|0|no|off)$/i;

function coerce(leaf: Leaf, raw: string, source: string, problems: string[]): unknown {
  const num = (text: string): number => {
    const n = Number(text.trim());
    if (text.trim() === '' || !Number.isFinite(n)) problems.push(`${source}: "${text}" is not a number`);
    return n;
  };
  switch (leaf.kind) {
    case 'number':
      return num(raw);
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      problems.push(`${source}: "${raw}" is not a boolean`);
      return raw;
    case 'number[]':
      return raw.trim() === '' ? [] : raw.split(',').map(num);
    case 'string[]':
      return raw.trim() === '' ? [] : raw.split(',').map((s) => s.trim());
    case 'record': {
      const out: Record<string, string> = {};
      for (const pair of raw.split(',').filter((p) => p.trim() !== '')) {
        const eq = pair.indexOf('=');
        if (eq <= 0) problems.push(`${source}: "${pair}" is not key=value`);
        else out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
      }
      return out;
    }
    default:
      return raw;
  }
}

/** A value that could not even be converted is reported once, here, and not passed on to the schema. */
function setIfValid(target: Record<string, unknown>, leaf: Leaf, raw: string, source: string, problems: string[]): void {
  const before = problems.length;
  const value = coerce(leaf, raw, source, problems);
  if (problems.length === before) setPath(target, leaf.path, value);
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    // Secrets keep private fields; freezing them is harmless but their prototype must not be walked.
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
