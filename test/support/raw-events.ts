import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { encodeEnvelope, eventChannelPrefix, DEFAULT_PRIORITY_STEPS, DEFAULT_SEP } from '../../src/transport/redis/keys.js';

/**
 * Publishes onto the Celery event exchange exactly as a worker would (or as a broken one would),
 * with a plain client of its own: the exporter under test sees it as real broker traffic.
 */
export interface RawEventPublisher {
  publish(body: Buffer | string, routingKey: string, props?: { contentType?: string; contentEncoding?: string }): Promise<void>;
  /** Redis only: a PUBLISH payload that is not a kombu envelope at all. */
  publishPayload?(payload: string, routingKey: string): Promise<void>;
  close(): Promise<void>;
}

export async function amqpEventPublisher(url: string): Promise<RawEventPublisher> {
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  await channel.assertExchange('celeryev', 'topic', { durable: true, autoDelete: false });
  return {
    publish: async (body, routingKey, props = {}) => {
      channel.publish('celeryev', routingKey, Buffer.isBuffer(body) ? body : Buffer.from(body), {
        contentType: props.contentType ?? 'application/json',
        contentEncoding: props.contentEncoding ?? 'utf-8',
        deliveryMode: 1,
        headers: { hostname: 'raw@test' },
      });
      await channel.waitForConfirms();
    },
    close: async () => {
      await connection.close().catch(() => undefined);
    },
  };
}

export function redisEventPublisher(url: string, keyprefix: string, db = 0): RawEventPublisher {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2 });
  const prefix = eventChannelPrefix({ globalKeyprefix: keyprefix, db, prioritySteps: DEFAULT_PRIORITY_STEPS, sep: DEFAULT_SEP });
  return {
    publish: async (body, routingKey, props = {}) => {
      const envelope = encodeEnvelope({
        body,
        ...(props.contentType !== undefined ? { contentType: props.contentType } : {}),
        ...(props.contentEncoding !== undefined ? { contentEncoding: props.contentEncoding } : {}),
        headers: { hostname: 'raw@test' },
        properties: { delivery_mode: 1, delivery_info: { exchange: 'celeryev', routing_key: routingKey }, priority: 0 },
        deliveryTag: randomUUID(),
      });
      await client.publish(prefix + routingKey, envelope);
    },
    publishPayload: async (payload, routingKey) => {
      await client.publish(prefix + routingKey, payload);
    },
    close: async () => {
      client.disconnect();
    },
  };
}

/** A worker-heartbeat body as Celery 5.2.6 sends it. */
export function heartbeat(hostname: string, type: 'worker-online' | 'worker-heartbeat' | 'worker-offline' = 'worker-heartbeat'): string {
  return JSON.stringify({
    hostname,
    utcoffset: 0,
    pid: 1,
    clock: 1,
    freq: 2.0,
    active: 0,
    processed: 0,
    loadavg: [0.1, 0.1, 0.1],
    sw_ident: 'py-celery',
    sw_ver: '5.2.6',
    sw_sys: 'Linux',
    timestamp: Date.now() / 1000,
    type,
  });
}

export function taskReceived(uuid: string, name: string, hostname: string): Record<string, unknown> {
  return {
    hostname,
    utcoffset: 0,
    pid: 1,
    clock: 1,
    uuid,
    name,
    args: '()',
    kwargs: '{}',
    root_id: uuid,
    parent_id: null,
    retries: 0,
    eta: null,
    expires: null,
    timestamp: Date.now() / 1000,
    type: 'task-received',
  };
}
