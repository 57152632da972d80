import type { Registry } from 'prom-client';
import type { AuditLog } from '../audit/audit-log.js';
import type { Auth } from '../auth/index.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/load.js';
import type { ControlClient } from '../control/client.js';
import type { QueueCollector } from '../exporter/queue-collector.js';
import { alertmanagerReceiver, remediationAdminApi, type RemediationApiDeps } from '../http/remediation-api.js';
import { loadWebhookCredentials, WebhookThrottle } from '../http/webhook-auth.js';
import type { Logger } from '../log.js';
import { ActionMetrics, RulesReloadMetrics } from '../metrics/remediation-metrics.js';
import type { Remediator } from '../remediation/engine.js';
import { loadConfiguredRules, type RemediationRule } from '../remediation/rules.js';
import { createRemediation } from '../remediation/wiring.js';
import type { WorkerRegistry } from '../state/workers.js';
import { brokerConnections } from '../transport/index.js';
import type { BrokerTransport } from '../transport/transport.js';
import type { FeatureModule } from './module.js';

export interface RemediationModuleParts {
  /** Where the remediation and rules reload families are registered. */
  registry: Registry;
  transport: BrokerTransport;
  control: ControlClient;
  workers: WorkerRegistry;
  /** Time to drain, for the verify step. */
  queues: QueueCollector;
  audit: AuditLog;
  auth: Auth;
  clock: Clock;
  logger: Logger;
}

export interface RemediationModule extends FeatureModule {
  /** Present when remediation.enabled. */
  readonly remediator: Remediator | undefined;
  /** SIGHUP / POST …/rules/reload: read and validate the whole file (throws RulesError; nothing swapped), then swap. */
  reloadRules(): number;
}

/**
 * Alertmanager-driven remediation (remediation/wiring.ts builds the engine): the receiver,
 * mounted ahead of authentication because it checks Alertmanager's own credentials, and the
 * administration API after it. Built whether or not remediation is enabled: the rules file can
 * be reloaded (checked) and its reloads are counted either way; disabled, nothing else is.
 */
export function createRemediationModule(config: Config, parts: RemediationModuleParts): RemediationModule {
  const metrics = new ActionMetrics(parts.registry, config.metrics.self_prefix);
  const reloads = new RulesReloadMetrics(parts.registry, config.metrics.self_prefix);
  const telemetry = [...metrics.families, ...reloads.families];
  if (!config.remediation.enabled) {
    return { name: 'remediation', telemetry, remediator: undefined, routers: {}, reloadRules: rulesReload(config, reloads, parts.logger) };
  }
  // Alertmanager's credentials first (a bad token file stops the start), then the rules.
  const webhook = loadWebhookCredentials(config);
  for (const warning of webhook.warnings) parts.logger.warn(warning);
  const remediation = createRemediation(config.remediation, {
    ...parts,
    metrics,
    connections: brokerConnections(config),
    kubernetes: config.kubernetes,
    timeToDrain: async (queue) => (await parts.queues.collect()).find((q) => q.queue === queue)?.timeToDrain ?? undefined,
  });
  const { remediator } = remediation;
  const reloadRules = rulesReload(config, reloads, parts.logger, (rules) => remediator.replaceRules(rules));
  const api: RemediationApiDeps = {
    remediator,
    credentials: webhook.credentials,
    maxBodyBytes: config.remediation.webhook.max_body_bytes,
    reloadRules,
    throttle: new WebhookThrottle(parts.clock),
    publicOrigin: config.auth.public_url ? new URL(config.auth.public_url).origin : undefined,
    audit: parts.audit,
    auth: parts.auth,
    metrics,
    logger: parts.logger,
  };
  return {
    name: 'remediation',
    telemetry,
    remediator,
    reloadRules,
    routers: { beforeAuth: [alertmanagerReceiver(api)], routes: [remediationAdminApi(api)] },
    stop: () => remediation.close(),
  };
}

/** Reads and validates the whole rules file, counts the outcome, then hands the rules over (the old ones stay on failure). */
function rulesReload(
  config: Config,
  reloads: RulesReloadMetrics,
  logger: Logger,
  replace?: (rules: RemediationRule[]) => void,
): () => number {
  return () => {
    let rules: RemediationRule[];
    try {
      rules = loadConfiguredRules(config.remediation);
    } catch (e) {
      reloads.reloaded('failure');
      throw e;
    }
    reloads.reloaded('success');
    replace?.(rules);
    logger.info({ rules: rules.length }, 'remediation rules reloaded');
    return rules.length;
  };
}
