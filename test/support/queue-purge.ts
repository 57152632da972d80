import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import type { BrokerUnderTest } from './exporter-scenarios.js';

const run = promisify(execFile);

/**
 * Empties a queue of a suite's isolated broker as an operator would: `rabbitmqctl purge_queue` in
 * its vhost, or DEL of the queue's kombu priority lists under its key prefix (default steps).
 */
export async function purgeQueue(broker: BrokerUnderTest, queue: string): Promise<void> {
  const url = new URL(broker.celery.brokerUrl);
  if (broker.kind === 'amqp') {
    await run('rabbitmqctl', ['-q', '-p', decodeURIComponent(url.pathname.slice(1)), 'purge_queue', queue]);
    return;
  }
  const prefix = String(broker.celery.transportOptions?.global_keyprefix ?? '');
  const redis = new Redis(broker.celery.brokerUrl, { maxRetriesPerRequest: 1 });
  try {
    await redis.del(...['', '\x06\x163', '\x06\x166', '\x06\x169'].map((suffix) => `${prefix}${queue}${suffix}`));
  } finally {
    redis.disconnect();
  }
}
