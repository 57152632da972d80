import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import type { CeleryTarget } from './celery/client.js';
import { createVhost, redisIsolation, uniqueId } from './isolation.js';

const run = promisify(execFile);

export type BrokerKind = 'amqp' | 'redis';

/** One suite's own corner of a shared broker: a RabbitMQ vhost or a Redis key prefix. */
export interface IsolatedBroker {
  kind: BrokerKind;
  /** Flags for the service (broker URL and, on Redis, the key prefix). */
  argv: string[];
  /** How Celery clients and workers reach it. */
  target: Required<Pick<CeleryTarget, 'brokerUrl'>> & { transportOptions?: Record<string, unknown> };
  /** Empties a queue as an operator would (rabbitmqctl purge_queue; DEL of its priority lists). */
  purge(queue: string): Promise<void>;
  remove(): Promise<void>;
}

export async function isolatedBroker(kind: BrokerKind, suite: string): Promise<IsolatedBroker> {
  if (kind === 'amqp') {
    const vhost = await createVhost(uniqueId(suite));
    return {
      kind,
      argv: ['--broker-url', vhost.url],
      target: { brokerUrl: vhost.url },
      purge: async (queue) => {
        await run('rabbitmqctl', ['-q', '-p', vhost.vhost, 'purge_queue', queue]);
      },
      remove: vhost.remove,
    };
  }
  const iso = redisIsolation(suite);
  const withRedis = async (fn: (redis: Redis) => Promise<void>) => {
    const redis = new Redis(iso.url, { maxRetriesPerRequest: 1 });
    try {
      await fn(redis);
    } finally {
      redis.disconnect();
    }
  };
  return {
    kind,
    argv: ['--broker-url', iso.url, '--broker-transport-options-global-keyprefix', iso.keyprefix],
    target: { brokerUrl: iso.url, transportOptions: { global_keyprefix: iso.keyprefix } },
    purge: (queue) =>
      withRedis(async (redis) => {
        // kombu's priority lists: the queue itself and queue\x06\x16<step> (default steps).
        await redis.del(...['', '\x06\x163', '\x06\x166', '\x06\x169'].map((suffix) => `${iso.keyprefix}${queue}${suffix}`));
      }),
    remove: () =>
      withRedis(async (redis) => {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${iso.keyprefix}*`, 'COUNT', 500);
          if (keys.length) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      }),
  };
}
