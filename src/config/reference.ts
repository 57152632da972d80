import type { z } from 'zod';
import { ENV_PREFIX, envName, flagName, unwrap } from './load.js';
import { configSchema } from './schema.js';

/**
 * The configuration's reference, read from the schema's own descriptions (`.describe()` on each
 * key, the one place a key is explained): `--help` and docs/configuration.md are both generated
 * from it (`npm run docs:config`), so neither can drift from what the service accepts.
 */

export interface ReferenceKey {
  readonly path: string;
  readonly flag: string;
  readonly env: string;
  /** What a flag or variable takes; undefined for a bare boolean flag. */
  readonly value: string | undefined;
  /** Lists of mappings have no one-line form: YAML only. */
  readonly yamlOnly: boolean;
  readonly default: string;
  readonly description: string;
}

export interface ReferenceSection {
  /** "" for the top-level keys. */
  readonly path: string;
  readonly description: string;
  readonly keys: ReferenceKey[];
}

/** A description on the key's outermost schema or on any wrapper inside it (default, optional, pipe). */
function describedAs(schema: z.ZodType): string {
  let s: z.ZodType | undefined = schema;
  while (s) {
    if (s.description) return s.description;
    const def = s.def as { type: string; innerType?: z.ZodType; in?: z.ZodType };
    s = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
  }
  return '';
}

/** The default as written in the schema (before any transform), or undefined. */
function rawDefault(schema: z.ZodType): { value: unknown } | undefined {
  let s: z.ZodType | undefined = schema;
  while (s) {
    const def = s.def as { type: string; innerType?: z.ZodType; in?: z.ZodType; defaultValue?: unknown };
    if (def.type === 'default') return { value: def.defaultValue };
    s = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
  }
  return undefined;
}

function showDefault(found: { value: unknown } | undefined): string {
  if (!found || found.value === undefined) return 'unset';
  const v = found.value;
  if (Array.isArray(v)) return v.length === 0 ? 'none' : v.join(',');
  if (typeof v === 'object' && v !== null) return Object.keys(v).length === 0 ? 'none' : JSON.stringify(v);
  if (v === '') return '""';
  // eslint-disable-next-line no-control-regex -- control characters (the Redis separator) are shown escaped
  return typeof v === 'string' && /[\x00-\x1f]/.test(v) ? JSON.stringify(v) : String(v as string | number | boolean);
}

function valueOf(inner: z.ZodType): { value: string | undefined; yamlOnly: boolean } {
  const type = inner.def.type;
  if (type === 'boolean') return { value: undefined, yamlOnly: false };
  if (type === 'number') return { value: '<number>', yamlOnly: false };
  if (type === 'enum') return { value: `<${(inner as z.ZodEnum).options.join('|')}>`, yamlOnly: false };
  if (type === 'record') return { value: '<key=value,...>', yamlOnly: false };
  if (type === 'array') {
    const element = unwrap((inner as z.ZodArray<z.ZodType>).element);
    if (element.def.type === 'object') return { value: undefined, yamlOnly: true };
    if (element.def.type === 'number') return { value: '<n,n,...>', yamlOnly: false };
    if (element.def.type === 'enum') return { value: `<${(element as z.ZodEnum).options.join('|')},...>`, yamlOnly: false };
    return { value: '<a,b,...>', yamlOnly: false };
  }
  return { value: '<text>', yamlOnly: false };
}

let cached: ReferenceSection[] | undefined;

/** Every key, in the schema's order, grouped by the object it belongs to. */
export function configReference(): ReferenceSection[] {
  if (cached) return cached;
  const sections: ReferenceSection[] = [];
  const walk = (schema: z.ZodType, path: string[]): void => {
    const section: ReferenceSection = { path: path.join('.'), description: path.length ? describedAs(schema) : '', keys: [] };
    sections.push(section);
    const nested: Array<[z.ZodType, string[]]> = [];
    for (const [key, child] of Object.entries((unwrap(schema) as z.ZodObject).shape)) {
      const childPath = [...path, key];
      const inner = unwrap(child as z.ZodType);
      if (inner.def.type === 'object') {
        nested.push([child as z.ZodType, childPath]);
        continue;
      }
      section.keys.push({
        path: childPath.join('.'),
        flag: `--${flagName(childPath)}`,
        env: envName(childPath),
        ...valueOf(inner),
        default: showDefault(rawDefault(child as z.ZodType)),
        description: describedAs(child as z.ZodType),
      });
    }
    for (const [child, childPath] of nested) walk(child, childPath);
  };
  walk(configSchema, []);
  cached = sections;
  return sections;
}

