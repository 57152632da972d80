#!/usr/bin/env node
/* global console, process */
/**
 * `npm run bench`: the throughput benchmark, then the cardinality benchmark, one after the other
 * (never together: each would steal CPU from the other's exporter).
 *
 *   npm run bench                          # full sizes
 *   npm run bench -- --quick               # 5000 tasks / 50×100 pairs, to check the setup
 *   npm run bench -- --brokers amqp        # one broker only
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    brokers: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
if (opts.help) {
  console.log('usage: node bench/run.mjs [--quick] [--brokers amqp,redis]');
  process.exit(0);
}

const throughputArgs = [];
const cardinalityArgs = [];
if (opts.quick) {
  throughputArgs.push('--tasks', '5000');
  cardinalityArgs.push('--quick');
}
if (opts.brokers) {
  throughputArgs.push('--brokers', opts.brokers);
  cardinalityArgs.push('--brokers', opts.brokers);
}

async function runScript(name, args) {
  console.log(`\n=== ${name} ${args.join(' ')}`);
  const child = spawn(process.execPath, [join(here, name), ...args], { stdio: 'inherit' });
  const [code, signal] = await once(child, 'exit');
  if (code !== 0) console.error(`${name} exited with ${signal ?? code}`);
  return code === 0;
}

const okThroughput = await runScript('throughput.mjs', throughputArgs);
const okCardinality = await runScript('cardinality.mjs', cardinalityArgs);
process.exitCode = okThroughput && okCardinality ? 0 : 1;
