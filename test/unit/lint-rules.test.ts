import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// The project's lint settings are a contract too: a promise nobody handles stops the process, so
// weakening these rules (or letting `void` silence them again) must fail a test, not pass quietly.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/lint/promises.ts');

/** `line:rule` for every line the fixture marks with `// flagged: <rule>`. */
function expectedFindings(source: string): string[] {
  return source.split('\n').flatMap((text, i) => {
    const rule = /\/\/ flagged: (\S+)/.exec(text)?.[1];
    return rule ? [`${i + 1}:${rule}`] : [];
  });
}

describe('lint rules', () => {
  // Type-aware linting builds a TypeScript program first: seconds, not milliseconds.
  it('report exactly the unhandled and misused promises the fixture marks', { timeout: 120_000 }, async () => {
    const expected = expectedFindings(readFileSync(FIXTURE, 'utf8'));
    expect(expected.length).toBeGreaterThanOrEqual(3);
    // ignore: false, because `npm run lint` skips the fixture folder on purpose.
    const [result] = await new ESLint({ cwd: REPO_ROOT, ignore: false }).lintFiles([FIXTURE]);
    const found = result!.messages.map((m) => `${m.line}:${m.ruleId ?? `fatal ${m.message}`}`);
    expect(found).toEqual(expected);
  });

  it('the cycle check, with the flags npm run lint gives it, refuses a cycle of type-only imports', { timeout: 60_000 }, () => {
    const script = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts[
      'lint:cycles'
    ]!;
    const [command, ...args] = script.split(' ');
    expect(command).toBe('dpdm');
    // The same flags, on the fixture instead of the repository's quoted globs.
    const flags = args.filter((a) => !a.startsWith("'"));
    const run = spawnSync(path.join(REPO_ROOT, 'node_modules/.bin/dpdm'), [...flags, 'test/fixtures/lint/cycle-a.ts'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(run.stdout).toContain('test/fixtures/lint/cycle-a.ts -> test/fixtures/lint/cycle-b.ts');
    expect(run.status).toBe(1);
  });
});