const wrap = (text: string, width: number, indent: string): string[] => {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
};

/** `--help`: every flag by section, with what it takes, its default, its variable and what it does. */
export function helpText(): string {
  const lines = [
    'celery-autopilot: Celery metrics for Prometheus, worker control, task history and Alertmanager remediation',
    '',
    'usage: celery-autopilot [--config file.yaml] [--check-config] [--FLAG VALUE ...]',
    '',
    '  --config <file>     a YAML file with the keys below (or CELERY_AUTOPILOT_CONFIG)',
    '  --check-config      check the configuration, the rules, token and certificate files, then exit',
    '  --help, --version',
    '',
    'Every key of the YAML file is also a flag (the key path joined with "-") and an environment',
    `variable (${ENV_PREFIX} + the path in upper case joined with "_"); flags win over variables,`,
    'variables over the file. A boolean flag alone means true (--remediation-dry-run); lists are',
    'comma-separated. docs/configuration.md has the same reference.',
  ];
  for (const section of configReference()) {
    if (section.keys.length === 0) continue;
    lines.push('', section.path === '' ? 'general' : `${section.path}:`);
    if (section.description) lines.push(...wrap(section.description, 96, '  '));
    for (const key of section.keys) {
      const name = key.yamlOnly ? `${key.path}  (YAML only)` : `${key.flag}${key.value ? ` ${key.value}` : ''}`;
      const where = key.yamlOnly ? `default: ${key.default}` : `${key.env}, default: ${key.default}`;
      lines.push('', `  ${name}`, `      ${where}`, ...wrap(key.description, 96, '      '));
    }
  }
  return lines.join('\n');
}

const cell = (text: string): string => text.replaceAll('|', '\\|');

/** docs/configuration.md. */
export function configurationMarkdown(): string {
  const out = [
    '# Configuration',
    '',
    '<!-- Generated from the descriptions in src/config/ by `npm run docs:config`; a unit test fails when it is stale. Edit the schema, not this file. -->',
    '',
    'Configuration is parsed once, at start, from (lowest precedence first) the defaults below, a YAML',
    `file (\`--config file.yaml\` or \`${ENV_PREFIX}CONFIG\`), \`${ENV_PREFIX}*\` environment variables and`,
    'command-line flags. Every YAML key is also a flag (the key path joined with `-`) and an environment',
    `variable (\`${ENV_PREFIX}\` + the path in upper case joined with \`_\`). A boolean flag alone means`,
    '`true` (`--remediation-dry-run`); lists are comma-separated (`--metrics-queues default,images`),',
    'mappings `key=value` pairs. Lists of mappings (tokens, OpenID providers, GitHub allow entries) are',
    'YAML only. Unknown keys, flags and variables are errors, and every problem is reported at once;',
    '`--check-config` checks the configuration and the files it names, then exits (status 2 on error).',
    'Secrets (passwords, tokens, session and OAuth secrets) render as `<secret>` in logs and errors.',
    '',
  ];
  const sections = configReference().filter((s) => s.keys.length > 0);
  out.push('Sections: ' + sections.map((s) => `[${s.path || 'general'}](#${(s.path || 'general').replaceAll('.', '')})`).join(' · '), '');
  for (const section of sections) {
    out.push(`## ${section.path || 'general'}`, '');
    if (section.description) out.push(section.description, '');
    out.push('| key | default | flag / environment variable | meaning |', '| --- | --- | --- | --- |');
    for (const key of section.keys) {
      const flag = key.yamlOnly ? 'YAML only' : `\`${key.flag}\`<br>\`${key.env}\``;
      const shown = key.default === 'unset' || key.default === 'none' ? key.default : `\`${cell(key.default)}\``;
      out.push(`| \`${key.path}\` | ${shown} | ${flag} | ${cell(key.description)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}
