#!/usr/bin/env node
/* global console, process */
// The size rules of the style guide: no file in src/ over 350 lines, no function over 80 lines unless
// a `// Over 80 lines on purpose: <why>` comment sits at its top. Run by `npm run lint`.
// Usage: node scripts/check-size.mjs [dir ...]   (default: src; exits 1 on any problem)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const MAX_FILE_LINES = 350;
const MAX_FUNCTION_LINES = 80;
const REASON = 'Over 80 lines on purpose:';

function* sourceFiles(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|mts|cts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) yield path;
  }
}

const isFunction = (n) =>
  ts.isFunctionDeclaration(n) ||
  ts.isFunctionExpression(n) ||
  ts.isArrowFunction(n) ||
  ts.isMethodDeclaration(n) ||
  ts.isConstructorDeclaration(n) ||
  ts.isGetAccessorDeclaration(n) ||
  ts.isSetAccessorDeclaration(n);

function functionName(n, sf) {
  if (n.name) return n.name.getText(sf);
  if (ts.isConstructorDeclaration(n)) return 'constructor';
  const p = n.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)) && p.name) return p.name.getText(sf);
  return '(anonymous)';
}

/** The reason may sit in the comments before the function or before the statement that holds it on its first line. */
function hasReason(n, sf) {
  const text = sf.getFullText();
  const line = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
  for (let node = n; node && !ts.isSourceFile(node); node = node.parent) {
    if (sf.getLineAndCharacterOfPosition(node.getStart(sf)).line !== line) break;
    for (const c of ts.getLeadingCommentRanges(text, node.getFullStart()) ?? []) {
      if (text.slice(c.pos, c.end).includes(REASON)) return true;
    }
  }
  // A reason written as the first comment inside the body counts too.
  const body = n.body;
  if (body && ts.isBlock(body) && body.statements.length > 0) {
    for (const c of ts.getLeadingCommentRanges(text, body.statements[0].getFullStart()) ?? []) {
      if (text.slice(c.pos, c.end).includes(REASON)) return true;
    }
  }
  return false;
}

const args = process.argv.slice(2);
const unknown = args.filter((a) => a.startsWith('-'));
if (unknown.length > 0) {
  // It always exits 1 on a problem: there is no separate check mode.
  console.error(
    `check-size: unknown option ${unknown.join(' ')}\nusage: node scripts/check-size.mjs [dir ...]   (default: src; exits 1 on any problem)`,
  );
  process.exit(2);
}
const problems = [];
for (const dir of args.length > 0 ? args : ['src']) {
  for (const path of sourceFiles(dir)) {
    const name = relative(process.cwd(), path);
    const text = readFileSync(path, 'utf8');
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines > MAX_FILE_LINES) problems.push(`${name}: ${lines} lines (at most ${MAX_FILE_LINES})`);
    const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
    const visit = (n) => {
      if (isFunction(n)) {
        const start = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
        const length = end - start + 1;
        if (length > MAX_FUNCTION_LINES && !hasReason(n, sf)) {
          problems.push(
            `${name}:${start + 1}: function ${functionName(n, sf)} is ${length} lines (at most ${MAX_FUNCTION_LINES}, or a "// ${REASON} <why>" comment at its top)`,
          );
        }
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
}

for (const p of problems) console.error(p);
if (problems.length > 0) {
  console.error(`check-size: ${problems.length} problem(s)`);
  process.exit(1);
}
