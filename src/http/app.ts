import { once } from 'node:events';
import express, { type Express } from 'express';
import type { Service } from '../service.js';
import { VERSION } from '../metrics/self-metrics.js';

const LANDING = (metricsPath: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>celery-autopilot</title></head>
<body>
<h1>celery-autopilot</h1>
<p>Celery metrics for Prometheus, version ${VERSION}.</p>
<ul>
<li><a href="${metricsPath}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body></html>
`;

/** The exporter's HTTP surface: landing page, /metrics, liveness and readiness. */
export function createHttpApp(service: Service): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/', (_req, res) => {
    res.type('html').send(LANDING('/metrics'));
  });

  app.get('/metrics', async (_req, res, next) => {
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

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });
  // Express 5 error handler: a JSON answer, never a stack trace.
  app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).json({ error: err.message });
  });
  return app;
}
