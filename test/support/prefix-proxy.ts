import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A reverse proxy that publishes the service under a sub-path only, as nginx's
 * `location /prefix/ { proxy_pass ... }` does: anything outside the prefix is a 404 here, so a
 * link, form action, asset or redirect that forgets the prefix breaks in the test as it would
 * in production. `strip` chooses between the two ways proxies are set up: passing the path on
 * unchanged (Flower's own expectation) or removing the prefix first.
 */
export async function startPrefixProxy(
  target: string | (() => string),
  prefix: string,
  strip: boolean,
): Promise<{ url: string; requests: string[]; strip: boolean; close(): Promise<void> }> {
  const requests: string[] = [];
  // Settable, so one proxy (one origin, the one auth.public_url names) can play both set-ups.
  const mode = { strip };
  const server = http.createServer((req, res) => {
    // A function when the service starts after the proxy (its config needs the proxy's URL).
    const upstream = new URL(typeof target === 'string' ? target : target());
    const url = req.url ?? '/';
    requests.push(url);
    if (url !== prefix && !url.startsWith(`${prefix}/`) && !url.startsWith(`${prefix}?`)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`outside ${prefix}: ${url}\n`);
      return;
    }
    const forwarded = mode.strip ? url.slice(prefix.length) || '/' : url;
    const out = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: forwarded.startsWith('/') ? forwarded : `/${forwarded}`,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', (e) => res.writeHead(502).end(String(e)));
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    get strip() {
      return mode.strip;
    },
    set strip(value: boolean) {
      mode.strip = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
