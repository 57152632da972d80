import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { createTransport } from '../../src/transport/index.js';
import type { BrokerTransport } from '../../src/transport/transport.js';
import { startWorker, type CeleryWorker } from '../support/celery/worker.js';
import { startExporter, waitFor, type RunningExporter } from '../support/exporter.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { metricValue } from '../support/prom.js';
import {
  makeCertificates,
  SERVER_NAME,
  startStunnelForRabbit,
  startTlsRedis,
  type TestCertificates,
  type TlsEndpoint,
} from '../support/tls-endpoints.js';
import { RecordingObserver, RecordingSink } from '../support/transport-conformance.js';

/**
 * Managed-broker TLS (broker_tls) against real endpoints made here: RabbitMQ behind stunnel
 * (amqps://) and a redis-server of its own with a TLS port (rediss://), both presenting a
 * certificate for `broker.test` signed by a CA made at test time and requiring a client
 * certificate. Celery workers reach the same broker over plain TCP; the exporter only over TLS.
 */

interface TlsBroker {
  /** The exporter's URL: TLS, to 127.0.0.1 (so the certificate's name comes from server_name). */
  tlsUrl: string;
  /** Where a Celery worker reaches the same broker (plain). */
  workerUrl: string;
  cleanup(): Promise<void>;
}

async function tlsBroker(kind: 'amqp' | 'redis', certs: TestCertificates): Promise<TlsBroker> {
  if (kind === 'amqp') {
    const vhost = await createVhost(uniqueId('tls'));
    const tunnel: TlsEndpoint = await startStunnelForRabbit(certs);
    return {
      tlsUrl: `amqps://guest:guest@127.0.0.1:${tunnel.port}/${encodeURIComponent(vhost.vhost)}`,
      workerUrl: vhost.url,
      cleanup: async () => {
        await tunnel.stop();
        await vhost.remove();
      },
    };
  }
  const redis = await startTlsRedis(certs);
  return { tlsUrl: `rediss://127.0.0.1:${redis.port}/0`, workerUrl: `redis://127.0.0.1:${redis.plainPort}/0`, cleanup: () => redis.stop() };
}

const tlsArgs = (certs: TestCertificates, overrides: { ca?: string; serverName?: string | null; verify?: boolean } = {}) => [
  '--broker-tls-ca-file',
  overrides.ca ?? certs.caFile,
  '--broker-tls-cert-file',
  certs.clientCert,
  '--broker-tls-key-file',
  certs.clientKey,
  ...(overrides.serverName === null ? [] : ['--broker-tls-server-name', overrides.serverName ?? SERVER_NAME]),
  ...(overrides.verify === false ? ['--broker-tls-verify', 'false'] : []),
];

for (const kind of ['amqp', 'redis'] as const) {
  describe(`broker TLS on ${kind}`, () => {
    let certs: TestCertificates;
    let broker: TlsBroker;
    const transports: BrokerTransport[] = [];

    /** A bare transport built from the config, as the service builds it. */
    const transportWith = (args: string[]) => {
      const { config } = loadConfig({
        argv: ['--broker-url', broker.tlsUrl, '--reconnect-initial-delay-seconds', '0.1', '--reconnect-max-delay-seconds', '0.5', ...args],
        env: {},
      });
      const observer = new RecordingObserver();
      const transport = createTransport(config!, observer, silentLogger());
      transports.push(transport);
      transport.start(new RecordingSink());
      return { transport, observer };
    };
    const firstFailure = (observer: RecordingObserver) =>
      waitFor(
        `a refused ${kind} TLS connection`,
        () => {
          const call = observer.calls.find((c) => c.kind === 'disconnected');
          return call?.kind === 'disconnected' ? call.error : undefined;
        },
        20_000,
      );

    beforeAll(async () => {
      certs = await makeCertificates();
      broker = await tlsBroker(kind, certs);
    });

    afterAll(async () => {
      await Promise.allSettled(transports.map((t) => t.close()));
      await broker?.cleanup();
      await certs?.remove();
    });

    it('with verification on, refuses a broker whose certificate another CA signed, saying to check ca_file', async () => {
      const { transport, observer } = transportWith(tlsArgs(certs, { ca: certs.wrongCaFile }));
      const error = await firstFailure(observer);
      expect(error.message).toMatch(
        /^TLS verification of the broker failed \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY): /,
      );
      expect(error.message).toMatch(/check broker_tls\.ca_file$/);
      expect(observer.count('connected')).toBe(0);
      expect(transport.isConnected()).toBe(false);
    });

    it('refuses a certificate for another name when server_name is not given, saying to check server_name', async () => {
      const { transport, observer } = transportWith(tlsArgs(certs, { serverName: null }));
      const error = await firstFailure(observer);
      expect(error.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID.*check broker_tls\.server_name$/);
      expect(transport.isConnected()).toBe(false);
    });

    it('with verification off, connects even with the wrong CA', async () => {
      const { transport, observer } = transportWith(tlsArgs(certs, { ca: certs.wrongCaFile, verify: false }));
      await waitFor(`${kind} connected without verification`, () => (transport.isConnected() ? true : undefined), 20_000);
      expect(observer.count('connected')).toBe(1);
    });

    describe('a real worker seen and controlled through TLS only', () => {
      let exporter: RunningExporter;
      let worker: CeleryWorker;

      beforeAll(async () => {
        exporter = await startExporter(['--broker-url', broker.tlsUrl, ...tlsArgs(certs), '--metrics-inspect-interval-seconds', '2']);
        await waitFor('exporter ready over TLS', async () => ((await exporter.get('/-/ready')).status === 200 ? true : undefined), 30_000);
        worker = await startWorker({
          brokerUrl: broker.workerUrl,
          nodename: `${uniqueId('tls')}@autopilot-test`,
          queues: ['tlsq'],
          pool: 'solo',
        });
      });

      afterAll(async () => {
        await worker?.stop();
        await exporter?.stop();
      });

      it('receives the worker’s events and discovers its queue by inspecting it', async () => {
        await waitFor(
          'worker up and its queue discovered',
          async () => {
            const samples = await exporter.scrape();
            const up = metricValue(samples, 'celery_worker_up', { hostname: worker.nodename });
            const consumers = metricValue(samples, 'celery_active_worker_count', { queue_name: 'tlsq' });
            return up === 1 && consumers === 1 ? true : undefined;
          },
          45_000,
        );
      });

      it('sends a control command and gets the worker’s reply', async () => {
        const replies = await exporter.service.transport.broadcast(
          { method: 'ping', arguments: {}, destination: [worker.nodename] },
          { reply: true, timeoutMs: 5_000 },
        );
        expect(replies).toEqual([{ worker: worker.nodename, value: { ok: 'pong' } }]);
      });
    });
  });
}
