import { PIDBOX_EXCHANGE, pidboxRequestBody, REPLY_EXCHANGE } from '../pidbox.js';

/**
 * kombu 5.2's Redis layout (docs/wire-protocol.md §A2, §B4, §C2, §E) as pure functions: channel and key
 * names, the reply binding, and the JSON envelope kombu wraps every message in. The transport
 * in redis.ts only moves bytes; every name it uses comes from here.
 */

/** Where kombu's Redis transport puts things; all three are Celery `broker_transport_options`. */
export interface RedisLayout {
  /** `global_keyprefix`: prepended to every key, channel and pattern, never to binding members. */
  readonly globalKeyprefix: string;
  readonly db: number;
  /** `priority_steps`, strictly increasing (kombu default `[0, 3, 6, 9]`). */
  readonly prioritySteps: readonly number[];
  /** `sep` (kombu default `'\x06\x16'`). */
  readonly sep: string;
}

export const DEFAULT_PRIORITY_STEPS: readonly number[] = [0, 3, 6, 9];
export const DEFAULT_SEP = '\x06\x16';

/** kombu's `keyprefix_fanout` with `fanout_prefix=True`, global prefix in front: `pfx:/0.`. */
function fanoutPrefix(layout: RedisLayout): string {
  return `${layout.globalKeyprefix}/${layout.db}.`;
}

/** Everything before the routing key on an event channel: `pfx:/0.celeryev/`. */
export function eventChannelPrefix(layout: RedisLayout): string {
  return `${fanoutPrefix(layout)}celeryev/`;
}

/**
 * Celery's receiver binds `#`, which kombu turns into the glob `*`. PSUBSCRIBE patterns are
 * globs, so glob characters in the global prefix are escaped to match only themselves (kombu
 * does not escape them; for every prefix without `*?[]\\` the pattern is byte-identical).
 */
export function eventChannelPattern(layout: RedisLayout): string {
  return `${eventChannelPrefix(layout).replace(/[*?[\]\\]/g, '\\$&')}*`;
}

/** The pidbox fanout has no routing key, so the channel carries no `/<key>` suffix. */
export function pidboxChannel(layout: RedisLayout): string {
  return `${fanoutPrefix(layout)}${PIDBOX_EXCHANGE}`;
}

/**
 * The lists one kombu queue spreads over, in priority-step order: kombu's `_q_for_pri` for
 * every step, so step 0 is the bare name and any other step is `name + sep + step`. These are
 * the keys kombu's `_size()` counts and its BRPOP watches.
 */
export function priorityKeys(layout: RedisLayout, queue: string): string[] {
  return layout.prioritySteps.map((step) => layout.globalKeyprefix + (step === 0 ? queue : `${queue}${layout.sep}${step}`));
}

/**
 * The list a message of priority `priority` (0-9) is LPUSHed onto: the highest step not above
 * it (kombu's `priority()` with bisect), which with the default steps puts 5 under 3.
 */
export function priorityKeyFor(layout: RedisLayout, queue: string, priority: number): string {
  const steps = layout.prioritySteps;
  let chosen = steps[steps.length - 1] ?? 0;
  for (let i = steps.length - 1; i >= 0; i--) {
    if (steps[i]! <= priority) {
      chosen = steps[i]!;
      break;
    }
  }
  return layout.globalKeyprefix + (chosen === 0 ? queue : `${queue}${layout.sep}${chosen}`);
}

/** The reply queue of one broadcast: a plain list named after the oid. */
export function replyQueueName(oid: string): string {
  return `${oid}.${REPLY_EXCHANGE}`;
}

/** The lists a worker may LPUSH a reply onto (it uses the bare one; kombu watches all). */
export function replyKeys(layout: RedisLayout, oid: string): string[] {
  return priorityKeys(layout, replyQueueName(oid));
}

/** The set a worker reads to route a reply through the virtual direct exchange. */
export function replyBindingKey(layout: RedisLayout): string {
  return `${layout.globalKeyprefix}_kombu.binding.${REPLY_EXCHANGE}`;
}

/**
 * kombu's binding member `routing_key + sep + pattern + sep + queue` (pattern empty for a direct
 * exchange). Unprefixed: the global prefix applies to keys, not to set members.
 */
export function replyBindingMember(layout: RedisLayout, oid: string): string {
  return `${oid}${layout.sep}${layout.sep}${replyQueueName(oid)}`;
}

// ---------------------------------------------------------------------------------------------
// The kombu envelope

/** A decoded kombu envelope: the body is unwrapped from its base64 transfer encoding. */
export interface KombuEnvelope {
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
  readonly headers: Readonly<Record<string, unknown>>;
  readonly properties: Readonly<Record<string, unknown>>;
  readonly body: Buffer;
}

export type EnvelopeError = 'bad_envelope' | 'bad_body_encoding';

/**
 * Unwraps one PUBLISH/LPUSH payload. A full JSON.parse is the fast path here: measured on the
 * captured envelopes it costs about as much as slicing the base64 body out by hand and parsing
 * only the rest (V8 scans a long escape-free string nearly for free), and it stays exact for
 * any key order or escaping.
 */
