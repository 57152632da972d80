import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { createRemediationState } from '../../src/remediation/wiring.js';
import { createResultBackend, createTaskPublisher, type TaskPublisher } from '../../src/tasks/index.js';
import type { ResultBackend } from '../../src/tasks/result-backend.js';
import { buildTaskMessage } from '../../src/tasks/task-message.js';
import { brokerConnections } from '../../src/transport/index.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { waitFor } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import {
  issueServerCertificate,
  makeCertificates,
  SERVER_NAME,
  startStunnelForRabbit,
  startTlsRedis,
  type TestCertificates,
  type TlsEndpoint,
} from '../support/tls-endpoints.js';

/**
 * Task submission, result reads and shared remediation state reach a managed broker the way
 * events and control do: over TLS with the private CA, the client certificate and the server
 * name of `broker_tls`. The
 * brokers here accept nothing else (RabbitMQ behind stunnel, a redis-server of its own, both
 * requiring a client certificate for `broker.test` signed by a CA made at test time); the Celery
 * worker that runs the task reaches the same brokers over plain TCP.
 */

const tlsArgs = (certs: TestCertificates, ca = certs.caFile) => [
  '--broker-tls-ca-file',
  ca,
  '--broker-tls-cert-file',
  certs.clientCert,
  '--broker-tls-key-file',
  certs.clientKey,
  '--broker-tls-server-name',
  SERVER_NAME,
];

