import type { Config } from '../config/load.js';
import type { Secret } from '../config/secret.js';

/**
 * The RabbitMQ management HTTP API as Flower's `broker_api` uses it: one GET of the vhost's
 * queues gives ready and unacknowledged messages and consumers, which a passive declare cannot
 * (it counts ready messages only). Bounded by a timeout; credentials go in a header, never in
 * a logged URL.
 */
export class ManagementApiError extends Error {}

export interface ManagementQueue {
  name: string;
  /** Ready + unacknowledged, as the management UI's "Total". */
  messages: number;
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
}

const TIMEOUT_MS = 3_000;

export async function managementQueues(api: Secret, vhost: string, names: readonly string[]): Promise<ManagementQueue[]> {
  let url: URL;
  try {
    url = new URL(api.reveal());
  } catch {
    throw new ManagementApiError('broker_api is not a valid URL');
  }
  const auth =
    url.username !== ''
      ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
      : undefined;
  url.username = '';
  url.password = '';
  const base = url.toString().endsWith('/') ? url.toString() : `${url.toString()}/`;
  const target = `${base}queues/${encodeURIComponent(vhost)}?columns=name,messages,messages_ready,messages_unacknowledged,consumers`;
  let res: Response;
  try {
    res = await fetch(target, {
      headers: { Accept: 'application/json', ...(auth ? { Authorization: auth } : {}) },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    throw new ManagementApiError(
      `the RabbitMQ management API (broker_api) is unreachable: ${(e as Error).name === 'TimeoutError' ? 'timed out' : (e as Error).message}`,
    );
  }
  if (!res.ok) throw new ManagementApiError(`the RabbitMQ management API (broker_api) answered ${res.status}`);
  const body = (await res.json().catch(() => undefined)) as unknown;
  if (!Array.isArray(body)) throw new ManagementApiError('the RabbitMQ management API (broker_api) did not answer a list of queues');
  const wanted = new Set(names);
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return body
    .filter(
      (q): q is Record<string, unknown> =>
        typeof q === 'object' &&
        q !== null &&
        typeof (q as { name?: unknown }).name === 'string' &&
        wanted.has((q as { name: string }).name),
    )
    .map((q) => ({
      name: q.name as string,
      messages: num(q.messages_ready) + num(q.messages_unacknowledged),
      messages_ready: num(q.messages_ready),
      messages_unacknowledged: num(q.messages_unacknowledged),
      consumers: num(q.consumers),
    }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Flower's broker_api (RabbitMQ management), when configured and the broker is RabbitMQ. */
export function configuredBrokerApi(config: Pick<Config, 'broker' | 'broker_api'>): { url: Secret; vhost: string } | undefined {
  const { broker, broker_api: url } = config;
  return url && broker.kind === 'amqp' ? { url, vhost: broker.vhost } : undefined;
}
