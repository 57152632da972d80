import type { RequestHandler } from 'express';

/**
 * `url_prefix` (Flower's option, and the one its users file issues about most): the service
 * answers under a sub-path behind a reverse proxy. Requests are accepted with the prefix (a
 * proxy that passes the path on) and without it (a proxy that strips it), and every redirect
 * this app sends gets it, so sign-in, sign-out and `next=` round trips stay under the prefix.
 * Pages read `res.locals.urlPrefix` to build their links.
 */
export function urlPrefix(prefix: string): RequestHandler {
  return (req, res, next) => {
    res.locals.urlPrefix = prefix;
    if (prefix === '') return next();
    if (underPrefix(prefix, req.url)) {
      const rest = req.url.slice(prefix.length);
      req.url = rest.startsWith('/') ? rest : `/${rest}`;
    }
    const location = res.location.bind(res);
    res.location = (url: string) => location(withUrlPrefix(prefix, url));
    next();
  };
}

function underPrefix(prefix: string, url: string): boolean {
  return url === prefix || url.startsWith(`${prefix}/`) || url.startsWith(`${prefix}?`);
}

/** A root-relative path of this app, under the prefix; absolute URLs and already-prefixed paths unchanged. */
export function withUrlPrefix(prefix: string, url: string): string {
  if (prefix === '' || !url.startsWith('/') || url.startsWith('//') || underPrefix(prefix, url)) return url;
  return prefix + url;
}
