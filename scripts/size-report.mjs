#!/usr/bin/env node
/* global console, process */
// The size rule of the project's standards, measured: files in src/ over 350 lines and functions
// over 80 lines, each long function with the comment at its top, where its reason should be.
// Usage: node scripts/size-report.mjs [--check]  (`npm run size`). --check exits 1 when a file is
// too long or a long function has no comment at its top (whether the comment gives a reason is
// for the reader to judge).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const MAX_FILE_LINES = 350;
const MAX_FUNCTION_LINES = 80;

const filesUnder = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );

const isFunction = (node) =>
  ts.isFunctionDeclaration(node) ||
  ts.isMethodDeclaration(node) ||
  ts.isConstructorDeclaration(node) ||
  ts.isGetAccessorDeclaration(node) ||
  ts.isSetAccessorDeclaration(node) ||
  ts.isArrowFunction(node) ||
  ts.isFunctionExpression(node);

/** `const f = () => …` and `x: function () …` carry their comment on the declaration around them. */
function commentedNode(node) {
  let n = node;
  while (
    n.parent &&
    (ts.isVariableDeclaration(n.parent) ||
      ts.isVariableDeclarationList(n.parent) ||
      ts.isVariableStatement(n.parent) ||
      ts.isPropertyAssignment(n.parent) ||
      ts.isPropertyDeclaration(n.parent))
  )
    n = n.parent;
  return n;
}

function nameOf(node) {
  if (node.name) return node.name.getText();
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const holder = commentedNode(node);
  if (ts.isVariableStatement(holder)) return holder.declarationList.declarations[0]?.name.getText() ?? '(anonymous)';
  if ((ts.isPropertyAssignment(holder) || ts.isPropertyDeclaration(holder)) && holder.name) return holder.name.getText();
  return '(anonymous)';
}

function topComment(source, node) {
  const holder = commentedNode(node);
  const before = ts.getLeadingCommentRanges(source.text, holder.getFullStart()) ?? [];
  // A comment as the body's first line counts as written at its top too.
  const body = node.body && ts.isBlock(node.body) ? node.body : undefined;
  const inside = body ? (ts.getLeadingCommentRanges(source.text, body.statements[0]?.getFullStart() ?? body.end) ?? []) : [];
  const text = [...before, ...inside].map((r) => source.text.slice(r.pos, r.end)).join(' ');
  return text
    .replace(/\/\*\*?|\*\/|^\s*\*+|^\s*\/\//gm, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

const longFiles = [];
const longFunctions = [];
for (const file of filesUnder('src').sort()) {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  if (lines > MAX_FILE_LINES) longFiles.push({ file, lines });
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const visit = (node) => {
    if (isFunction(node)) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.end).line;
      if (end - start + 1 > MAX_FUNCTION_LINES)
        longFunctions.push({
          where: `${file}:${start + 1}`,
          name: nameOf(node),
          lines: end - start + 1,
          comment: topComment(source, node),
        });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
}

console.log(`files over ${MAX_FILE_LINES} lines: ${longFiles.length}`);
for (const f of longFiles) console.log(`  ${f.file}: ${f.lines}`);
console.log(`functions over ${MAX_FUNCTION_LINES} lines: ${longFunctions.length}`);
for (const f of longFunctions)
  console.log(`  ${f.where} ${f.name} (${f.lines}): ${f.comment ? f.comment.slice(0, 140) : 'NO COMMENT AT ITS TOP'}`);
if (process.argv.includes('--check') && (longFiles.length > 0 || longFunctions.some((f) => !f.comment))) process.exit(1);
