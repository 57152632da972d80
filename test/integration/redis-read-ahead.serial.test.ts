import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { RedisTransport } from '../../src/transport/redis.js';
import { DEFAULT_PRIORITY_STEPS, DEFAULT_SEP, encodeEnvelope, eventChannelPrefix } from '../../src/transport/redis/keys.js';
import type { EventSink } from '../../src/transport/transport.js';
import { redisIsolation, uniqueId } from '../support/isolation.js';
import { heartbeatBody, RecordingObserver, RecordingSink, waitFor } from '../support/transport-conformance.js';

const run = promisify(execFile);

/**
 * Runs alone (the *.serial project): it races a publisher process against our subscriber, and a
 * neighbour suite taking the other core would measure CPU starvation instead of the read-ahead.
 */
describe('Redis read-ahead', () => {
  const iso = redisIsolation('read-ahead');
  const layout = { globalKeyprefix: iso.keyprefix, db: iso.db, prioritySteps: DEFAULT_PRIORITY_STEPS, sep: DEFAULT_SEP };
  const observer = new RecordingObserver();
  const sink = new RecordingSink();
  const transport = new RedisTransport(
    {
      host: '127.0.0.1',
      port: 6379,
      db: iso.db,
      tls: false,
      globalKeyprefix: iso.keyprefix,
      prioritySteps: DEFAULT_PRIORITY_STEPS,
      sep: DEFAULT_SEP,
      maxMessageBytes: 1024 * 1024,
      healthCheckSeconds: 5,
      reconnect: { initialMs: 50, maxMs: 500 },
      connectTimeoutMs: 2000,
      readPacingMs: 50,
      clientName: uniqueId('cap-read-ahead'),
    },
    observer,
    silentLogger(),
  );

  afterAll(async () => {
    await transport.close();
  });

  it("a burst larger than Redis's 32 MB pub/sub buffer reaches a slower subscriber whole and in order", async () => {
    // A subscriber that needs 400 µs per message (2.5k/s): far behind the publisher below.
    const slow: EventSink = {
      onEvents: (m) => {
        const until = performance.now() + 0.4;
        while (performance.now() < until);
        sink.onEvents(m);
      },
      onDrop: (reason) => sink.onDrop(reason),
      onSubscribed: () => sink.onSubscribed(),
    };
    transport.start(slow);
    await waitFor(() => sink.subscribed >= 1 && transport.isConnected(), 'first subscription');
    // 100k Celery-sized envelopes (~58 MB) from another process at 10k/s: reading that is easy
    // (only a stall of over 5 s would fill Redis's buffer), processing it is not. Processed
    // inline, 7.5k messages a second pile up in Redis's buffer for this subscriber, which Redis
    // closes at 32 MB (after ~7 s), and the rest is lost.
    const total = 100_000;
    const perSecond = 10_000;
    const envelope = encodeEnvelope({
      body: '__BODY__',
      headers: { hostname: 'burst@test' },
      properties: { delivery_mode: 1, delivery_info: { exchange: 'celeryev', routing_key: 'worker.heartbeat' }, priority: 0 },
      deliveryTag: randomUUID(),
    }).replace(Buffer.from('__BODY__').toString('base64'), '__BODY__');
    const script = `
      import { Redis } from 'ioredis';
      const r = new Redis(process.env.URL);
      const start = Date.now();
      for (let sent = 0; sent < ${total};) {
        const p = r.pipeline();
        for (let i = 0; i < 500; i++, sent++) {
          const body = Buffer.from(process.env.BODY.replace('__N__', String(sent))).toString('base64');
          p.publish(process.env.CHANNEL, process.env.ENVELOPE.replace('__BODY__', body));
        }
        await p.exec();
        const ahead = start + (sent / ${perSecond}) * 1000 - Date.now();
        if (ahead > 0) await new Promise((resolve) => setTimeout(resolve, ahead));
      }
      r.disconnect();`;
    await run(process.execPath, ['--input-type=module', '-e', script], {
      env: {
        ...process.env,
        URL: iso.url,
        CHANNEL: `${eventChannelPrefix(layout)}worker.heartbeat`,
        ENVELOPE: envelope,
        BODY: heartbeatBody('burst-__N__'),
      },
    });
    await waitFor(() => sink.messages.length >= total || observer.count('disconnected') > 0, `${total} events`, 60_000);
    const why = observer.calls.flatMap((c) => (c.kind === 'disconnected' ? [c.error.message] : []));
    expect({ disconnected: why, received: sink.messages.length }).toEqual({ disconnected: [], received: total });
    const order = sink.bodies().map((b) => Number(/"burst-(\d+)@/.exec(b)?.[1]));
    expect(order.findIndex((n, i) => n !== i)).toBe(-1);
  });
});
