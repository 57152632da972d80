import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTasks } from './celery/client.js';
import { startWorker, type CeleryWorker } from './celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from './exporter.js';
import { isolatedBroker, type BrokerUnderTest } from './exporter-scenarios.js';
import { metricValue, workerAndQueueFigures as figures, type Sample } from './prom.js';
import { TcpProxy } from './tcp-proxy.js';

const BROKER_PORT = { amqp: 5672, redis: 6379 } as const;
/** How late the broker's answers reach the exporter once the consumer is killed. */
const REPLY_DELAY_MS = 2000;
/** Scrapes checked after the first one that shows the worker down. */
const LATER_SCRAPES = 3;

/** The exporter flags of `broker`, with its broker URL pointed at the proxy. */
function throughProxy(broker: BrokerUnderTest, proxyPort: number): string[] {
  const args = [...broker.exporterArgs];
  const i = args.indexOf('--broker-url');
  const url = new URL(args[i + 1]!);
  url.port = String(proxyPort);
  args[i + 1] = url.toString();
  return args;
}

/**
 * One scrape, one moment, on one broker, with a real Celery 5.2.6 worker: its only consumer of a queue is
 * SIGKILLed while tasks keep arriving and the broker answers the exporter ~2 s late (a TCP proxy
 * holds back every byte from the broker, so each depth read takes that long). In the very first
 * scrape that shows the worker down, and in every scrape after it, the queue has 0 workers, 0
 * processes, 0 consumers (RabbitMQ's own count; Redis has none) and a length.
 */
export function describeScrapeMoment(kind: 'amqp' | 'redis'): void {
  describe(`one moment per scrape on ${kind}, with a broker that answers slowly`, () => {
    let broker: BrokerUnderTest;
    let proxy: TcpProxy;
    let exporter: RunningExporter;
    const workers: CeleryWorker[] = [];

    beforeAll(async () => {
      broker = await isolatedBroker(kind, 'moment');
      proxy = new TcpProxy('127.0.0.1', BROKER_PORT[kind]);
      await proxy.listen();
      exporter = await startExporter([
        ...throughProxy(broker, proxy.port),
        '--metrics-inspect-interval-seconds',
        '2',
        // A fixed liveness window: the kill shows within seconds, and a heartbeat a little late
        // on a busy machine does not look like a death before it.
        '--metrics-worker-timeout-seconds',
        '5',
        // Above the proxy's delay (RabbitMQ: a channel open and one passive declare, each delayed).
        '--metrics-queue-length-timeout-seconds',
        '12',
      ]);
      await waitFor('exporter ready', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 20_000);
    });

    afterAll(async () => {
      await Promise.allSettled(workers.map((w) => w.stop()));
      await exporter?.stop();
      await proxy?.close();
      await broker?.cleanup();
    });

    it('the first scrape after its only consumer was SIGKILLed shows the queue with 0 workers, consumers and processes, and its length', async () => {
      const queue = 'mq';
      const victim = await startWorker({
        brokerUrl: broker.celery.brokerUrl,
        transportOptions: broker.celery.transportOptions,
        nodename: `moment-${randomUUID().slice(0, 6)}@autopilot-test`,
        queues: [queue],
        pool: 'solo',
      });
      workers.push(victim);
      let last: Sample[] = [];
      const scrape = async () => (last = await exporter.scrape());
      const seen = () => JSON.stringify(figures(last, victim.nodename, queue));
      await waitFor(
        'the victim up and consuming mq in one scrape',
        async () => {
          const f = figures(await scrape(), victim.nodename, queue);
          const consumers = kind === 'amqp' ? f.consumers === 1 : f.consumers === undefined;
          return f.up === 1 && f.workers === 1 && f.processes === 1 && consumers && f.length !== undefined ? true : undefined;
        },
        40_000,
        250,
        seen,
      );

      // Tasks keep arriving (from a client on the broker itself, not through the proxy).
      let feeding = true;
      const feeder = (async () => {
        while (feeding) {
          await sendTasks(broker.celery, [{ name: 'tasks.noop', queue }]);
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      try {
        await victim.waitForLog(/Task tasks\.noop\[[^\]]+\] succeeded/, 30_000);
        proxy.delayReplies(REPLY_DELAY_MS);
        victim.kill('SIGKILL');
        await victim.exited;

        const down = await waitFor(
          'a scrape that shows the victim down',
          async () => (figures(await scrape(), victim.nodename, queue).up === 0 ? last : undefined),
          60_000,
          100,
          seen,
        );
        const expected = { up: 0, workers: 0, processes: 0, consumers: kind === 'amqp' ? 0 : undefined };
        const { length, ...first } = figures(down, victim.nodename, queue);
        expect(first, 'the first scrape with celery_worker_up 0').toEqual(expected);
        expect(length, 'celery_queue_length in that scrape').toBeGreaterThanOrEqual(0);
        for (let i = 1; i <= LATER_SCRAPES; i++) {
          const m = await scrape();
          const { length: later, ...rest } = figures(m, victim.nodename, queue);
          expect(rest, `scrape ${i} after it`).toEqual(expected);
          expect(later, `celery_queue_length in scrape ${i} after it`).toBeGreaterThanOrEqual(0);
          // The first scrape after the kill asked the broker again (who consumes mq changed) and
          // waited for its slow answer: the delay was in force when it mattered.
          if (i === 1) expect(metricValue(m, 'celery_autopilot_scrape_duration_seconds')).toBeGreaterThanOrEqual(REPLY_DELAY_MS / 1000);
        }
      } finally {
        feeding = false;
        await feeder;
      }
    });
  });
}
