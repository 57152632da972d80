import { Socket } from 'node:net';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { AmqpTransport } from '../../src/transport/amqp.js';
import { missingAmqplibInternals } from '../../src/transport/amqp/delivery-frames.js';
import { createTransport } from '../../src/transport/index.js';
import { createVhost, uniqueId } from '../support/isolation.js';
import { RecordingObserver, RecordingSink, waitFor } from '../support/transport-conformance.js';

/**
 * The lean delivery path and read pacing read amqplib's private objects (the connection's `rest`
 * buffer, `recvFrame` and `stream`, the channel's `ch`; src/transport/amqp/delivery-frames.ts).
 * Without them the exporter still works, through amqplib's own message assembly, at about twice
 * the CPU per event. These tests fail on an amqplib upgrade that renames any of them, so the
 * upgrade is noticed in review instead of on the CPU bill.
 */

/** Also records which delivery path the transport reports on each subscribe. */
class DeliveryPathObserver extends RecordingObserver {
  readonly lean: boolean[] = [];
  leanDelivery(active: boolean): void {
    this.lean.push(active);
  }
}

describe('amqplib internals on a real RabbitMQ connection', () => {
  let vhost: Awaited<ReturnType<typeof createVhost>>;

  beforeAll(async () => {
    vhost = await createVhost(uniqueId('amqplib-internals'));
  });
  afterAll(async () => {
    await vhost?.remove();
  });

  it('a connection and a channel have every internal the event path reads', async () => {
    const model = await connect(vhost.url);
    try {
      const channel = await model.createChannel();
      expect(missingAmqplibInternals(model, channel)).toEqual([]);
      // Read pacing pauses this socket's reads: it must be the TCP socket itself.
      expect((model.connection as unknown as { stream: unknown }).stream).toBeInstanceOf(Socket);
    } finally {
      await model.close();
    }
  });

  it('the transport installs the lean path, reports it, and events arrive through it', async () => {
    const { config } = loadConfig({ argv: ['--broker-url', vhost.url], env: {} });
    const observer = new DeliveryPathObserver();
    const sink = new RecordingSink();
    const transport = createTransport(config!, observer, silentLogger());
    expect(transport).toBeInstanceOf(AmqpTransport);
    const publisher = await connect(vhost.url);
    try {
      transport.start(sink);
      await waitFor(() => sink.subscribed === 1 && transport.isConnected(), 'the event subscription');
      expect(observer.lean).toEqual([true]);
      const channel = await publisher.createConfirmChannel();
      const body = Buffer.from(JSON.stringify({ type: 'worker-heartbeat', hostname: 'lean@probe', timestamp: 1, clock: 1 }));
      channel.publish('celeryev', 'worker.heartbeat', body, { contentType: 'application/json', contentEncoding: 'utf-8' });
      await channel.waitForConfirms();
      await waitFor(() => sink.messages.length === 1, 'the event');
      expect((transport as AmqpTransport).leanDeliveries).toBe(1);
    } finally {
      await publisher.close();
      await transport.close();
    }
  });
});
