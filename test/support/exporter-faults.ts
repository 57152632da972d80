import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { createVhost, redisIsolation, uniqueId } from './isolation.js';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import { metricValue, type Sample } from './prom.js';
import { amqpEventPublisher, heartbeat, redisEventPublisher, taskReceived, type RawEventPublisher } from './raw-events.js';
import { TcpProxy } from './tcp-proxy.js';

interface Namespace {
  /** Exporter flags for a broker reached at host:port. */
  args(port: number): string[];
  publisher(): Promise<RawEventPublisher>;
  cleanup(): Promise<void>;
}

async function namespace(kind: 'amqp' | 'redis'): Promise<Namespace> {
  if (kind === 'amqp') {
    const vhost = await createVhost(uniqueId('faults'));
    const path = encodeURIComponent(vhost.vhost);
    return {
      args: (port) => ['--broker-url', `amqp://guest:guest@127.0.0.1:${port}/${path}`],
      publisher: () => amqpEventPublisher(vhost.url),
      cleanup: vhost.remove,
    };
  }
  const iso = redisIsolation('faults');
  return {
    args: (port) => ['--broker-url', `redis://127.0.0.1:${port}/${iso.db}`, '--broker-transport-options-global-keyprefix', iso.keyprefix],
    publisher: async () => redisEventPublisher(iso.url, iso.keyprefix, iso.db),
    cleanup: async () => undefined,
  };
}

/**
 * Bad input and broker faults, end to end through the real broker: every bad message is dropped
 * and counted by reason while the stream goes on; a cut or absent broker never stops /metrics.
 */
