import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../log.js';
import { asError, withDeadline } from '../async.js';
import { LamportClock, replyLimit, requestExpires } from '../pidbox.js';
import {
  decodePidboxReply,
  encodePidboxRequest,
  pidboxChannel,
  replyBindingKey,
  replyBindingMember,
  replyKeys,
  type RedisLayout,
} from './keys.js';
import type { BroadcastOptions, ControlReply, ControlRequest } from '../transport.js';
import type { ReplyPool } from './reply-pool.js';
import type { RedisSession } from './session.js';

/**
 * Pidbox over Redis (docs/wire-protocol.md §B4): PUBLISH the request on the pidbox channel,
 * collect replies with BRPOP on a per-broadcast reply list (bound through kombu's virtual direct
 * exchange before the request goes out), then delete that reply queue. A cleanup that fails on a
 * dead connection is remembered and retried once the next session is up, so no binding is left
 * behind for workers to route stale replies through.
 */

/** The reply binding member and lists of one broadcast. */
interface ReplyQueue {
  readonly member: string;
  readonly keys: string[];
}

/** One broadcast collecting replies; setting `aborted` (and dropping its client) ends it with what it has. */
interface PendingBroadcast {
  aborted: boolean;
  readonly client: Redis;
  readonly done: Promise<unknown>;
}

/** How much later than a BRPOP's own timeout its answer may come before the connection is judged dead. */
const BRPOP_GRACE_MS = 1_000;
/** Reply queues whose cleanup failed, remembered for the next session (beyond this, left behind). */
const MAX_ORPHANED_REPLY_QUEUES = 1_000;
/** Upper bound on waiting for pending broadcasts' cleanup at close. */
const CLOSE_GRACE_MS = 1_000;

export class RedisPidbox {
  /** kombu's Lamport clock for pidbox requests, advanced by the workers' reply clocks. */
  readonly #clock = new LamportClock();
  readonly #pending = new Set<PendingBroadcast>();
  #orphans: ReplyQueue[] = [];
  /** Redis before 6.0 takes whole seconds only for BRPOP; switched on after the first refusal. */
  #integerBlockingTimeouts = false;

  constructor(
    private readonly layout: RedisLayout,
    private readonly pool: ReplyPool,
    /** The session that is up now, if any: where a deferred cleanup goes. */
    private readonly current: () => RedisSession | undefined,
    private readonly logger: Logger,
  ) {}

