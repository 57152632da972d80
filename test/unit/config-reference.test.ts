import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, configLeaves, loadConfig } from '../../src/config/load.js';
import { configReference, configurationMarkdown, helpText } from '../../src/config/reference.js';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

describe('the configuration reference, generated from the schema', () => {
  it('describes every key and every section in the schema', () => {
    const sections = configReference();
    const keys = sections.flatMap((s) => s.keys);
    expect(keys.map((k) => k.path).sort()).toEqual(
      configLeaves()
        .all.map((l) => l.path.join('.'))
        .sort(),
    );
    expect(keys.filter((k) => k.description.trim() === '').map((k) => k.path)).toEqual([]);
    expect(sections.filter((s) => s.path !== '' && s.description.trim() === '').map((s) => s.path)).toEqual([]);
  });

  it('docs/configuration.md is the generated one (run npm run docs:config after changing the schema)', () => {
    const current = readFileSync(path.join(REPO_ROOT, 'docs/configuration.md'), 'utf8');
    expect(current === configurationMarkdown(), 'docs/configuration.md is stale: run npm run docs:config').toBe(true);
  });

  it('--help names every flag with its variable, default and description, by section', () => {
    const help = helpText();
    for (const key of configReference().flatMap((s) => s.keys)) {
      if (key.yamlOnly) expect(help).toContain(`  ${key.path}  (YAML only)`);
      else expect(help).toContain(`      ${key.env}, default: ${key.default}\n`);
    }
    expect(help).toContain(
      '\n  --remediation-dry-run\n      CELERY_AUTOPILOT_REMEDIATION_DRY_RUN, default: false\n      Decide and audit, but send nothing.',
    );
    expect(help).toContain('\n  --cardinality-task-sent-hostname <generic|host|full>\n');
    expect(help).toContain('\nevents:\n  The broker');
  });
});

describe('boolean flags', () => {
  const config = (argv: string[]) => loadConfig({ argv, env: {} }).config!;

  it('stand alone for true, before another flag or at the end', () => {
    expect(config(['--remediation-dry-run']).remediation.dry_run).toBe(true);
    const c = config(['--events-enable-events', '--port', '1234', '--auth-protect-metrics=false']);
    expect([c.events.enable_events, c.port, c.auth.protect_metrics]).toEqual([true, 1234, false]);
  });

  it('still take a following true/false word', () => {
    expect(config(['--events-enable-events', 'false']).events.enable_events).toBe(false);
    expect(config(['--remediation-dry-run', 'yes']).remediation.dry_run).toBe(true);
  });

  it('do not swallow an argument that is not a boolean word, and other flags still need a value', () => {
    try {
      loadConfig({ argv: ['--remediation-dry-run', 'later', '--port'], env: {} });
      throw new Error('expected a ConfigError');
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      expect(e.problems).toEqual(['unexpected argument "later"', 'flag --port needs a value']);
    }
  });
});
