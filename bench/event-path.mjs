#!/usr/bin/env node
/* global console, process */
/**
 * The event → state → metrics path alone, in process, with no broker: CPU per event of
 * EventProcessor.handle for decoded Celery events (received, started, succeeded per task, a
 * heartbeat per worker every 100 tasks). Broker-side costs vary with the machine's load; this
 * isolates what a change to the processor or the task store costs per event.
 *
 *   npm run build && node bench/event-path.mjs [--tasks 200000] [--workers 8] [--task-names 8] [--rounds 5]
 *   node bench/event-path.mjs --dist /other/checkout/dist     # the same path of another build
 *
 * Prints CPU-µs per event for each round and their median.
 */
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '200000' },
    workers: { type: 'string', default: '8' },
    'task-names': { type: 'string', default: '8' },
    rounds: { type: 'string', default: '5' },
    dist: { type: 'string', default: path.join(path.dirname(fileURLToPath(import.meta.url)), '../dist') },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('usage: node bench/event-path.mjs [--tasks 200000] [--workers 8] [--task-names 8] [--rounds 5] [--dist dir]');
  process.exit(0);
}
const dist = path.resolve(values.dist);
const load = (rel) => import(pathToFileURL(path.join(dist, rel)).href);
const { loadConfig } = await load('config/load.js');
const { silentLogger } = await load('log.js');
const { Service } = await load('service.js');

const tasks = Number(values.tasks);
const workers = Array.from({ length: Number(values.workers) }, (_, i) => `celery@bench-${i}`);
const names = Array.from({ length: Number(values['task-names']) }, (_, i) => `tasks.t${i}`);

function round() {
  const { config } = loadConfig({ argv: [], env: {}, readFile: () => '' });
  const transport = { kind: 'amqp', isConnected: () => false, close: async () => undefined };
  const service = new Service(config, { logger: silentLogger(), transport: () => transport });
  const p = service.processor;
  const now = Date.now() / 1000;
  for (const hostname of workers) p.handle({ type: 'worker-online', hostname, timestamp: now, freq: 2 });
  let events = 0;
  const start = process.cpuUsage();
  for (let i = 0; i < tasks; i++) {
    const hostname = workers[i % workers.length];
    const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const t = now + i / 1e5;
    p.handle({ type: 'task-received', uuid, name: names[i % names.length], hostname, timestamp: t });
    p.handle({ type: 'task-started', uuid, hostname, timestamp: t });
    p.handle({ type: 'task-succeeded', uuid, hostname, timestamp: t, runtime: 0.01 });
    events += 3;
    if (i % 100 === 0) {
      p.handle({ type: 'worker-heartbeat', hostname, timestamp: t, freq: 2, active: 1, processed: i });
      events++;
    }
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / events;
}

round(); // warm-up: JIT and allocation sites
const results = [];
for (let r = 0; r < Number(values.rounds); r++) results.push(round());
const sorted = [...results].sort((a, b) => a - b);
console.log(`dist: ${dist}`);
console.log(`CPU µs/event per round: ${results.map((v) => v.toFixed(3)).join(' ')}`);
console.log(
  `median: ${sorted[Math.floor(sorted.length / 2)].toFixed(3)} µs/event (${tasks} tasks × 3 events + heartbeats, ${workers.length} workers, ${names.length} names)`,
);
