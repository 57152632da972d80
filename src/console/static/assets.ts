import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import { CONSOLE_CSS } from './console-css.js';
import { CONSOLE_JS } from './console-js.js';

const ASSETS: Readonly<Record<string, { type: string; body: string }>> = {
  'console.css': { type: 'text/css; charset=utf-8', body: CONSOLE_CSS },
  'console.js': { type: 'text/javascript; charset=utf-8', body: CONSOLE_JS },
  // Without an icon, every browser asks for /favicon.ico, outside any url_prefix.
  'favicon.svg': {
    type: 'image/svg+xml',
    body: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#14213d"/><path d="M4 11l3-6 2 4 1.5-2L12 11z" fill="#fca311"/></svg>',
  },
};

/** Changes with the assets' content: pages link `?v=<this>`, so a new release is never served stale CSS. */
export const ASSET_VERSION = createHash('sha256').update(CONSOLE_CSS).update(CONSOLE_JS).digest('hex').slice(0, 12);

/** GET /ui/static/<name>: public (the login page could use them too), cached, never sniffed. */
export const serveAsset: RequestHandler = (req, res, next) => {
  const asset = Object.hasOwn(ASSETS, req.params.name as string) ? ASSETS[req.params.name as string] : undefined;
  if (!asset) return next();
  res.set('Content-Type', asset.type).set('X-Content-Type-Options', 'nosniff').set('Cache-Control', 'public, max-age=86400');
  res.send(asset.body);
};
