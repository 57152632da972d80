import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startExporter, type RunningExporter } from '../support/exporter.js';

/** The exporter-side HTTP surface, with the broker unreachable (nothing here needs one). */
describe('HTTP surface', () => {
  const running: RunningExporter[] = [];
  const token = randomBytes(24).toString('hex');
  const start = async (config: Record<string, unknown>) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cap-http-'));
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, stringify({ broker_url: 'amqp://guest:guest@127.0.0.1:1//', audit: { file: '' }, ...config }));
    const e = await startExporter(['--config', file]);
    running.push(e);
    return e;
  };
  const tokens = [{ name: 'ops', sha256: createHash('sha256').update(token).digest('hex'), role: 'viewer' }];

  afterAll(async () => {
    await Promise.allSettled(running.map((e) => e.stop()));
  });

  it('serves the landing page, health, readiness (503 without a broker) and JSON 404s', async () => {
    const e = await start({ auth: { tokens } });
    const landing = await e.get('/');
    expect(landing.headers.get('content-type')).toContain('text/html');
    expect(await landing.text()).toContain('href="/metrics"');
    expect(await (await e.get('/-/healthy')).text()).toBe('OK\n');
    const ready = await e.get('/-/ready');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, broker: { connected: false } });
    const missing = await e.get('/nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'not found' });
    const metrics = await e.get('/metrics');
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('celery_autopilot_broker_connected 0');
  });

  it('protects /metrics when asked to, for Prometheus with a bearer token', async () => {
    const e = await start({ auth: { tokens, protect_metrics: true } });
    expect((await e.get('/metrics')).status).toBe(401);
    expect((await fetch(`${e.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('fails closed: with no authentication configured the control API answers 503', async () => {
    const e = await start({});
    const res = await fetch(`${e.url}/api/worker/pool/grow/celery@h?n=1`, { method: 'POST' });
    expect(res.status).toBe(503);
  });

  it('the audit kind and the queue filter are read like every parameter (the last when repeated), in the API and the console alike', async () => {
    const e = await start({ auth: { tokens } });
    e.service.audit.write({ kind: 'control', command: 'pool_grow' });
    e.service.audit.write({ kind: 'admin', command: 'kill_switch' });
    const get = (p: string) => fetch(`${e.url}${p}`, { headers: { authorization: `Bearer ${token}` } });
    const api = await get('/api/v1/audit?kind=control&kind=admin');
    expect(api.status).toBe(200);
    expect(((await api.json()) as Array<{ kind: string }>).map((r) => r.kind)).toEqual(['admin']);
    const page = await get('/ui/remediation?audit=control&audit=admin');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('data-kind="admin"');
    expect(html).not.toContain('data-kind="control"');
    // The queue page's filter too: the last queue named, not every queue.
    const queues = await (await get('/ui/queues?queue=first&queue=last')).text();
    expect(queues).toContain('no such queue known');
    for (const bad of ['bogus', '', 'Control']) {
      const refused = await get(`/api/v1/audit?kind=${bad}`);
      expect(refused.status, `kind=${bad}`).toBe(400);
      expect(await refused.json()).toEqual({ error: 'kind: must be control, remediation or admin', field: 'kind' });
      const refusedPage = await get(`/ui/remediation?audit=${bad}`);
      expect(refusedPage.status, `audit=${bad}`).toBe(400);
      expect(await refusedPage.text()).toContain('audit must be control, remediation or admin');
    }
  });

  it('takes client addresses from X-Forwarded-For only when trust_proxy says so', async () => {
    for (const [trust, expected] of [
      ['', '127.0.0.1'],
      ['loopback', '203.0.113.9'],
    ] as const) {
      const e = await start({ trust_proxy: trust, auth: { tokens: [{ ...tokens[0], role: 'operator' }] } });
      await fetch(`${e.url}/api/v1/actions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': '203.0.113.9', 'content-type': 'application/json' },
        body: JSON.stringify({ command: 'pool_grow', arguments: { n: 1 }, targets: { workers: ['celery@h'] }, dry_run: true }),
      });
      const record = e.service.audit.recent('control')[0] as { by: { ip: string } } | undefined;
      expect(record?.by.ip.replace('::ffff:', '')).toBe(expected);
    }
  });
});
