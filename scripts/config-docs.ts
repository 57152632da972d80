// Writes docs/configuration.md from the schema's descriptions (src/config/reference.ts).
//   npm run docs:config            rewrite the file
//   npm run docs:config -- --check exit 1 when the file is stale (test/unit/config-reference.test.ts checks the same)
import { configurationMarkdown } from '../src/config/reference.js';
import { writeGeneratedDoc } from './generated-doc.js';

writeGeneratedDoc('configuration.md', configurationMarkdown(), 'npm run docs:config');
