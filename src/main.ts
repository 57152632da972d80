#!/usr/bin/env -S node --max-semi-space-size=4 --single-threaded-gc --enable-source-maps
// --max-semi-space-size=4: V8's young generation may otherwise grow to 16 MB per semi-space; an
// exporter's garbage is small and short-lived, and 4 MB keeps a small cluster under 100 MB RSS
// for about 7 % more CPU per event (bench/README.md).
// --single-threaded-gc: V8 otherwise spreads each collection over helper threads; for this
// heap the handing-out and joining cost more than the parallel work saves (paced events, 7–16 %
// less CPU in all, bench/README.md), and on a busy node those threads compete with the broker.
// Pauses stayed under 10 ms either way (400 MB heap). Set on every way we start the process.
import { loadOidcMaterial } from './auth/index.js';
import { ConfigError, loadConfig, type Config } from './config/load.js';
import { helpText } from './config/reference.js';
import { loadTlsMaterial } from './http/listener.js';
import { loadWebhookCredentials } from './http/webhook-auth.js';
import { createLogger, type Logger } from './log.js';
import { kubeCredentials } from './kubernetes/credentials.js';
import { loadConfiguredRules, RulesError } from './remediation/rules.js';
import { VERSION } from './metrics/self-metrics.js';
import { Service } from './service.js';

// A straight script: flags → config → logger → service → HTTP → signals.
function main(): void {
  let loaded;
  try {
    loaded = loadConfig({ argv: process.argv.slice(2), env: process.env });
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      process.exit(2);
    }
    throw e;
  }
  if (loaded.action === 'help') {
    process.stdout.write(helpText() + '\n');
    return;
  }
  if (loaded.action === 'version') {
    process.stdout.write(`celery-autopilot ${VERSION}\n`);
    return;
  }
  const config = loaded.config!;
  if (loaded.action === 'check-config') {
    checkConfig(config);
    return;
  }

  const logger = createLogger(config.log_level);
  let service: Service;
  try {
    service = new Service(config, { logger });
  } catch (e) {
    // A rules, token, secret or certificate file that cannot be read or validated stops the start, loudly.
    console.error(e instanceof RulesError ? e.message : `cannot start: ${(e as Error).message}`);
    process.exit(2);
  }
  service.start();
  service
    .listen()
    .then((port) => announceStart(logger, config, service, port))
    .catch((e: Error) => {
      logger.fatal({ err: e.message }, 'cannot listen');
      process.exit(1);
    });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    service.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      service.reloadRules();
    } catch (e) {
      logger.error({ err: (e as Error).message }, 'remediation rules not reloaded; the previous rules stay in force');
    }
    try {
      service.reloadTls();
    } catch (e) {
      logger.error({ err: (e as Error).message }, 'TLS certificate not reloaded; the previous one stays in use');
    }
  });
  // Errors we did not foresee are logged; the process stays up, since losing the exporter at
  // night is worse than one failed operation.
  process.on('unhandledRejection', (reason) => logger.error({ err: String(reason) }, 'unhandled rejection'));
}

/** One line a newcomer can act on: where the console is and how to get in (a warning when nobody can). */
function announceStart(logger: Logger, config: Config, service: Service, port: number): void {
  const where = config.unix_socket !== undefined ? { socket: config.unix_socket } : { address: config.listen_address, port };
  const url = consoleUrl(config, port, service.servedOverTls);
  const { text, open } = service.auth.signIn;
  logger[open ? 'info' : 'warn'](
    { ...where, tls: service.servedOverTls, broker: config.broker.display, console: url },
    `celery-autopilot listening; console at ${url}; ${text}`,
  );
}

/** Where a browser finds the console: auth.public_url when set, else this listener as seen from this machine. */
function consoleUrl(config: Config, port: number, tls: boolean): string {
  if (config.auth.public_url) return `${config.auth.public_url.replace(/\/+$/, '')}/ui`;
  if (config.unix_socket !== undefined) return `unix:${config.unix_socket}:${config.url_prefix}/ui`;
  const address = config.listen_address;
  const host = address === '0.0.0.0' || address === '::' ? 'localhost' : address.includes(':') ? `[${address}]` : address;
  return `${tls ? 'https' : 'http'}://${host}:${port}${config.url_prefix}/ui`;
}

/**
 * --check-config: the rules file, the webhook token file, the OpenID providers' secret and CA
 * files and the TLS certificate are part of the configuration too, checked by the very
 * functions the service loads them with. (No OpenID issuer is contacted: it may not be
 * reachable from where the check runs.)
 */
function checkConfig(config: Config): void {
  const r = config.remediation;
  try {
    const rules = loadConfiguredRules(r);
    // Rules that scale Deployments need credentials for the API server (read, not used).
    if (rules.some((rule) => rule.action === 'scale_deployment')) kubeCredentials(config.kubernetes);
    loadOidcMaterial(config.auth.oidc);
    const warnings = [...loadWebhookCredentials(config).warnings, ...(loadTlsMaterial(config.tls)?.warnings ?? [])];
    for (const warning of warnings) console.error(`warning: ${warning}`);
    process.stdout.write(`configuration OK (broker ${config.broker.display}${r.enabled ? `, ${rules.length} remediation rules` : ''})\n`);
  } catch (e) {
    console.error(e instanceof RulesError ? e.message : `invalid configuration:\n  - ${(e as Error).message}`);
    process.exit(2);
  }
}

main();
