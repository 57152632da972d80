import { createRequire } from 'node:module';
import type { AbstractConnector } from 'ioredis';

/**
 * ioredis listens for a socket's errors with `once`: a socket that emits a second error (a TLS
 * socket does, when the server answers our refused handshake with an alert of its own) would
 * raise an uncaught exception and end the process. This connector is ioredis's own, with a
 * lasting listener added to every socket they open; ioredis still sees the first error and
 * reports it, and the session's close handling does the rest. (Sentinel mode keeps ioredis's
 * SentinelConnector, which ioredis wires to its failover events; it connects without TLS here.)
 */

type NetStream = Awaited<ReturnType<AbstractConnector['connect']>>;
/** A connector as ioredis instantiates it (`options.Connector`), concrete rather than abstract. */
type Connector = Omit<AbstractConnector, 'connect'> & { connect(...args: Parameters<AbstractConnector['connect']>): Promise<NetStream> };
type ConnectorClass = new (options: never) => Connector;

// ioredis does not export its StandaloneConnector from the package root; require() reads the
// CommonJS module the same way under Node and under the test runner's transform.
const StandaloneConnector = (
  createRequire(import.meta.url)('ioredis/built/connectors/StandaloneConnector.js') as { default: ConnectorClass }
).default;

/** A direct-node connection whose every socket keeps an error listener for its whole life. */
export class GuardedStandaloneConnector extends StandaloneConnector {
  override connect(...args: Parameters<AbstractConnector['connect']>): Promise<NetStream> {
    return super.connect(...args).then((stream) => {
      stream.on('error', () => undefined);
      return stream;
    });
  }
}
