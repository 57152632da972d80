import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FIXTURES_DIR } from '../support/fixtures.js';

// A contributor's clone has nothing beside it: captures, wire notes and tools must all live in the
// repository. This scan is the cheap half of the proof; .ci/run runs the suites from a copy of the
// repository with nothing beside it, which catches references this text scan cannot see.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCANNED_DIRS = ['src', 'test', 'bench', 'scripts', '.ci', 'docker', 'docs'];
const SCANNED_ROOT_FILES =
  /^(package\.json|vitest\.config\.ts|eslint\.config\.js|tsconfig.*\.json|Dockerfile|docker-compose\.yml|\.prettierrc.*|README\.md|CONTRIBUTING\.md)$/;
// Generated or installed, never committed (.gitignore).
const SKIPPED = new Set(['node_modules', 'dist', 'coverage', '.tmp', 'results', '__pycache__']);

// Built from pieces so that this file does not match itself.
const SIBLING = ['\\.\\.', 'shared'].join('/');
const WORKSPACE = ['', 'work'].join('/');
const OUTSIDE_REFERENCE = new RegExp(`${SIBLING}\\b|(?<![\\w.~-])${WORKSPACE}(?:/|\\b)`);

// A ticket, a contract or a numbered review finding is kept somewhere a contributor cannot read:
// say what is meant instead. Built from pieces so that this file does not match itself.
const TICKET = new RegExp(`\\b${'iss' + 'ue'} \\d+|${'product' + ' contract'}|\\b${'find' + 'ings?'} \\d+`, 'i');

/** The first line of `text` that points outside the repository, or undefined. */
function outsideReference(text: string): { line: number; text: string } | undefined {
  const lines = text.split('\n');
  const index = lines.findIndex((l) => OUTSIDE_REFERENCE.test(l));
  return index < 0 ? undefined : { line: index + 1, text: lines[index]!.trim() };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (SKIPPED.has(entry.name)) return [];
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(full) : [full];
  });
}

function scannedFiles(): string[] {
  const roots = readdirSync(REPO_ROOT).filter((name) => SCANNED_ROOT_FILES.test(name));
  const dirs = SCANNED_DIRS.filter((d) => statSync(path.join(REPO_ROOT, d), { throwIfNoEntry: false })?.isDirectory());
  return [...roots.map((f) => path.join(REPO_ROOT, f)), ...dirs.flatMap((d) => filesUnder(path.join(REPO_ROOT, d)))];
}

describe('the repository is self-contained', () => {
  it.each([
    ['a sibling shared folder', `readFileSync('${['..', 'shared'].join('/')}/fixtures/a.json')`, 1],
    ['a deeper sibling shared folder', `see ${['..', '..', 'shared'].join('/')}/docs/x.md`, 1],
    ['an absolute path into the workspace', `const dir = '${'/wo' + 'rk'}/main/test';`, 1],
    ['the bare workspace root', `cd ${'/wo' + 'rk'}`, 1],
    ['a reference on a later line', `ok\nalso ok\n// ${['..', 'shared'].join('/')}`, 3],
  ])('flags %s', (_name, text, line) => {
    expect(outsideReference(text)?.line).toBe(line);
  });

  it.each([
    ['a shared module inside the repository', "import { x } from './shared/x.js';"],
    ['a word ending in shared', 'the reply pool is shared by every broadcast'],
    ['a path that only contains work', "path.join(root, 'test/work/a.json'); ~/workspace"],
    ['a network word', 'network partition, homework, /workers'],
  ])('does not flag %s', (_name, text) => {
    expect(outsideReference(text)).toBeUndefined();
  });

  it('no source, test, bench, script, CI or config file points outside the repository', () => {
    const files = scannedFiles();
    // Guards against a scan that silently reads nothing (a renamed folder, a wrong root).
    expect(files.some((f) => f.endsWith(path.join('src', 'main.ts')))).toBe(true);
    expect(files).toContain(path.join(REPO_ROOT, 'package.json'));
    const offenders = files.flatMap((file) => {
      const found = outsideReference(readFileSync(file, 'utf8'));
      return found ? [`${path.relative(REPO_ROOT, file)}:${found.line}: ${found.text}`] : [];
    });
    expect(offenders).toEqual([]);
  });

  it.each([
    ['a ticket number', `see ${'Iss' + 'ue'} 9 item 7`],
    ['a contract kept elsewhere', `as ${'product' + ' contract'} 1 says`],
    ['a numbered review finding', `describe('${'Find' + 'ing'} 2: password hashing cannot be flooded'`],
    ['several numbered findings', `tasks-worker › ${'find' + 'ings'} 5 and 6`],
  ])('flags %s', (_name, text) => {
    expect(TICKET.test(text)).toBe(true);
  });

  it.each([
    ['findings without a number', 'the review findings are listed below'],
    ['a number that only follows finding', 'finding the 3 oldest workers'],
  ])('does not flag %s', (_name, text) => {
    expect(TICKET.test(text)).toBe(false);
  });

  it('no file cites an issue, a contract or a numbered review finding kept outside the repository (say what, not which ticket)', () => {
    const offenders = scannedFiles().flatMap((file) => {
      const lines = readFileSync(file, 'utf8').split('\n');
      const index = lines.findIndex((l) => TICKET.test(l));
      return index < 0 ? [] : [`${path.relative(REPO_ROOT, file)}:${index + 1}: ${lines[index]!.trim()}`];
    });
    expect(offenders).toEqual([]);
  });

  it('reads its captures from inside the repository', () => {
    expect(path.relative(REPO_ROOT, FIXTURES_DIR)).toBe(path.join('test', 'fixtures', 'captures'));
    expect(statSync(path.join(FIXTURES_DIR, 'celery-5.2.6')).isDirectory()).toBe(true);
  });
});
