import { parseBrokerUrl, type BrokerEndpoint, type RedisEndpoint } from '../config/broker-url.js';
import type { Config } from '../config/load.js';
import type { Secret } from '../config/secret.js';
import type { RedisServer } from './redis/client-options.js';
import { loadTlsOptions, type BrokerTlsOptions } from './tls.js';

/**
 * Where the broker is and how to log in, for every connection the service opens: events and
 * control (the transport), task publishing, and the Redis URLs the config names beside the broker
 * (Celery's result backend, shared remediation state). Built once per config from `broker_url`,
 * `broker_tls` and `broker_transport_options`, so no connection can drift from another; a new
 * broker adds a case here and nothing above transport/ changes.
 */

/** RabbitMQ: the URL (credentials and vhost in it) and, for amqps://, the TLS options. */
export interface AmqpServer {
  /** Never logged. */
  readonly url: string;
  readonly tls?: BrokerTlsOptions;
}

export type BrokerServer =
  { readonly kind: 'amqp'; readonly server: AmqpServer } | { readonly kind: 'redis'; readonly server: RedisServer };

export interface BrokerConnections {
  readonly broker: BrokerServer;
  /**
   * Another Redis the config names (tasks.result_backend, remediation.state_redis_url): over
   * rediss:// it is reached with the same `broker_tls` CA, client certificate and verify setting
   * as the broker; `server_name` only when it is on the broker's host (its certificate names the
   * broker, not a result backend elsewhere).
   */
  redisAt(url: Secret): RedisServer;
}

const built = new WeakMap<Config, BrokerConnections>();

/**
 * The connections of one config. The TLS files are read on the first call, once (an unreadable
 * one throws a BrokerTlsError naming its key); every later caller gets the same options, so
 * features reach the broker without the composition root threading them through.
 */
export function brokerConnections(config: Config): BrokerConnections {
  let connections = built.get(config);
  if (!connections) {
    connections = build(config);
    built.set(config, connections);
  }
  return connections;
}

function build(config: Config): BrokerConnections {
  const broker = config.broker;
  let tls: BrokerTlsOptions | undefined;
  const tlsOptions = (): BrokerTlsOptions => (tls ??= loadTlsOptions(config.broker_tls));
  const tlsFor = (endpoint: RedisEndpoint): BrokerTlsOptions | undefined => {
    if (!endpoint.tls) return undefined;
    if (sameHosts(broker, endpoint)) return tlsOptions();
    const { servername: _brokerName, ...elsewhere } = tlsOptions();
    return elsewhere;
  };
  const redis = (endpoint: RedisEndpoint): RedisServer => redisServer(config, endpoint, tlsFor(endpoint));
  return {
    broker:
      broker.kind === 'amqp'
        ? { kind: 'amqp', server: { url: broker.url.reveal(), ...(broker.tls ? { tls: tlsOptions() } : {}) } }
        : { kind: 'redis', server: redis(broker) },
    redisAt: (url) => {
      const endpoint = parseBrokerUrl(url.reveal());
      // The schema lets only redis:// and rediss:// through for these keys.
      if (endpoint.kind !== 'redis') throw new Error(`not a Redis URL: ${endpoint.display}`);
      return redis(endpoint);
    },
  };
}

/** Both URLs name the same host (or the same set of sentinels): the same server, the same certificate name. */
function sameHosts(a: BrokerEndpoint, b: BrokerEndpoint): boolean {
  const hosts = (e: BrokerEndpoint): string =>
    (e.kind === 'amqp' ? [new URL(e.url.reveal()).hostname] : e.node ? [e.node.host] : (e.sentinels ?? []).map((n) => n.host))
      .map((h) => h.replace(/^\[|\]$/g, '').toLowerCase())
      .sort()
      .join(' ');
  return hosts(a) === hosts(b);
}

/** A parsed Redis URL with the Sentinel options of broker_transport_options, ready for ioredis. */
function redisServer(config: Config, endpoint: RedisEndpoint, tlsOptions: BrokerTlsOptions | undefined): RedisServer {
  const options = config.broker_transport_options;
  const where = endpoint.sentinels
    ? {
        sentinels: [...endpoint.sentinels],
        masterName: options.master_name ?? '',
        ...(options.sentinel_username !== undefined ? { sentinelUsername: options.sentinel_username } : {}),
        ...(options.sentinel_password !== undefined ? { sentinelPassword: options.sentinel_password.reveal() } : {}),
      }
    : { host: endpoint.node!.host, port: endpoint.node!.port };
  return {
    ...where,
    db: endpoint.db,
    tls: endpoint.tls,
    ...(tlsOptions ? { tlsOptions } : {}),
    ...(endpoint.username !== undefined ? { username: endpoint.username } : {}),
    ...(endpoint.password !== undefined ? { password: endpoint.password.reveal() } : {}),
  };
}