for (const kind of ['amqp', 'redis'] as const) {
  describe(`task submission and results over TLS on ${kind}`, () => {
    let certs: TestCertificates;
    /** Celery's result backend, and the broker itself on redis. */
    let redis: TlsEndpoint;
    let cleanup: Array<() => Promise<unknown>> = [];
    let worker: CeleryWorker;
    let tlsBrokerUrl: string;
    const queue = uniqueId('tlsq');

    const configWith = (args: string[]): Config => {
      const { config } = loadConfig({
        argv: ['--broker-url', tlsBrokerUrl, '--tasks-result-backend', `rediss://127.0.0.1:${redis.port}/1`, ...args],
        env: {},
      });
      return config!;
    };
    const opened = <T extends { close(): unknown }>(thing: T): T => {
      cleanup.push(async () => thing.close());
      return thing;
    };
    const addMessage = (id: string) =>
      buildTaskMessage({
        id,
        name: 'tasks.add',
        args: [20, 22],
        kwargs: {},
        queue,
        priority: 0,
        origin: 'gen1@tls-test',
        replyTo: randomUUID(),
        now: new Date(),
      });

    beforeAll(async () => {
      certs = await makeCertificates();
      redis = await startTlsRedis(certs);
      cleanup.push(() => redis.stop());
      let workerBrokerUrl = `redis://127.0.0.1:${redis.plainPort}/0`;
      tlsBrokerUrl = `rediss://127.0.0.1:${redis.port}/0`;
      if (kind === 'amqp') {
        const vhost = await createVhost(uniqueId('tls-tasks'));
        const tunnel = await startStunnelForRabbit(certs);
        cleanup.push(
          () => vhost.remove(),
          () => tunnel.stop(),
        );
        workerBrokerUrl = vhost.url;
        tlsBrokerUrl = `amqps://guest:guest@127.0.0.1:${tunnel.port}/${encodeURIComponent(vhost.vhost)}`;
      }
      worker = await startWorker({
        brokerUrl: workerBrokerUrl,
        nodename: `${uniqueId('tls-tasks')}@autopilot-test`,
        queues: [queue],
        pool: 'solo',
        env: { CAP_RESULT_BACKEND: `redis://127.0.0.1:${redis.plainPort}/1` },
      });
      cleanup.push(() => worker.stop());
    });

    afterAll(async () => {
      // Last opened, first closed: the worker before its broker, the broker before the certificates.
      for (const step of cleanup.reverse()) await step().catch(() => undefined);
      cleanup = [];
      await certs?.remove();
    });

    it('publishes a task the worker runs, and reads its result, with the CA, client certificate and name of broker_tls', async () => {
      const config = configWith(tlsArgs(certs));
      const publisher: TaskPublisher = opened(createTaskPublisher(config, silentLogger()));
      const results: ResultBackend = opened(createResultBackend(config, silentLogger())!);
      const id = randomUUID();
      await publisher.publish(addMessage(id));
      const meta = await waitFor(
        'the result over TLS',
        async () => {
          const m = await results.get(id);
          return m?.status === 'SUCCESS' ? m : undefined;
        },
        30_000,
      );
      expect(meta).toMatchObject({ status: 'SUCCESS', result: 42, task_id: id });
      expect(await results.getMany([id, randomUUID()])).toEqual([expect.objectContaining({ status: 'SUCCESS' }), null]);
    });

    it('refuses to send or read through a broker whose certificate another CA signed (verification is on)', async () => {
      const config = configWith(tlsArgs(certs, certs.wrongCaFile));
      const publisher = opened(createTaskPublisher(config, silentLogger()));
      const results = opened(createResultBackend(config, silentLogger())!);
      await expect(publisher.publish(addMessage(randomUUID()))).rejects.toThrow(/TLS verification of the broker failed.*ca_file/);
      await expect(results.get(randomUUID())).rejects.toThrow(/TLS verification of the broker failed.*ca_file/);
    });

    it("reads results from a Redis on another host with that host's own certificate: broker_tls.server_name names the broker only", async () => {
      const own = await issueServerCertificate(certs, 'results-elsewhere', 'DNS:localhost');
      const elsewhere = await startTlsRedis(certs, own);
      cleanup.push(() => elsewhere.stop());
      const { config } = loadConfig({
        argv: ['--broker-url', tlsBrokerUrl, '--tasks-result-backend', `rediss://localhost:${elsewhere.port}/1`, ...tlsArgs(certs)],
        env: {},
      });
      const results = opened(createResultBackend(config!, silentLogger())!);
      // Written as a Celery worker's result backend would, through the server's plain port.
      const id = randomUUID();
      const plain = new Redis({ host: '127.0.0.1', port: elsewhere.plainPort!, db: 1, lazyConnect: true });
      cleanup.push(async () => plain.disconnect());
      await plain.connect();
      const meta = { status: 'SUCCESS', result: 42, traceback: null, children: [], date_done: new Date().toISOString(), task_id: id };
      await plain.set(`celery-task-meta-${id}`, JSON.stringify(meta));
      expect(await results.get(id)).toMatchObject({ status: 'SUCCESS', result: 42, task_id: id });
    });

    it('keeps shared remediation state in the Redis of state_redis_url over the same TLS', async () => {
      const prefix = `${uniqueId('tls-state')}:`;
      const config = configWith([
        ...tlsArgs(certs),
        '--remediation-state-redis-url',
        `rediss://127.0.0.1:${redis.port}/2`,
        '--remediation-state-key-prefix',
        prefix,
      ]);
      const shared = opened(
        createRemediationState(config.remediation, brokerConnections(config), {
          now: () => Date.now(),
          onEvict: () => undefined,
          logger: silentLogger(),
        }),
      );
      // The client connects in the background and queues nothing meanwhile: retry until it is up.
      await waitFor(
        'shared state written over TLS',
        () =>
          shared.state.put('probe', 'over-tls', 60_000).then(
            () => true,
            () => undefined,
          ),
        20_000,
      );
      expect(await shared.state.get('probe')).toBe('over-tls');
      const plain = new Redis({ host: '127.0.0.1', port: redis.plainPort!, db: 2, lazyConnect: true });
      cleanup.push(async () => plain.disconnect());
      await plain.connect();
      expect(await plain.get(`${prefix}probe`)).toBe('over-tls');
    });
  });
}
