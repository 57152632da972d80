import type { AuditLog } from '../audit/audit-log.js';
import type { Auth } from '../auth/index.js';
import type { Config } from '../config/load.js';
import { alertmanagerReceiver, remediationAdminApi, type RemediationApiDeps } from '../http/remediation-api.js';
import { loadWebhookCredentials, WebhookThrottle } from '../http/webhook-auth.js';
import type { Remediator } from '../remediation/engine.js';
import { createRemediation, type RemediationParts } from '../remediation/wiring.js';
import type { FeatureModule } from './module.js';

export interface RemediationModuleParts extends RemediationParts {
  audit: AuditLog;
  auth: Auth;
  /** POST …/rules/reload: re-reads, validates and swaps the rules (throws RulesError, old rules kept). */
  reloadRules: () => number;
}

export interface RemediationModule extends FeatureModule {
  readonly remediator: Remediator;
}

/**
 * Alertmanager-driven remediation (remediation/wiring.ts builds the engine): the receiver,
 * mounted ahead of authentication because it checks Alertmanager's own credentials, and the
 * administration API after it.
 */
export function createRemediationModule(config: Config, parts: RemediationModuleParts): RemediationModule {
  // Alertmanager's credentials first (a bad token file stops the start), then the rules.
  const webhook = loadWebhookCredentials(config);
  for (const warning of webhook.warnings) parts.logger.warn(warning);
  const remediation = createRemediation(config.remediation, parts);
  const api: RemediationApiDeps = {
    remediator: remediation.remediator,
    credentials: webhook.credentials,
    maxBodyBytes: config.remediation.webhook.max_body_bytes,
    reloadRules: parts.reloadRules,
    throttle: new WebhookThrottle(parts.clock),
    publicOrigin: config.auth.public_url ? new URL(config.auth.public_url).origin : undefined,
    audit: parts.audit,
    auth: parts.auth,
    metrics: parts.metrics,
    logger: parts.logger,
  };
  return {
    name: 'remediation',
    remediator: remediation.remediator,
    routers: { beforeAuth: [alertmanagerReceiver(api)], routes: [remediationAdminApi(api)] },
    stop: () => remediation.close(),
  };
}
