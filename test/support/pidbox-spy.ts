import { randomUUID } from 'node:crypto';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { DEFAULT_PRIORITY_STEPS, DEFAULT_SEP, decodeEnvelope, encodePidboxRequest, pidboxChannel } from '../../src/transport/redis/keys.js';
import { waitFor } from './exporter.js';

/** One pidbox request as it crossed the broker, whoever sent it. */
export interface SpiedCommand {
  readonly method: string;
  readonly destination: readonly string[] | null;
  readonly pattern: string | null;
  readonly arguments: Readonly<Record<string, unknown>>;
  /** Present when the sender waits for replies. */
  readonly ticket: string | undefined;
  /** Position in the spy's record, for `since(mark)`. */
  readonly seq: number;
}

/**
 * Listens on the pidbox the way a worker does, on the broker itself (not through the service),
 * and records every control command that was really published: the proof that a refused
 * request sent nothing, or that a command went out exactly once.
 */
export interface PidboxSpy {
  /** Everything seen so far, in broker order. */
  readonly commands: readonly SpiedCommand[];
  /** A position to take `since` from. */
  mark(): number;
  /**
   * Commands seen after `mark`. By default without the service's own background traffic (see
   * `isBackground`); `{ all: true }` keeps it.
   */
  since(mark: number, options?: { all?: boolean }): SpiedCommand[];
  /**
   * Publishes a command addressed to nobody and waits until the spy sees it: whatever was
   * published before the call has then been delivered to the spy too, so an empty `since` means
   * nothing was sent, not "not yet".
   */
  barrier(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * What the service sends on its own, whatever the test does: the wake-up `heartbeat` to every
 * worker after (re)subscribing, the worker inspector's `stats` / `active_queues` and the periodic
 * `enable_events` (events.enable_events), which always name their workers. Any other command is
 * something a request caused.
 */
export function isBackground(c: SpiedCommand): boolean {
  if (c.method === 'heartbeat' && c.destination === null) return true;
  return (
    (c.method === 'stats' || c.method === 'active_queues' || c.method === 'enable_events') &&
    c.destination !== null &&
    c.destination.length > 0
  );
}

/** Barrier commands go to a node name no worker has, so every worker ignores them. */
const BARRIER_HOST = 'pidbox-spy.invalid';

type Target = { kind: 'amqp'; url: string } | { kind: 'redis'; url: string; keyprefix: string; db?: number };

export async function startPidboxSpy(target: Target): Promise<PidboxSpy> {
  const commands: SpiedCommand[] = [];
  const barriersSeen = new Set<string>();

  const record = (body: unknown): void => {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
    const b = body as Record<string, unknown>;
    const destination = Array.isArray(b.destination) ? b.destination.map(String) : null;
    const barrier = destination?.length === 1 && destination[0]!.endsWith(`@${BARRIER_HOST}`) ? destination[0] : undefined;
    if (barrier) {
      barriersSeen.add(barrier);
      return;
    }
    commands.push({
      method: String(b.method),
      destination,
      pattern: typeof b.pattern === 'string' ? b.pattern : null,
      arguments: typeof b.arguments === 'object' && b.arguments !== null ? (b.arguments as Record<string, unknown>) : {},
      ticket: typeof b.ticket === 'string' ? b.ticket : undefined,
      seq: commands.length,
    });
  };
  const parse = (bytes: Buffer): unknown => {
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch {
      return undefined;
    }
  };

  let publishBarrier: (node: string) => Promise<void>;
  let close: () => Promise<void>;

  if (target.kind === 'amqp') {
    const connection = await amqp.connect(target.url);
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    // Declared exactly as kombu declares it (a mismatch would be a 406 that closes the channel).
    await channel.assertExchange('celery.pidbox', 'fanout', { durable: false, autoDelete: false });
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
    await channel.bindQueue(queue, 'celery.pidbox', '');
    await channel.consume(queue, (message) => message && record(parse(message.content)), { noAck: true });
    publishBarrier = async (node) => {
      const body = { method: 'ping', arguments: {}, destination: [node], pattern: null, matcher: null };
      channel.publish('celery.pidbox', '', Buffer.from(JSON.stringify(body)), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        headers: { clock: 0, expires: 0 },
      });
    };
    close = async () => {
      await connection.close().catch(() => undefined);
    };
  } else {
    const layout = { globalKeyprefix: target.keyprefix, db: target.db ?? 0, prioritySteps: DEFAULT_PRIORITY_STEPS, sep: DEFAULT_SEP };
    const channelName = pidboxChannel(layout);
    const subscriber = new Redis(target.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    const publisher = new Redis(target.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    subscriber.on('error', () => undefined);
    publisher.on('error', () => undefined);
    await Promise.all([subscriber.connect(), publisher.connect()]);
    subscriber.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, payload: Buffer) => {
      const envelope = decodeEnvelope(payload);
      if (typeof envelope !== 'string') record(parse(envelope.body));
    });
    // Workers PSUBSCRIBE even to this exact name (kombu fanout); glob characters are escaped.
    await subscriber.psubscribe(channelName.replace(/[*?[\]\\]/g, '\\$&'));
    publishBarrier = async (node) => {
      const payload = encodePidboxRequest({
        method: 'ping',
        arguments: {},
        destination: [node],
        pattern: null,
        matcher: null,
        clock: 0,
        expires: 0,
        deliveryTag: randomUUID(),
      });
      await publisher.publish(channelName, payload);
    };
    close = async () => {
      subscriber.disconnect();
      publisher.disconnect();
    };
  }

  return {
    commands,
    mark: () => commands.length,
    since: (mark, options = {}) => commands.slice(mark).filter((c) => options.all || !isBackground(c)),
    barrier: async (timeoutMs = 10_000) => {
      const node = `barrier-${randomUUID()}@${BARRIER_HOST}`;
      await publishBarrier(node);
      await waitFor('the pidbox spy to see its own barrier', () => (barriersSeen.has(node) ? true : undefined), timeoutMs, 10);
    },
    close,
  };
}

/** `method → destination` lines, for readable assertion failures. */
export function describeCommands(commands: readonly SpiedCommand[]): string {
  return commands.map((c) => `${c.method} → ${c.destination ? c.destination.join(',') : `pattern ${c.pattern ?? '*'}`}`).join('\n');
}
