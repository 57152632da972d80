import { connect, type ChannelModel } from 'amqplib';
import { withDeadline } from '../async.js';
import type { BrokerTlsOptions } from '../tls.js';

/** Opening and closing one AMQP connection, bounded in time both ways. */

/** Upper bound on a graceful connection close before the socket is simply destroyed. */
const CLOSE_GRACE_MS = 2_000;

export interface OpenSettings {
  /** amqp:// or amqps:// with the heartbeat in its query (see withHeartbeat). */
  readonly url: string;
  readonly connectTimeoutMs: number;
  /** For amqps://: CA, client certificate and key, server name, verification. */
  readonly tls?: BrokerTlsOptions;
  /** Shown in RabbitMQ's management UI; default `celery-autopilot`. */
  readonly connectionName?: string;
}

/** amqplib's socket `timeout` covers TCP + handshake; the outer deadline also covers TLS stalls. */
export async function openConnection(settings: OpenSettings): Promise<ChannelModel> {
  const opening = connect(settings.url, {
    timeout: settings.connectTimeoutMs,
    noDelay: true,
    clientProperties: { connection_name: settings.connectionName ?? 'celery-autopilot' },
    // amqplib hands these to tls.connect for amqps:// (and sets servername to the URL's host
    // unless given); a plain amqp:// URL ignores them.
    ...settings.tls,
  });
  // A connection that completes after we gave up must not linger.
  return withDeadline(opening, settings.connectTimeoutMs + 250, 'connect', (late) => {
    late.on('error', () => undefined);
    // closeModel settles either way (a forced close after a grace period); nothing to report.
    closeModel(late).catch(() => undefined);
  });
}

/**
 * Closes gracefully when the broker answers; on a half-open socket (where close-ok never comes)
 * the socket is destroyed after a grace period so close() always finishes.
 */
export async function closeModel(model: ChannelModel): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceful = model.close().catch(() => undefined);
  const forced = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      // amqplib exposes no destroy(); its Connection keeps the socket as `stream`.
      (model.connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
      resolve();
    }, CLOSE_GRACE_MS);
  });
  await Promise.race([graceful, forced]);
  clearTimeout(timer);
}

/** amqplib reads the heartbeat from the URL query; an explicit setting wins over the URL's. */
export function withHeartbeat(url: string, heartbeatSeconds: number): string {
  try {
    const parsed = new URL(url);
    parsed.searchParams.set('heartbeat', String(Math.max(0, Math.round(heartbeatSeconds))));
    return parsed.href;
  } catch {
    // amqplib reports an unusable URL itself, on every attempt, through the normal failure path.
    return url;
  }
}
