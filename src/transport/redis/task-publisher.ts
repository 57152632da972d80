import { randomUUID } from 'node:crypto';
import type { Logger } from '../../log.js';
import {
  PUBLISH_TIMEOUT_MS,
  PublishUnavailableError,
  PublishUnconfirmedError,
  publishDeadline,
  type TaskMessage,
  type TaskPublisher,
} from '../task-publisher.js';
import type { RedisServer } from './client-options.js';
import { encodeEnvelope, priorityKeyFor, type RedisLayout } from './keys.js';
import { OnDemandRedis } from './on-demand.js';

/** Task messages to Redis as kombu's virtual channel files them: an envelope LPUSHed to the queue's priority list. */

export class RedisTaskPublisher implements TaskPublisher {
  readonly #redis: OnDemandRedis;

  constructor(
    server: RedisServer,
    private readonly layout: RedisLayout,
    logger: Logger,
  ) {
    this.#redis = new OnDemandRedis(server, { connectionName: 'celery-autopilot-publisher', connectTimeoutMs: PUBLISH_TIMEOUT_MS }, logger);
  }

  async publish(m: TaskMessage): Promise<void> {
    const client = await this.#redis.client().catch((e: Error) => {
      throw new PublishUnavailableError(`cannot reach Redis: ${e.message}`);
    });
    const p = m.properties;
    // kombu's virtual channel: delivery_info, then the priority; Producer added expiration before.
    const envelope = encodeEnvelope({
      body: m.body,
      contentType: m.contentType,
      contentEncoding: m.contentEncoding,
      headers: m.headers,
      properties: {
        correlation_id: p.correlation_id,
        reply_to: p.reply_to,
        delivery_mode: p.delivery_mode,
        ...(p.expiration !== undefined ? { expiration: p.expiration } : {}),
        delivery_info: { exchange: m.exchange, routing_key: m.routingKey },
        priority: p.priority,
      },
      deliveryTag: randomUUID(),
    });
    const key = priorityKeyFor(this.layout, m.routingKey, Math.min(9, p.priority));
    try {
      await publishDeadline(
        client.lpush(key, envelope),
        PUBLISH_TIMEOUT_MS,
        () => new PublishUnconfirmedError('Redis did not answer LPUSH in time; the task may or may not have been queued'),
      );
    } catch (e) {
      if (e instanceof PublishUnconfirmedError) throw e;
      // Without an offline queue, "not writeable" means the command never left; anything else
      // (a connection lost mid-command) may have been written.
      const message = (e as Error).message;
      if (/writeable|not connected|closed/i.test(message) && client.status !== 'ready')
        throw new PublishUnavailableError(`Redis is not reachable: ${message}`);
      throw new PublishUnconfirmedError(`Redis did not confirm the message (${message}); it may or may not have been queued`);
    }
  }

  async close(): Promise<void> {
    this.#redis.close();
  }
}
