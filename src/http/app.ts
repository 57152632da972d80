import { once } from 'node:events';
import express, { type Express } from 'express';
import type { Service } from '../service.js';
import { VERSION } from '../metrics/self-metrics.js';
import { controlApi, sendError } from './control-api.js';
import { operatorConsole } from './operator-page.js';
import { taskReadApi } from './task-api.js';
import { taskSubmitApi } from './task-submit-api.js';
import { flowerWorkersApi } from './flower-workers-api.js';
import { alertmanagerReceiver, remediationAdminApi, type RemediationApiDeps } from './remediation-api.js';
import { urlPrefix } from './url-prefix.js';

const LANDING = (prefix: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>celery-autopilot</title></head>
<body>
<h1>celery-autopilot</h1>
<p>Celery metrics for Prometheus, version ${VERSION}.</p>
<ul>
<li><a href="${prefix}/ui">Operator console</a> (sign-in required)</li>
<li><a href="${prefix}/metrics">Metrics</a></li>
<li><a href="${prefix}/-/healthy">Health</a></li>
<li><a href="${prefix}/-/ready">Readiness</a></li>
</ul>
</body></html>
`;

/**
 * The HTTP surface: exporter endpoints (landing page, /metrics, liveness, readiness), the
 * operator page, the control API (Flower paths and /api/v1), and the Alertmanager receiver.
 * Authentication runs first on everything; each route then asks for the role it needs.
 */
export function createHttpApp(service: Service): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const trust = service.config.trust_proxy.trim();
  if (trust !== '') app.set('trust proxy', /^\d+$/.test(trust) ? Number(trust) : trust === 'true' ? true : trust);
  // First: requests under url_prefix are routed as if at the root, redirects get the prefix.
  app.use(urlPrefix(service.config.url_prefix));
  const auth = service.auth;
  const remediation: RemediationApiDeps | undefined = service.remediator && {
    remediator: service.remediator,
    credentials: service.webhookCredentials,
    maxBodyBytes: service.config.remediation.webhook.max_body_bytes,
    audit: service.audit,
    auth,
    metrics: service.actionMetrics,
    logger: service.logger,
    reloadRules: () => service.reloadRules(),
  };
  // The receiver checks Alertmanager's own credentials; ahead of the API's authentication, its
  // deliveries are never mistaken for failed logins (which would throttle the sender's IP).
  if (remediation) app.use(alertmanagerReceiver(remediation));
  app.use(auth.sessionMiddleware);
  app.use(auth.authenticate);
  app.use(auth.router);

  app.get('/', (_req, res) => {
    res.type('html').send(LANDING(service.config.url_prefix));
  });

  app.get('/metrics', auth.protectMetrics, async (_req, res, next) => {
    try {
      res.set('Content-Type', service.registry.contentType);
      // Streamed with backpressure: a large cluster's exposition never sits in memory whole.
      for await (const chunk of service.metricsChunks()) {
        if (!res.write(chunk)) await once(res, 'drain');
        if (res.destroyed) return;
      }
      res.end();
    } catch (e) {
      if (res.headersSent) res.destroy(e as Error);
      else next(e);
    }
  });

  app.get('/-/healthy', (_req, res) => {
    res.type('text').send('OK\n');
  });

  app.get('/-/ready', (_req, res) => {
    const ready = service.isReady();
    const { connected, subscribed, reconnects, lastError } = service.status;
    res.status(ready ? 200 : 503).json({ ready, broker: { connected, subscribed, reconnects, ...(lastError ? { lastError } : {}) } });
  });

  app.use(operatorConsole(service));
  // Flower's task half and its /api/workers and /api/queues/length, ahead of the control API's
  // older handlers for the same two paths.
  const t = service.config.tasks;
  app.use(taskReadApi({ store: service.taskStore, auth, payloadRole: t.payload_role }));
  app.use(
    taskSubmitApi({
      publisher: service.taskPublisher,
      backend: service.resultBackend,
      workers: service.workerSnapshot,
      auth,
      audit: service.audit,
      clock: service.clock,
      defaultQueue: service.config.metrics.default_queue_name,
      payloadRole: t.payload_role,
      maxWaitSeconds: t.max_result_wait_seconds,
      maxBodyBytes: service.config.control.max_body_bytes,
    }),
  );
  const broker = service.config.broker;
  app.use(
    flowerWorkersApi({
      snapshot: service.workerSnapshot,
      workers: service.workers,
      queues: service.queues,
      auth,
      brokerApi: service.config.broker_api && broker.kind === 'amqp' ? { url: service.config.broker_api, vhost: broker.vhost } : undefined,
      refreshSeconds: service.config.control.workers_refresh_seconds,
    }),
  );
  app.use(
    controlApi({
      control: service.control,
      workers: service.workers,
      queues: service.queues,
      audit: service.audit,
      auth,
      maxBodyBytes: service.config.control.max_body_bytes,
      refused: (command) => service.actionMetrics.controlCommands.inc({ command, outcome: 'refused' }),
    }),
  );
  if (remediation) app.use(remediationAdminApi(remediation));

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  // Express 5 error handler: body-parser's 4xx as they are, anything else a JSON 500 without
  // a stack trace.
  app.use((err: Error & { status?: number; type?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    if (err.type === 'entity.too.large') res.status(413).json({ error: 'request body too large' });
    else if (err.type === 'entity.parse.failed') res.status(400).json({ error: 'request body is not valid JSON' });
    else if (err.status && err.status >= 400 && err.status < 500) res.status(err.status).json({ error: err.message });
    else sendError(res, err);
  });
  return app;
}
