// Writes docs/configuration.md from the schema's descriptions (src/config/reference.ts).
//   npm run docs:config            rewrite the file
//   npm run docs:config -- --check exit 1 when the file is stale (test/unit/config-reference.test.ts checks the same)
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { configurationMarkdown } from '../src/config/reference.js';

const file = path.resolve(import.meta.dirname, '../docs/configuration.md');
const wanted = configurationMarkdown();
if (process.argv.includes('--check')) {
  const current = readFileSync(file, 'utf8');
  if (current !== wanted) {
    console.error('docs/configuration.md is stale: run npm run docs:config');
    process.exit(1);
  }
} else {
  writeFileSync(file, wanted);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
