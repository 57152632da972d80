#!/usr/bin/env node
/* global console, process, Buffer */
// CPU per delivery of the lean AMQP delivery reader (src/transport/amqp/delivery-frames.ts),
// beside amqplib's own frame parse + decode of the same bytes (which is only part of what
// amqplib did per message: its message assembly and emitters come on top). In process, no
// broker: the frames are built by amqplib's encoder as RabbitMQ sends them, 150 a read (a 100 ms
// window at 1,500 events/s). Needs `npm run build`. Usage: node bench/delivery-frames.mjs [--rounds 5]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeliveryFrameReader } from '../dist/transport/amqp/delivery-frames.js';

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1]) || 5;
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const amqplibDir = path.dirname(createRequire(path.join(root, 'package.json')).resolve('amqplib'));
const load = createRequire(path.join(amqplibDir, 'lib', 'defs.js'));
const defs = load('./defs.js');
const frames = load('./frame.js');

const TAG = 'amq.ctag-bench-delivery-frames';
const body = Buffer.from(
  '{"hostname": "w1@h", "utcoffset": 0, "pid": 1234, "clock": 77, "uuid": "3f1c2a3e-1111-2222-3333-444455556666", "timestamp": 1733140000.123, "type": "task-started"}',
);
const delivery = (tag) =>
  Buffer.concat([
    defs.encodeMethod(defs.BasicDeliver, 1, {
      consumerTag: TAG,
      deliveryTag: tag,
      redelivered: false,
      exchange: 'celeryev',
      routingKey: 'task.started',
    }),
    defs.encodeProperties(defs.BasicProperties, 1, body.length, {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      headers: { hostname: 'w1@h' },
      deliveryMode: 1,
      priority: 0,
    }),
    frames.makeBodyFrame(1, body),
  ]);
const read = Buffer.concat(Array.from({ length: 150 }, (_, i) => delivery(i + 1)));
const READS = 4000;

function lean() {
  let n = 0;
  const reader = new DeliveryFrameReader(1, TAG, () => (n += 1));
  for (let k = 0; k < READS; k++) for (let at = 0, used; (used = reader.take(read, at)) > 0;) at += used;
  return n;
}

function amqplibDecode() {
  let n = 0;
  for (let k = 0; k < READS; k++) {
    let rest = read;
    for (let f; (f = frames.parseFrame(rest, 0)); rest = f.rest) if (frames.decodeFrame(f).content) n += 1;
  }
  return n;
}

for (let round = 1; round <= rounds; round++) {
  const line = [];
  for (const [name, run] of [
    ['lean reader', lean],
    ['amqplib parse+decode', amqplibDecode],
  ]) {
    const t0 = process.cpuUsage();
    const n = run();
    const c = process.cpuUsage(t0);
    line.push(`${name} ${(((c.user + c.system) * 1000) / n).toFixed(0)} ns/delivery`);
  }
  console.log(`round ${round}: ${line.join(', ')}`);
}
