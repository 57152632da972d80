import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Auth } from '../auth/index.js';
import { describePrincipal, roleAtLeast } from '../auth/index.js';
import type { AuditLog } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import type { ActionMetrics } from '../metrics/remediation-metrics.js';
import { parseNotification, PayloadError } from '../remediation/alertmanager.js';
import type { Remediator } from '../remediation/engine.js';
import { ProposalError } from '../remediation/proposals.js';
import { dangerOf, RulesError } from '../remediation/rules.js';
import { insecureHostProblem } from '../auth/csrf.js';
import { webhookAuthorized, type WebhookCredentials, type WebhookThrottle } from './webhook-auth.js';
import { auditLimit, requestParams } from './params.js';
import { CommandValidationError } from '../celery/validators.js';

export interface RemediationApiDeps {
  remediator: Remediator;
  credentials: WebhookCredentials;
  /** Failed webhook authentications per client (see WebhookThrottle). */
  throttle: WebhookThrottle;
  /** auth.public_url's origin, the one non-loopback Host an unauthenticated receiver answers to. */
  publicOrigin: string | undefined;
  maxBodyBytes: number;
  audit: AuditLog;
  auth: Auth;
  metrics: ActionMetrics;
  logger: Logger;
  /** Re-reads and validates the rules file; throws RulesError and keeps the old rules. */
  reloadRules: () => number;
}

/**
 * The Alertmanager receiver. It has its own credentials and is mounted ahead of the API's
 * authentication, so deliveries never count as failed API logins. Status codes say what
 * Alertmanager should do: 2xx once the notification is recorded, 4xx for what a retry cannot fix
 * (auth, size, malformed body), 5xx only when nothing was done and a retry is wanted.
 */
export function alertmanagerReceiver(deps: Omit<RemediationApiDeps, 'auth' | 'audit' | 'reloadRules'>): Router {
  const { remediator, metrics } = deps;
  const router = express.Router();

  const answer = (res: Response, status: number, body: Record<string, unknown>) => {
    metrics.webhooks.inc({ status: `${Math.floor(status / 100)}xx` });
    res.status(status).json(body);
  };

  router.post(
    '/api/v1/alertmanager',
    // Authenticate before reading a byte of the body.
    (req: Request, res: Response, next: NextFunction) => {
      if (deps.credentials.insecure) {
        const why = insecureHostProblem(req, deps.publicOrigin);
        if (why) return answer(res, 403, { error: why });
      } else {
        // A sender that keeps failing is answered 429 without its credentials being looked at.
        const wait = deps.throttle.retryAfterSeconds(req);
        if (wait > 0) {
          res.set('Retry-After', String(wait));
          return answer(res, 429, { error: `too many failed authentications: retry in ${wait} s` });
        }
        if (!webhookAuthorized(req.get('authorization'), deps.credentials)) {
          deps.throttle.recordFailure(req);
          deps.logger.info({ ip: req.ip }, 'webhook authentication failed');
          res.set('WWW-Authenticate', 'Bearer realm="celery-autopilot"');
          return answer(res, 401, { error: 'unauthorized' });
        }
      }
      // Alertmanager always sends JSON; anything else (a text/plain form from a web page) is refused unread.
      if (!req.is('application/json')) return answer(res, 415, { error: 'the body must be application/json' });
      next();
    },
    express.json({ limit: deps.maxBodyBytes, type: 'application/json' }),
    (req: Request, res: Response) => {
      let notification;
      try {
        notification = parseNotification(req.body);
      } catch (e) {
        if (e instanceof PayloadError) return answer(res, 400, { error: e.message });
        throw e;
      }
      const { status, jobs } = remediator.accept(notification);
      if (status === 'retry') return answer(res, 503, { error: 'broker unavailable: nothing was done, retry later' });
      answer(res, 200, {
        status: 'accepted',
        alerts: notification.alerts.length,
        decisions: jobs,
        malformed_alerts: notification.malformedAlerts,
      });
    },
    (err: Error & { type?: string; status?: number }, _req: Request, res: Response, next: NextFunction) => {
      if (err.type === 'entity.too.large') return answer(res, 413, { error: `body larger than ${deps.maxBodyBytes} bytes` });
      if (err.type === 'entity.parse.failed') return answer(res, 400, { error: 'body is not valid JSON' });
      if (err.status && err.status >= 400 && err.status < 500) return answer(res, err.status, { error: err.message });
      next(err);
    },
  );

  return router;
}

