import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASSET_VERSION, serveAsset } from '../../src/console/static/assets.js';

/**
 * The console's browser files are real files in src/console/static/ (linted, type-checked),
 * served as they are on disk: a versioned URL for a year, an unversioned one for a day.
 */
describe('console static files', () => {
  let base: string;
  let close: () => void;

  beforeAll(async () => {
    const app = express();
    app.get('/ui/static/:name', serveAsset);
    app.use((_req, res) => res.status(404).send('none'));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => server.close();
  });
  afterAll(() => close());

  it.each([
    ['console.js', 'text/javascript; charset=utf-8'],
    ['console.css', 'text/css; charset=utf-8'],
    ['favicon.svg', 'image/svg+xml'],
  ])('%s is the file on disk, with its type, never sniffed', async (name, type) => {
    const res = await fetch(`${base}/ui/static/${name}?v=${ASSET_VERSION}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(type);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await res.text()).toBe(readFileSync(new URL(`../../src/console/static/${name}`, import.meta.url), 'utf8'));
  });

  it.each([
    [`?v=${ASSET_VERSION}`, 'public, max-age=31536000, immutable'],
    ['', 'public, max-age=86400'],
    ['?v=0123456789ab', 'public, max-age=86400'],
  ])('console.css%s is cached as %j', async (query, cacheControl) => {
    const res = await fetch(`${base}/ui/static/console.css${query}`);
    expect(res.headers.get('cache-control')).toBe(cacheControl);
  });

  it.each(['assets.js', 'assets.ts', 'tsconfig.json', '..%2Fhtml.ts', 'constructor', '__proto__'])('%s is not served', async (name) => {
    expect((await fetch(`${base}/ui/static/${name}`)).status).toBe(404);
  });
});
