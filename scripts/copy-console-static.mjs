#!/usr/bin/env node
/* global console, process, URL */
// tsc compiles src/ into dist/ but copies no other file: the console's browser files (script,
// stylesheet, icon) are read at run time from beside dist/console/static/assets.js, so
// `npm run build` copies them there. Also used by the Dockerfile's build stage.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';

const from = new URL('../src/console/static/', import.meta.url);
const to = new URL('../dist/console/static/', import.meta.url);
mkdirSync(to, { recursive: true });
const copied = readdirSync(from).filter((name) => /\.(js|css|svg)$/.test(name));
for (const name of copied) copyFileSync(new URL(name, from), new URL(name, to));
if (copied.length === 0) {
  console.error('copy-console-static: no browser files in src/console/static/');
  process.exitCode = 1;
}
