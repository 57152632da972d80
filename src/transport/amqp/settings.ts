import type { BrokerTlsOptions } from '../tls.js';

/** What the AMQP transport is told (src/transport/index.ts builds it from the config). */
export interface AmqpTransportSettings {
  /** Full amqp:// or amqps:// URL, credentials included. Never logged. */
  readonly url: string;
  readonly eventQueue: {
    /** `celeryev.<id>`: kept across reconnects, so a quick reconnect resumes the same queue. */
    readonly name: string;
    readonly messageTtlMs: number;
    readonly expiresMs: number;
    readonly prefetch: number;
    /**
     * Celery's receiver queue is auto-delete (gone with its last consumer). A queue with a fixed
     * name must outlive a restart instead, so events published meanwhile wait for us (until
     * x-expires): false there. Default true.
     */
    readonly autoDelete?: boolean;
  };
  readonly maxMessageBytes: number;
  /** AMQP heartbeat; a half-open socket is noticed after about two intervals without traffic. */
  readonly heartbeatSeconds: number;
  readonly reconnect: { readonly initialMs: number; readonly maxMs: number };
  readonly connectTimeoutMs: number;
  /** Pause between socket reads at low rates, in ms (./read-pacing.ts); 0 reads as data arrives. */
  readonly readPacingMs: number;
  /** For amqps://: CA, client certificate and key, server name, verification (see ./tls.ts). */
  readonly tls?: BrokerTlsOptions;
}
