#!/usr/bin/env node
/* global console, process */
/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`, see `throughput.mjs --node-args`):
 * self time per function and per source file, as shares of the samples, so a paced run's
 * per-message costs can be compared before and after a change.
 *
 *   node bench/profile-summary.mjs bench/results/prof/CPU.*.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/**
 * Where a sample's time goes, by the first of these frames found on its stack (innermost
 * first wins, so an event processed inside a socket read counts as the event's, not the read's).
 * `label=fn1|fn2`: a frame whose function name is one of those.
 */
function INCLUSIVE_DEFAULT() {
  return [
    'scrape (/metrics render + HTTP)=metricsChunks|getMetricsAsString|parserOnHeadersComplete|onStreamRead:_http|writevGeneric',
    'event decode+state (events.ts, event-processor.ts)=onEvents|decodeEventMessage|processEvent',
    'redis envelope=decodeEnvelope',
    'amqp frames (amqplib)=recvFrame|acceptLoop|decodeFields',
    'redis protocol (ioredis)=execute|returnReply',
    'acks=flushAcks',
    'inspect/control=broadcast|inspectAll|inspect',
    'timers=listOnTimeout|processTimers',
    'immediates=processImmediate',
  ].join(';');
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '25' }, inclusive: { type: 'string', default: INCLUSIVE_DEFAULT() } },
  allowPositionals: true,
});
if (positionals.length === 0) {
  console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [--top 25]');
  process.exit(1);
}

for (const file of positionals) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfSamples = new Map();
  for (const id of profile.samples) selfSamples.set(id, (selfSamples.get(id) ?? 0) + 1);
  const total = profile.samples.length;
  const spanS = (profile.endTime - profile.startTime) / 1e6;
  const byFunction = new Map();
  const byFile = new Map();
  for (const [id, count] of selfSamples) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const short = url.replace(/^.*\/(node_modules\/[^/]+|dist|node:internal)\//, '$1/').replace(/^file:\/\//, '');
    const fn = `${functionName || '(anonymous)'} ${short ? `${short}:${lineNumber + 1}` : ''}`.trim();
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + count);
    const where = short ? short.replace(/:\d+$/, '') : functionName;
    byFile.set(where, (byFile.get(where) ?? 0) + count);
  }
  const idle = [...byFunction].filter(([fn]) => fn.startsWith('(idle)')).reduce((a, [, c]) => a + c, 0);
  const busy = total - idle;
  const line = ([name, count]) => `${((count / busy) * 100).toFixed(1).padStart(5)} %  ${name}`;
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const groups = values.inclusive.split(';').map((g) => {
    const [label, fns] = g.split('=');
    return { label, fns: new Set(fns.split('|')) };
  });
  const byGroup = new Map(groups.map((g) => [g.label, 0]));
  let gc = 0;
  for (const [id, count] of selfSamples) {
    const name = byId.get(id).callFrame.functionName;
    if (name === '(idle)') continue;
    if (name === '(garbage collector)') {
      gc += count;
      continue;
    }
    let found = 'other';
    for (let at = id; at !== undefined && found === 'other'; at = parent.get(at)) {
      const fn = byId.get(at).callFrame.functionName;
      const hit = groups.find((g) => g.fns.has(fn));
      if (hit) found = hit.label;
    }
    byGroup.set(found, (byGroup.get(found) ?? 0) + count);
  }
  byGroup.set('(garbage collector)', gc);
  console.log(`# ${file}`);
  console.log(`${total} samples over ${spanS.toFixed(1)} s, ${busy} not idle; shares below are of the non-idle samples`);
  console.log('## by activity (innermost matching frame on the stack)');
  for (const row of [...byGroup].sort((a, b) => b[1] - a[1])) console.log(line(row));
  console.log('## self time by file');
  for (const row of [...byFile]
    .filter(([n]) => n !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(values.top)))
    console.log(line(row));
  console.log('## self time by function');
  for (const row of [...byFunction]
    .filter(([n]) => !n.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(values.top)))
    console.log(line(row));
  console.log('');
}