  async broadcast(session: RedisSession, request: ControlRequest, options: BroadcastOptions): Promise<ControlReply[]> {
    const base = {
      method: request.method,
      arguments: request.arguments,
      destination: request.destination,
      pattern: request.pattern ?? null,
      matcher: request.matcher ?? null,
      clock: this.#clock.forward(),
      expires: requestExpires(options, Date.now()),
      deliveryTag: randomUUID(),
    };
    const channel = pidboxChannel(this.layout);
    if (!options.reply) {
      await session.command((c) => c.publish(channel, encodePidboxRequest(base)), 'pidbox publish');
      return [];
    }

    const oid = randomUUID();
    const ticket = randomUUID();
    const client = await this.pool.acquire(session);
    let settle!: (value: unknown) => void;
    const pending: PendingBroadcast = { aborted: false, client, done: new Promise((resolve) => (settle = resolve)) };
    this.#pending.add(pending);
    const queue: ReplyQueue = { member: replyBindingMember(this.layout, oid), keys: replyKeys(this.layout, oid) };
    try {
      // The worker routes its reply through this binding: it must exist before the request does.
      await session.command(
        (c) =>
          c
            .pipeline()
            .sadd(replyBindingKey(this.layout), queue.member)
            .publish(channel, encodePidboxRequest({ ...base, reply: { ticket, oid } }))
            .exec()
            .then(throwOnPipelineError),
        'pidbox publish',
      );
      return await this.#collect(pending, queue.keys, ticket, replyLimit(request, options), options.timeoutMs);
    } finally {
      this.#pending.delete(pending);
      this.pool.release(session, client, pending.aborted);
      // #removeReplyQueue keeps what it could not remove for later; it never rejects.
      this.#removeReplyQueue(session, queue).then(
        () => settle(undefined),
        () => settle(undefined),
      );
    }
  }

  /** A new session is up: the reply queues left behind by the last one are removed now. */
  retryCleanup(session: RedisSession): void {
    for (const orphan of this.#orphans.splice(0)) this.#removeReplyQueue(session, orphan).catch(() => undefined);
  }

  /** For close(): pending broadcasts end with the replies they have; their cleanup goes out first. */
  async abortAll(): Promise<void> {
    for (const pending of this.#pending) {
      pending.aborted = true;
      pending.client.disconnect();
    }
    await withDeadline(Promise.allSettled([...this.#pending].map((p) => p.done)), CLOSE_GRACE_MS, 'pidbox cleanup').catch(() => undefined);
  }

  /** kombu's `queue_delete` of the reply queue: SREM the binding, DEL the lists. */
  async #removeReplyQueue(session: RedisSession, queue: ReplyQueue): Promise<void> {
    try {
      const results = await session.commands
        .pipeline()
        .srem(replyBindingKey(this.layout), queue.member)
        .del(...queue.keys)
        .exec();
      throwOnPipelineError(results);
    } catch (error) {
      this.logger.debug({ err: asError(error).message }, 'pidbox reply queue cleanup deferred');
      const current = this.current();
      if (current?.up && current !== session) await this.#removeReplyQueue(current, queue);
      else if (this.#orphans.length < MAX_ORPHANED_REPLY_QUEUES) this.#orphans.push(queue);
    }
  }

  /**
   * kombu's `_collect`: the timeout is an idle timeout, restarted by every reply that answers
   * our ticket. Replies to another ticket on the same list (none, with one oid per broadcast)
   * are skipped.
   */
  async #collect(
    pending: PendingBroadcast,
    keys: string[],
    ticket: string,
    limit: number | undefined,
    idleMs: number,
  ): Promise<ControlReply[]> {
    const replies: ControlReply[] = [];
    let deadline = Date.now() + idleMs;
    while (!pending.aborted && (limit === undefined || replies.length < limit)) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      let popped: Buffer | null;
      try {
        popped = await this.#brpop(pending, keys, remaining);
      } catch (error) {
        if (!pending.aborted) this.logger.warn({ err: asError(error).message }, 'pidbox reply collection cut short');
        pending.aborted = true;
        break;
      }
      if (popped === null) break;
      const reply = decodePidboxReply(popped);
      if (!reply) {
        this.logger.debug('skipping a pidbox reply that is not a kombu envelope with an object body');
        continue;
      }
      if (reply.clock !== undefined) this.#clock.adjust(reply.clock);
      if (reply.ticket !== ticket) continue;
      replies.push(...reply.replies);
      deadline = Date.now() + idleMs;
    }
    return replies;
  }

  /** One BRPOP, guarded by a local timer: a frozen socket must not hold a broadcast forever. */
  async #brpop(pending: PendingBroadcast, keys: string[], remainingMs: number): Promise<Buffer | null> {
    const client = pending.client;
    const timeout = this.#integerBlockingTimeouts
      ? String(Math.max(1, Math.ceil(remainingMs / 1000)))
      : (Math.max(remainingMs, 1) / 1000).toFixed(3);
    const guard = setTimeout(() => {
      pending.aborted = true;
      client.disconnect();
    }, remainingMs + BRPOP_GRACE_MS);
    try {
      const result = await client.brpopBuffer(...keys, timeout);
      return result ? result[1] : null;
    } catch (error) {
      if (!this.#integerBlockingTimeouts && /timeout is not a float|timeout is not an integer/i.test(asError(error).message)) {
        this.#integerBlockingTimeouts = true;
        return this.#brpop(pending, keys, remainingMs);
      }
      throw error;
    } finally {
      clearTimeout(guard);
    }
  }
}

function throwOnPipelineError(results: Array<[Error | null, unknown]> | null): void {
  if (!results) throw new Error('transaction aborted');
  for (const [error] of results) if (error) throw error;
}
