#!/usr/bin/env node
/* global console */
// Which room (folder of src/) imports which: the folder-level view of the import graph that
// docs/architecture.md describes, for reviewing a restructuring before and after.
// Usage: node scripts/import-graph.mjs  (or `npm run graph`). File-level cycles: `npm run lint:cycles`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const dir = mkdtempSync(path.join(tmpdir(), 'import-graph-'));
const out = path.join(dir, 'graph.json');
try {
  execFileSync('node_modules/.bin/dpdm', ['--no-warning', '--no-tree', '--no-circular', '--no-progress', '-o', out, 'src/**/*.ts'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const { tree } = JSON.parse(readFileSync(out, 'utf8'));
  // src/exporter/x.ts → exporter; src/service.ts → service.ts
  const room = (file) => {
    const m = /^src\/(?:([^/]+)\/|([^/]+\.ts)$)/.exec(file);
    return m ? (m[1] ?? m[2]) : undefined;
  };
  const edges = new Map();
  for (const [file, deps] of Object.entries(tree)) {
    const from = room(file);
    if (!from) continue;
    for (const dep of deps ?? []) {
      const to = dep.id ? room(dep.id) : undefined;
      if (!to || to === from) continue;
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from).add(to);
    }
  }
  const width = Math.max(...[...edges.keys()].map((k) => k.length));
  for (const from of [...edges.keys()].sort()) console.log(`${from.padEnd(width)} → ${[...edges.get(from)].sort().join(', ')}`);
  const mutual = [...edges].flatMap(([a, tos]) => [...tos].filter((b) => a < b && edges.get(b)?.has(a)).map((b) => `${a} ⇄ ${b}`));
  if (mutual.length) console.log(`\nrooms importing each other (no file cycle needed for this): ${mutual.join(', ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
