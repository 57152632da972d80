import { loadConfig } from './config/load.js';
import { silentLogger } from './log.js';
import { Service } from './service.js';
import { BrokerUnavailableError, type BrokerTransport } from './transport/transport.js';

/** A transport that never connects: a service built to list its telemetry is never started. */
const NO_BROKER: BrokerTransport = {
  kind: 'amqp',
  start: () => undefined,
  isConnected: () => false,
  broadcast: () => Promise.reject(new BrokerUnavailableError()),
  queueDepths: (queues) => Promise.resolve(queues.map((name) => ({ name, messages: null, consumers: null }))),
  purgeQueue: () => Promise.reject(new BrokerUnavailableError()),
  close: () => Promise.resolve(),
};

/**
 * The service as the default configuration builds it (plus `argv`), every module constructed and
 * nothing started: its `telemetry` names who registered each family /metrics exposes.
 */
export function serviceWithoutBroker(argv: string[] = []): Service {
  // Throws ConfigError on a bad flag; no config only for --help or --version.
  const { config } = loadConfig({ argv, env: {}, readFile: () => '' });
  if (!config) throw new Error('--help and --version build no service');
  return new Service(config, { logger: silentLogger(), transport: () => NO_BROKER });
}
