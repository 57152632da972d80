import { Secret } from './secret.js';

/**
 * Broker URLs as Celery/kombu accept them, parsed into what our transports need. The password
 * stays inside a Secret; `display` is the URL with the password replaced, safe to log.
 */
export type BrokerEndpoint = AmqpEndpoint | RedisEndpoint;

export interface AmqpEndpoint {
  readonly kind: 'amqp';
  /** `amqps://`: TLS, with the config's broker_tls settings. */
  readonly tls: boolean;
  /** Full URL for amqplib, credentials included. */
  readonly url: Secret;
  readonly display: string;
  readonly vhost: string;
}

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

export interface RedisEndpoint {
  readonly kind: 'redis';
  readonly display: string;
  readonly tls: boolean;
  /** Direct connection; absent when Sentinel is used. */
  readonly node?: RedisNode;
  /** Sentinel mode (`sentinel://h1:26379;sentinel://h2:26379`), master name from transport options. */
  readonly sentinels?: readonly RedisNode[];
  readonly db: number;
  readonly username?: string;
  readonly password?: Secret;
}

export class BrokerUrlError extends Error {}

/** Parses `amqp://`, `amqps://`, `redis://`, `rediss://` and `sentinel://` (`;`-separated) URLs. */
export function parseBrokerUrl(raw: string): BrokerEndpoint {
  const text = raw.trim();
  const scheme = /^([a-z]+):\/\//i.exec(text)?.[1]?.toLowerCase();
  switch (scheme) {
    case 'amqp':
    case 'amqps':
    case 'pyamqp':
      return parseAmqp(text.replace(/^pyamqp:/i, 'amqp:'));
    case 'redis':
    case 'rediss':
      return parseRedis(text);
    case 'sentinel':
      return parseSentinel(text);
    default:
      throw new BrokerUrlError(
        `unsupported broker URL scheme ${scheme ? `"${scheme}://"` : '(none)'}: use amqp://, amqps://, redis://, rediss:// or sentinel://`,
      );
  }
}

function parseUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new BrokerUrlError('broker URL is not a valid URL');
  }
}

function redact(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '***';
  return copy.href;
}

function parseAmqp(text: string): AmqpEndpoint {
  const url = parseUrl(text);
  if (!url.hostname) throw new BrokerUrlError('broker URL has no host');
  // kombu: the path after the first "/" is the vhost, and "amqp://host//" means vhost "/".
  // An empty path means the default vhost "/" as well.
  const path = url.pathname;
  const vhost = path === '' || path === '/' ? '/' : decodeURIComponent(path.slice(1));
  // amqplib reads the vhost the same way, but "//" must be sent as "/%2F" to mean "/".
  const forClient = new URL(url.href);
  forClient.pathname = '/' + encodeURIComponent(vhost);
  return { kind: 'amqp', tls: url.protocol === 'amqps:', url: new Secret(forClient.href), display: redact(url), vhost };
}

function parseDb(url: URL): number {
  const path = url.pathname.replace(/^\//, '');
  const fromQuery = url.searchParams.get('db') ?? url.searchParams.get('virtual_host');
  const raw = path || fromQuery || '0';
  if (!/^\d{1,2}$/.test(raw)) throw new BrokerUrlError(`Redis database must be a number 0-99, got "${raw}"`);
  return Number(raw);
}

function credentials(url: URL): { username?: string; password?: Secret } {
  const out: { username?: string; password?: Secret } = {};
  if (url.username) out.username = decodeURIComponent(url.username);
  if (url.password) out.password = new Secret(decodeURIComponent(url.password));
  return out;
}

function port(url: URL, fallback: number): number {
  return url.port ? Number(url.port) : fallback;
}

function parseRedis(text: string): RedisEndpoint {
  const url = parseUrl(text);
  if (!url.hostname) throw new BrokerUrlError('broker URL has no host');
  return {
    kind: 'redis',
    display: redact(url),
    tls: url.protocol === 'rediss:',
    node: { host: url.hostname.replace(/^\[|\]$/g, ''), port: port(url, 6379) },
    db: parseDb(url),
    ...credentials(url),
  };
}

function parseSentinel(text: string): RedisEndpoint {
  const parts = text.split(';').map((p) => parseUrl(p.trim()));
  const first = parts[0]!;
  return {
    kind: 'redis',
    display: parts.map(redact).join(';'),
    tls: false,
    sentinels: parts.map((u) => ({ host: u.hostname, port: port(u, 26379) })),
    db: parseDb(first),
    ...credentials(first),
  };
}
