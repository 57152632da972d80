import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { AmqpServer } from '../connections.js';
import { explainTlsError } from '../tls.js';
import {
  PUBLISH_TIMEOUT_MS,
  PublishUnavailableError,
  PublishUnconfirmedError,
  publishDeadline,
  type TaskMessage,
  type TaskPublisher,
} from '../task-publisher.js';
import type { Logger } from '../../log.js';
import { closeModel, openConnection } from './connection.js';

/** Task messages to RabbitMQ, with publisher confirms, on a connection of their own. */

interface AmqpSession {
  model: ChannelModel;
  channel: ConfirmChannel;
  /** Queues known to exist on this connection. */
  queues: Set<string>;
}

export class AmqpTaskPublisher implements TaskPublisher {
  #session: Promise<AmqpSession> | undefined;

  constructor(
    private readonly server: AmqpServer,
    /** tasks.submit.create_missing_queues: declare a queue that does not exist, as Celery would. */
    private readonly createQueues: boolean,
    private readonly logger: Logger,
  ) {}

  #connect(): Promise<AmqpSession> {
    this.#session ??= (async () => {
      const model = await openConnection({
        ...this.server,
        connectTimeoutMs: PUBLISH_TIMEOUT_MS,
        connectionName: 'celery-autopilot task publisher',
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
      throw new PublishUnavailableError(`cannot reach RabbitMQ: ${explainTlsError(e).message}`);
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
    const session = await publishDeadline(
      this.#connect(),
      PUBLISH_TIMEOUT_MS,
      () => new PublishUnavailableError('RabbitMQ did not accept a connection in time'),
    );
    try {
      await publishDeadline(
        this.#ensureQueue(session, m.routingKey),
        PUBLISH_TIMEOUT_MS,
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
    await publishDeadline(
      confirmed,
      PUBLISH_TIMEOUT_MS,
      () => new PublishUnconfirmedError('RabbitMQ did not confirm the message in time; it may or may not have been queued'),
    );
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    if (!session) return;
    const s = await session.catch(() => undefined);
    if (s) await closeModel(s.model);
  }
}