export function describeExporterFaults(kind: 'amqp' | 'redis'): void {
  const brokerPort = kind === 'amqp' ? 5672 : 6379;

  describe(`exporter faults on ${kind}`, () => {
    let ns: Namespace;
    let publisher: RawEventPublisher;
    const running: RunningExporter[] = [];
    const proxies: TcpProxy[] = [];

    const start = async (port: number, extra: string[] = []) => {
      const exporter = await startExporter([
        ...ns.args(port),
        '--reconnect-initial-delay-seconds',
        '0.1',
        '--reconnect-max-delay-seconds',
        '0.5',
        '--events-broker-heartbeat-seconds',
        '2',
        ...extra,
      ]);
      running.push(exporter);
      return exporter;
    };
    const proxy = async () => {
      const p = new TcpProxy('127.0.0.1', brokerPort);
      await p.listen();
      proxies.push(p);
      return p;
    };
    const ready = async (e: RunningExporter) => (await e.get('/-/ready')).status;
    const until = async (e: RunningExporter, what: string, condition: (m: Sample[]) => boolean, timeoutMs = 20_000) => {
      let last: Sample[] = [];
      await waitFor(
        what,
        async () => {
          last = await e.scrape();
          return condition(last) ? true : undefined;
        },
        timeoutMs,
        100,
        () =>
          last
            .filter((s) => s.name.startsWith('celery_autopilot_events') || s.name.startsWith('celery_autopilot_broker'))
            .map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`)
            .join('\n'),
      );
      return last;
    };

    beforeAll(async () => {
      ns = await namespace(kind);
      publisher = await ns.publisher();
    });

    afterAll(async () => {
      await Promise.allSettled(running.map((e) => e.stop()));
      await Promise.allSettled(proxies.map((p) => p.close()));
      await publisher?.close();
      await ns?.cleanup();
    });

    it('drops each kind of bad message by reason and keeps consuming', async () => {
      const e = await start(brokerPort);
      await waitFor('ready', async () => ((await ready(e)) === 200 ? true : undefined));
      const sentinel = `celery@after-garbage-${randomUUID().slice(0, 6)}`;
      const bad: Array<[string | Buffer, string, { contentType?: string; contentEncoding?: string }?]> = [
        ['{not json', 'worker.heartbeat'],
        [
          Buffer.from([0x80, 0x04, 0x4b, 0x01, 0x2e]),
          'worker.heartbeat',
          { contentType: 'application/x-python-serialize', contentEncoding: 'binary' },
        ],
        ['type: worker-online', 'worker.online', { contentType: 'application/x-yaml' }],
        [JSON.stringify({ hostname: 'x@y', timestamp: 1, type: 'worker-teleported' }), 'worker.teleported'],
        [JSON.stringify({ hostname: 'x@y', timestamp: 1, type: 'task-started' }), 'task.multi'],
        [JSON.stringify([1, 'x', null, []]), 'task.multi'],
        [
          JSON.stringify({
            hostname: 'x@y',
            type: 'task-failed',
            uuid: 'big',
            timestamp: 1,
            exception: 'E()',
            traceback: 'x'.repeat(2 * 1024 * 1024),
          }),
          'task.multi',
        ],
      ];
      for (const [body, rk, props] of bad) await publisher.publish(body, rk, props);
      // Another Celery version's shape: string timestamp, no clock/utcoffset, unknown extra fields.
      await publisher.publish(
        JSON.stringify({ hostname: 'celery@old', type: 'worker-heartbeat', timestamp: String(Date.now() / 1000), freq: 5, new_field: [1] }),
        'worker.heartbeat',
      );
      if (publisher.publishPayload) {
        await publisher.publishPayload('definitely not an envelope', 'worker.heartbeat');
        await publisher.publishPayload(
          JSON.stringify({
            body: '!!!not base64!!!',
            'content-type': 'application/json',
            'content-encoding': 'utf-8',
            headers: {},
            properties: { body_encoding: 'base64' },
          }),
          'worker.heartbeat',
        );
      }
      await publisher.publish(heartbeat(sentinel), 'worker.heartbeat');

      const m = await until(
        e,
        'the heartbeat sent after the garbage',
        (s) => metricValue(s, 'celery_worker_up', { hostname: sentinel }) === 1,
      );
      const dropped = (reason: string) => metricValue(m, 'celery_autopilot_events_dropped_total', { reason });
      expect(dropped('bad_json')).toBe(1);
      expect(dropped('unsupported_content_type')).toBe(2);
      expect(dropped('unknown_type')).toBe(1);
      expect(dropped('missing_fields')).toBe(1);
      expect(dropped('not_an_event')).toBe(4);
      expect(dropped('oversize')).toBe(1);
      if (kind === 'redis') {
        expect(dropped('bad_envelope')).toBe(1);
        expect(dropped('bad_body_encoding')).toBe(1);
      }
      expect(metricValue(m, 'celery_worker_up', { hostname: 'celery@old' })).toBe(1);
      expect((await e.get('/-/ready')).status).toBe(200);
    });

    it('survives a broker cut mid-stream: /metrics keeps answering, readiness follows, counters are kept', async () => {
      const p = await proxy();
      const e = await start(p.port);
      await waitFor('ready through the proxy', async () => ((await ready(e)) === 200 ? true : undefined));
      const host = `celery@cut-${randomUUID().slice(0, 6)}`;
      for (let i = 0; i < 5; i++) await publisher.publish(JSON.stringify([taskReceived(randomUUID(), 'tasks.before', host)]), 'task.multi');
      await until(e, 'events before the cut', (s) => metricValue(s, 'celery_task_received_total', { name: 'tasks.before' }) === 5);

      p.pause(); // cut every connection and refuse new ones: the broker is gone
      await waitFor('not ready during the outage', async () => ((await ready(e)) === 503 ? true : undefined), 20_000, 100);
      const during = await e.scrape(); // /metrics still answers
      expect(metricValue(during, 'celery_autopilot_broker_connected')).toBe(0);
      expect(metricValue(during, 'celery_task_received_total', { name: 'tasks.before' })).toBe(5);

      p.resume();
      await waitFor('ready again', async () => ((await ready(e)) === 200 ? true : undefined), 20_000, 100);
      for (let i = 0; i < 3; i++) await publisher.publish(JSON.stringify([taskReceived(randomUUID(), 'tasks.after', host)]), 'task.multi');
      const m = await until(
        e,
        'events after reconnecting',
        (s) => metricValue(s, 'celery_task_received_total', { name: 'tasks.after' }) === 3,
      );
      expect(metricValue(m, 'celery_task_received_total', { name: 'tasks.before' })).toBe(5);
      expect(metricValue(m, 'celery_autopilot_broker_reconnects_total')).toBeGreaterThanOrEqual(1);
      expect(metricValue(m, 'celery_autopilot_broker_connected')).toBe(1);
    });

    it('starts with the broker down without hanging, serves /metrics, and connects when it appears', async () => {
      const p = await proxy();
      p.pause();
      const e = await start(p.port);
      expect((await e.get('/metrics')).status).toBe(200);
      expect(await ready(e)).toBe(503);
      expect(metricValue(await e.scrape(), 'celery_autopilot_broker_connected')).toBe(0);
      p.resume();
      await waitFor('connected once the broker is reachable', async () => ((await ready(e)) === 200 ? true : undefined), 20_000, 100);
      const host = `celery@late-${randomUUID().slice(0, 6)}`;
      await publisher.publish(heartbeat(host, 'worker-online'), 'worker.online');
      await until(e, 'an event after the late connect', (s) => metricValue(s, 'celery_worker_up', { hostname: host }) === 1);
    });

    it('keeps series and memory bounded under a flood of task names and hostnames', async () => {
      const e = await start(brokerPort, [
        '--cardinality-max-task-names',
        '50',
        '--cardinality-max-hostnames',
        '20',
        '--cardinality-max-tracked-tasks',
        '1000',
      ]);
      await waitFor('ready', async () => ((await ready(e)) === 200 ? true : undefined));
      const tag = randomUUID().slice(0, 6);
      const total = 3000;
      for (let batch = 0; batch < total / 10; batch++) {
        const events = Array.from({ length: 10 }, (_, j) => {
          const i = batch * 10 + j;
          return taskReceived(randomUUID(), `tasks.flood_${tag}_${i}`, `celery@flood-${tag}-${i}`);
        });
        await publisher.publish(JSON.stringify(events), 'task.multi');
      }
      const m = await until(
        e,
        'the whole flood counted',
        (s) => metricValue(s, 'celery_autopilot_events_received_total', { type: 'task-received' }) === total,
        30_000,
      );
      const series = m.filter((s) => s.name === 'celery_task_received_total');
      expect(series.length).toBeLessThanOrEqual(51 * 21);
      expect(metricValue(m, 'celery_task_received_total')).toBe(total);
      expect(metricValue(m, 'celery_autopilot_tracked_tasks')).toBe(1000);
      expect(metricValue(m, 'celery_autopilot_label_overflow_total', { label: 'name' })).toBe(total - 50);
    });
  });
}
