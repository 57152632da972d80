import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';

/** What a browser does with an answer's Set-Cookie lines: keeps each cookie, forgets expired ones. */
export function keepCookies(jar: Map<string, string>, res: Response): void {
  for (const line of res.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';');
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq).trim();
    const expired =
      attributes.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) <= Date.now()) ||
      attributes.some((a) => /^\s*max-age=0\s*$/i.test(a));
    if (expired) jar.delete(name);
    else jar.set(name, pair!.slice(eq + 1).trim());
  }
}

/**
 * A small browser for sign-in round trips across several sites: cookies kept per host (as a
 * browser keeps them; the OpenID provider's and ours never mix), redirects never followed by
 * themselves, and HTTPS sites trusted through the test CA. `follow` walks redirects the way a
 * browser does, and stops where a test wants to look (e.g. before our callback).
 */
export class WebClient {
  readonly #jars = new Map<string, Map<string, string>>();
  readonly #agent: Agent | undefined;

  constructor(options: { caFile?: string } = {}) {
    this.#agent = options.caFile ? new Agent({ connect: { ca: readFileSync(options.caFile, 'utf8') } }) : undefined;
  }

  cookies(url: string): Map<string, string> {
    const host = new URL(url).host;
    let jar = this.#jars.get(host);
    if (!jar) this.#jars.set(host, (jar = new Map()));
    return jar;
  }

  async fetch(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    const jar = this.cookies(url);
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (jar.size > 0) headers.Cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = (await undiciFetch(url, {
      method: init.method ?? 'GET',
      headers,
      body: init.body,
      redirect: 'manual',
      ...(this.#agent ? { dispatcher: this.#agent } : {}),
    })) as unknown as Response;
    keepCookies(jar, res);
    return res;
  }

  /**
   * GETs `url` and follows redirects until one points at a URL `stop` accepts (returned, not
   * fetched) or an answer is not a redirect (then `stopped` is undefined and `last` is that answer).
   */
  async follow(url: string, stop: (next: string) => boolean, maxHops = 10): Promise<{ stopped?: string; last: Response }> {
    let current = url;
    for (let hop = 0; hop < maxHops; hop++) {
      const res = await this.fetch(current);
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return { last: res };
      await res.body?.cancel();
      const next = new URL(location, current).toString();
      if (stop(next)) return { stopped: next, last: res };
      current = next;
    }
    throw new Error(`more than ${maxHops} redirects from ${url}`);
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}