export function decodeEnvelope(payload: Buffer | string): KombuEnvelope | EnvelopeError {
  let envelope: unknown;
  try {
    envelope = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch {
    return 'bad_envelope';
  }
  if (typeof envelope !== 'object' || envelope === null || Array.isArray(envelope)) return 'bad_envelope';
  const env = envelope as Record<string, unknown>;
  const rawBody = env.body;
  if (typeof rawBody !== 'string') return 'bad_envelope';
  const properties = isRecord(env.properties) ? env.properties : {};
  const headers = isRecord(env.headers) ? env.headers : {};
  let body: Buffer;
  if (properties.body_encoding === 'base64') {
    const decoded = decodeBase64Strict(rawBody);
    if (decoded === undefined) return 'bad_body_encoding';
    body = decoded;
  } else {
    body = Buffer.from(rawBody, 'utf8');
  }
  return {
    contentType: optionalString(env['content-type']),
    contentEncoding: optionalString(env['content-encoding']),
    headers,
    properties,
    body,
  };
}

/**
 * Standard padded base64 (what Python's b64encode writes), or undefined. Node's decoder never
 * throws: it skips characters outside the alphabet, so any stray character shows up as a
 * shorter output than the length implies; the URL-safe `-` and `_` it would accept are refused
 * separately. This is far cheaper per event than a regular expression over the whole body.
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const length = text.length;
  if (length % 4 !== 0) return undefined;
  if (text.indexOf('-') !== -1 || text.indexOf('_') !== -1) return undefined;
  const padding = length === 0 ? 0 : text.charCodeAt(length - 1) !== 0x3d ? 0 : text.charCodeAt(length - 2) !== 0x3d ? 1 : 2;
  const decoded = Buffer.from(text, 'base64');
  return decoded.length === (length / 4) * 3 - padding ? decoded : undefined;
}

export interface EnvelopeInput {
  readonly body: Buffer | string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  readonly headers: Readonly<Record<string, unknown>>;
  /** delivery_mode, delivery_info, priority...; body_encoding and delivery_tag are added. */
  readonly properties: Readonly<Record<string, unknown>>;
  readonly deliveryTag: string;
}

/** Wraps a serialized body the way kombu's Redis channel does before PUBLISH or LPUSH. */
export function encodeEnvelope(input: EnvelopeInput): string {
  const body = typeof input.body === 'string' ? Buffer.from(input.body, 'utf8') : input.body;
  return JSON.stringify({
    body: body.toString('base64'),
    'content-encoding': input.contentEncoding ?? 'utf-8',
    'content-type': input.contentType ?? 'application/json',
    headers: input.headers,
    properties: { ...input.properties, body_encoding: 'base64', delivery_tag: input.deliveryTag },
  });
}

// ---------------------------------------------------------------------------------------------
// Pidbox

export interface PidboxRequestInput {
  readonly method: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly destination: readonly string[] | null;
  readonly pattern: string | null;
  readonly matcher: string | null;
  /** Present only when replies are wanted, together with the reply oid. */
  readonly reply?: { readonly ticket: string; readonly oid: string };
  /** Lamport clock of the sender. */
  readonly clock: number;
  /** Epoch seconds; 0 when there is no timeout (kombu). The 5.2 worker ignores it. */
  readonly expires: number;
  readonly deliveryTag: string;
}

/** The PUBLISH payload of `kombu.pidbox.Mailbox._broadcast` on Redis (docs/wire-protocol.md §B1). */
export function encodePidboxRequest(input: PidboxRequestInput): string {
  return encodeEnvelope({
    body: JSON.stringify(pidboxRequestBody(input, input.reply)),
    headers: { clock: input.clock, expires: input.expires },
    // Persistent, as captured: kombu publishes by exchange name, so the producer default applies.
    properties: { delivery_mode: 2, delivery_info: { exchange: PIDBOX_EXCHANGE, routing_key: '' }, priority: 0 },
    deliveryTag: input.deliveryTag,
  });
}

/** One reply as a worker LPUSHes it: the ticket it answers and `{"<node>": <value>}`. */
export interface PidboxReply {
  readonly ticket: string | undefined;
  readonly clock: number | undefined;
  readonly replies: ReadonlyArray<{ readonly worker: string; readonly value: unknown }>;
}

/** Undefined when the payload is not a kombu envelope with a JSON object body. */
export function decodePidboxReply(payload: Buffer | string): PidboxReply | undefined {
  const envelope = decodeEnvelope(payload);
  if (typeof envelope === 'string') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(envelope.body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(body)) return undefined;
  const ticket = envelope.headers.ticket;
  const clock = envelope.headers.clock;
  return {
    ticket: typeof ticket === 'string' ? ticket : undefined,
    clock: typeof clock === 'number' ? clock : undefined,
    replies: Object.entries(body).map(([worker, value]) => ({ worker, value })),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