/** Decisions, rules, kill switch and reload: behind the API's own authentication and roles. */
export function remediationAdminApi(deps: RemediationApiDeps): Router {
  const { remediator, audit, auth } = deps;
  const router = express.Router();

  router.get('/api/v1/remediation/decisions', auth.requireRole('viewer'), (req, res) => {
    const limit = auditLimit(req);
    // Decisions only: verification verdicts are remediation records too, with their own path.
    res.json(audit.recent('remediation', limit).filter((r) => r.event === undefined));
  });

  proposalRoutes(router, deps);

  router.get('/api/v1/remediation/rules', auth.requireRole('viewer'), (_req, res) => {
    res.json({ kill_switch: remediator.killSwitch, rules: remediator.rules.map(({ regexes: _r, ...rule }) => rule) });
  });

  const adminBody = auth.withBody('admin', express.json({ limit: 4096 }), express.urlencoded({ extended: false, limit: 4096 }));

  router.post('/api/v1/remediation/kill-switch', ...adminBody, async (req, res) => {
    // Required: a missing value must not read as either position of the switch.
    const read = requestParams(req);
    const given = read.value('enabled');
    if (given === undefined || given === '') throw new CommandValidationError('must be true or false', 'enabled');
    const enabled = read.boolean('enabled', false);
    try {
      // With shared state this sets it for every replica; unstored, it is not changed anywhere.
      await remediator.setKillSwitch(enabled);
    } catch (e) {
      deps.logger.error({ err: (e as Error).message, enabled }, 'remediation kill switch not changed: shared state unreachable');
      res.status(503).json({ error: 'the kill switch could not be stored; it is unchanged', kill_switch: remediator.killSwitch });
      return;
    }
    audit.write({ kind: 'admin', by: describePrincipal(req), action: 'kill_switch', enabled });
    deps.logger.warn({ enabled }, 'remediation kill switch changed');
    res.json({ kill_switch: enabled });
  });

  router.post('/api/v1/remediation/reload', ...adminBody, (req, res) => {
    try {
      const count = deps.reloadRules();
      audit.write({ kind: 'admin', by: describePrincipal(req), action: 'reload_rules', rules: count });
      res.json({ rules: count });
    } catch (e) {
      if (e instanceof RulesError) {
        res.status(400).json({ error: 'rules not reloaded; the previous rules stay in force', problems: e.problems });
        return;
      }
      throw e;
    }
  });

  return router;
}

/** Proposals of rules in approve mode and verification verdicts (README "Approve first, then verify"). */
function proposalRoutes(router: Router, deps: RemediationApiDeps): void {
  const { remediator, audit, auth } = deps;
  router.get('/api/v1/remediation/proposals', auth.requireRole('viewer'), (_req, res) => {
    res.json(remediator.oversight.proposals.list());
  });

  router.get('/api/v1/remediation/verifications', auth.requireRole('viewer'), (_req, res) => {
    res.json([...remediator.oversight.verdicts].reverse());
  });

  const operatorBody = auth.withBody('operator', express.json({ limit: 4096 }), express.urlencoded({ extended: false, limit: 4096 }));

  router.post('/api/v1/remediation/proposals/:id/:answer', ...operatorBody, async (req, res) => {
    const { id, answer } = req.params as { id: string; answer: string };
    if (answer !== 'approve' && answer !== 'reject') {
      res.status(404).json({ error: 'answer a proposal with /approve or /reject' });
      return;
    }
    const by = describePrincipal(req);
    try {
      // Approving a dangerous action (dangerOf: shutdown, pool_restart, revoke with terminate, purge_queue) takes what running it takes: admin.
      const pending = remediator.oversight.proposals.list().find((p) => p.id === id);
      if (
        answer === 'approve' &&
        pending &&
        dangerOf(pending.action, pending.arguments ?? {}) &&
        !roleAtLeast(req.principal?.role ?? 'viewer', 'admin')
      ) {
        res.status(403).json({ error: `approving ${pending.action} needs the admin role` });
        return;
      }
      if (answer === 'reject') {
        const proposal = remediator.reject(id, by.actor);
        audit.write({ kind: 'admin', by, action: 'reject_proposal', proposal: id, rule: proposal.rule });
        res.json({ proposal });
        return;
      }
      audit.write({ kind: 'admin', by, action: 'approve_proposal', proposal: id });
      const { proposal, decision } = await remediator.approve(id, by.actor);
      res.json({ proposal, decision });
    } catch (e) {
      if (e instanceof ProposalError) {
        res.status(e.status).json({ error: e.message });
        return;
      }
      throw e;
    }
  });
}
