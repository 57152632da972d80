import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Writes a generated page of docs/, or with `--check` exits 1 when the file differs from what
 * the code generates now (the unit tests check the same).
 */
export function writeGeneratedDoc(page: string, wanted: string, command: string): void {
  const file = path.resolve(import.meta.dirname, '../docs', page);
  if (process.argv.includes('--check')) {
    if (readFileSync(file, 'utf8') !== wanted) {
      console.error(`docs/${page} is stale: run ${command}`);
      process.exit(1);
    }
  } else {
    writeFileSync(file, wanted);
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}
