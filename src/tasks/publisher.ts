import { randomUUID } from 'node:crypto';
import { connect, type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { Config } from '../config/load.js';
import type { RedisEndpoint } from '../config/broker-url.js';
import type { Logger } from '../log.js';
import { encodeEnvelope, priorityKeyFor, type RedisLayout } from '../transport/redis-keys.js';
import { OnDemandRedis } from './redis-connection.js';
import type { TaskMessage } from './task-message.js';

/**
 * Publishes task messages on a connection of its own: RabbitMQ advises against publishing on the
 * connection that consumes (flow control on one would stall the other), and the event transport
 * stays untouched. Connects on first use and again after any loss; never queues a message to be
 * sent later, so a failure reported to the caller is never followed by a late delivery.
 */
export interface TaskPublisher {
  /** Resolves once the broker has taken the message (RabbitMQ: publisher confirm; Redis: LPUSH reply). */
  publish(message: TaskMessage): Promise<void>;
  close(): Promise<void>;
}

/** Nothing was sent: the broker could not be reached (→ 503). */
export class PublishUnavailableError extends Error {}
/** Sent, but the broker did not confirm in time: the task may or may not be queued (→ 504). */
export class PublishUnconfirmedError extends Error {}

const TIMEOUT_MS = 5_000;

function deadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function createTaskPublisher(config: Config, logger: Logger): TaskPublisher {
  const broker = config.broker;
  if (broker.kind === 'amqp') return new AmqpTaskPublisher(broker.url.reveal(), config.tasks.submit.create_missing_queues, logger);
  const o = config.broker_transport_options;
  return new RedisTaskPublisher(
    broker,
    o.master_name,
    { globalKeyprefix: o.global_keyprefix, db: broker.db, prioritySteps: [...o.priority_steps], sep: o.sep },
    logger,
  );
}

interface AmqpSession {
  model: ChannelModel;
  channel: ConfirmChannel;
  /** Queues known to exist on this connection. */
  queues: Set<string>;
}

class AmqpTaskPublisher implements TaskPublisher {
  #session: Promise<AmqpSession> | undefined;

  constructor(
    private readonly url: string,
    /** tasks.submit.create_missing_queues: declare a queue that does not exist, as Celery would. */
    private readonly createQueues: boolean,
    private readonly logger: Logger,
  ) {}

  #connect(): Promise<AmqpSession> {
    this.#session ??= (async () => {
      const model = await connect(this.url, {
        timeout: TIMEOUT_MS,
        clientProperties: { connection_name: 'celery-autopilot task publisher' },
      });
      const drop = () => {
        this.#session = undefined;
      };
      model.on('error', (e: Error) => this.logger.warn({ err: e.message }, 'task publisher connection error'));
      model.on('close', drop);
      const channel = await model.createConfirmChannel();
      channel.on('error', (e: Error) => this.logger.warn({ err: e.message }, 'task publisher channel error'));
      channel.on('close', () => {
        drop();
        model.close().catch(() => undefined);
      });
      return { model, channel, queues: new Set<string>() };
    })().catch((e: Error) => {
      this.#session = undefined;
      throw new PublishUnavailableError(`cannot reach RabbitMQ: ${e.message}`);
    });
    return this.#session;
  }

  /**
   * Celery declares a missing queue before publishing (task_create_missing_queues): a durable
   * queue bound to a direct exchange of the same name. Here only with createQueues: otherwise a
   * missing queue refuses the send (nothing is declared, nothing sent). An existing queue is only
   * checked passively, never redeclared, since other arguments (x-max-priority, ...) would be a 406.
   */
  async #ensureQueue(session: AmqpSession, queue: string): Promise<void> {
    if (session.queues.has(queue)) return;
    const probe = await session.model.createChannel();
    probe.on('error', () => undefined); // a passive declare of a missing queue closes its channel
    const exists = await probe.checkQueue(queue).then(
      () => true,
      (e: { code?: number }) => {
        if (e.code === 404) return false;
        throw e;
      },
    );
    if (exists) await probe.close().catch(() => undefined);
    else if (!this.createQueues)
      throw new PublishUnavailableError(`queue '${queue}' does not exist on the broker (tasks.submit.create_missing_queues is off)`);
    else {
      const ch = await session.model.createChannel();
      ch.on('error', () => undefined);
      await ch.assertExchange(queue, 'direct', { durable: true, autoDelete: false });
      await ch.assertQueue(queue, { durable: true, autoDelete: false, exclusive: false });
      await ch.bindQueue(queue, queue, queue);
      await ch.close();
    }
    session.queues.add(queue);
  }

  async publish(m: TaskMessage): Promise<void> {
    const session = await deadline(
      this.#connect(),
      TIMEOUT_MS,
      () => new PublishUnavailableError('RabbitMQ did not accept a connection in time'),
    );
    try {
      await deadline(
        this.#ensureQueue(session, m.routingKey),
        TIMEOUT_MS,
        () => new PublishUnavailableError(`RabbitMQ did not answer for queue '${m.routingKey}' in time`),
      );
    } catch (e) {
      if (e instanceof PublishUnavailableError) throw e;
      throw new PublishUnavailableError(`cannot use queue '${m.routingKey}': ${(e as Error).message}`);
    }
    const p = m.properties;
    const confirmed = new Promise<void>((resolve, reject) => {
      session.channel.publish(
        m.exchange,
        m.routingKey,
        Buffer.from(m.body, 'utf8'),
        {
          contentType: m.contentType,
          contentEncoding: m.contentEncoding,
          headers: m.headers,
          deliveryMode: p.delivery_mode,
          priority: p.priority,
          correlationId: p.correlation_id,
          replyTo: p.reply_to,
          ...(p.expiration !== undefined ? { expiration: p.expiration } : {}),
        },
        (err: unknown) => (err ? reject(new PublishUnconfirmedError('RabbitMQ refused the message (nack)')) : resolve()),
      );
    });
    await deadline(
      confirmed,
      TIMEOUT_MS,
      () => new PublishUnconfirmedError('RabbitMQ did not confirm the message in time; it may or may not have been queued'),
    );
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    if (!session) return;
    const s = await session.catch(() => undefined);
    await s?.model.close().catch(() => undefined);
  }
}

class RedisTaskPublisher implements TaskPublisher {
  readonly #redis: OnDemandRedis;

  constructor(
    endpoint: RedisEndpoint,
    masterName: string | undefined,
    private readonly layout: RedisLayout,
    logger: Logger,
  ) {
    this.#redis = new OnDemandRedis(
      endpoint,
      { connectionName: 'celery-autopilot-publisher', connectTimeoutMs: TIMEOUT_MS, ...(masterName ? { masterName } : {}) },
      logger,
    );
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
      await deadline(
        client.lpush(key, envelope),
        TIMEOUT_MS,
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
