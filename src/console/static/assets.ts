import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RequestHandler } from 'express';

/**
 * The console's browser files, beside this module: in src/ when run from source (tsx, vitest),
 * in dist/ after `npm run build` (scripts/copy-console-static.mjs copies them, tsc does not).
 * Read once at start: a release changes them, a running process never does.
 */
const FILES: ReadonlyArray<readonly [name: string, type: string]> = [
  ['console.css', 'text/css; charset=utf-8'],
  ['console.js', 'text/javascript; charset=utf-8'],
  // Without an icon, every browser asks for /favicon.ico, outside any url_prefix.
  ['favicon.svg', 'image/svg+xml'],
];

const ASSETS: ReadonlyMap<string, { type: string; body: Buffer }> = new Map(
  FILES.map(([name, type]) => [name, { type, body: readFileSync(new URL(name, import.meta.url)) }]),
);

/** Changes with the assets' content: pages link `?v=<this>`, so a new release is never served stale CSS. */
export const ASSET_VERSION = (() => {
  const hash = createHash('sha256');
  for (const { body } of ASSETS.values()) hash.update(body);
  return hash.digest('hex').slice(0, 12);
})();

/** GET /ui/static/<name>: public (the login page uses them too), cached, never sniffed. */
export const serveAsset: RequestHandler = (req, res, next) => {
  const asset = ASSETS.get(req.params.name as string);
  if (!asset) return next();
  // Pages ask for `?v=<ASSET_VERSION>`: that URL's content never changes, so it may be kept for
  // a year; an unversioned URL (a bookmarked favicon) is kept for a day.
  const versioned = req.query.v === ASSET_VERSION;
  res
    .set('Content-Type', asset.type)
    .set('X-Content-Type-Options', 'nosniff')
    .set('Cache-Control', versioned ? 'public, max-age=31536000, immutable' : 'public, max-age=86400');
  res.send(asset.body);
};
