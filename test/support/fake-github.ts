import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino } from 'pino';
import { createAuth, describePrincipal, type Auth } from '../../src/auth/index.js';
import { authSchema, type AuthConfigInput } from '../../src/config/auth-schema.js';
import type { Clock } from '../../src/clock.js';
import type { Logger } from '../../src/log.js';
import { keepCookies } from './web-client.js';

/**
 * A stand-in for github.com's OAuth endpoints and the few REST endpoints the auth module calls,
 * on 127.0.0.1, so the whole OAuth dance runs through passport-github2 for real without the
 * internet. Behaves as GitHub documents: codes are single use and bound to the redirect_uri,
 * membership answers carry `state: active | pending`, non-members get 404.
 *
 * Also here, because the auth suites share them: a cookie-keeping fetch client (`Browser`), a
 * logger whose output can be searched for secrets, and a small app wired as src/http/app.ts is
 * meant to wire createAuth.
 */

export interface FakeGitHubUser {
  login: string;
  id: number;
  /** Shown on the profile; GitHub does not verify it, and the auth module must never trust it. */
  email?: string;
  orgs?: Record<string, 'active' | 'pending'>;
  /** Keyed "org/team-slug". */
  teams?: Record<string, 'active' | 'pending'>;
}

export interface FakeGitHubRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

export class FakeGitHub {
  readonly requests: FakeGitHubRequest[] = [];
  /** Access tokens handed out, so tests can assert none of them reached a log. */
  readonly issuedTokens: string[] = [];
  /** Scopes asked for on the authorize page, in order. */
  readonly requestedScopes: string[] = [];
  #nextLogin: string | undefined;
  readonly #codes = new Map<string, { login: string; redirectUri: string }>();
  readonly #tokens = new Map<string, string>();
  readonly #users: Map<string, FakeGitHubUser>;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly clientId: string,
    readonly clientSecret: string,
    users: FakeGitHubUser[],
  ) {
    this.#users = new Map(users.map((u) => [u.login.toLowerCase(), u]));
  }

  static async start(options: { clientId: string; clientSecret: string; users: FakeGitHubUser[] }): Promise<FakeGitHub> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const fake = new FakeGitHub(server, `http://127.0.0.1:${port}`, options.clientId, options.clientSecret, options.users);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      fake.#handle(req, res).catch((e: Error) => {
        res.statusCode = 500;
        res.end(e.message);
      });
    });
    return fake;
  }

  /** The user who "clicks Authorize" on the next visit to the authorize page. */
  signInAs(login: string): void {
    this.#nextLogin = login;
  }

  /** The `auth.github` URLs pointing here. */
  get urls(): { authorize_url: string; token_url: string; user_profile_url: string; api_url: string } {
    return {
      authorize_url: `${this.url}/login/oauth/authorize`,
      token_url: `${this.url}/login/oauth/access_token`,
      user_profile_url: `${this.url}/api/user`,
      api_url: `${this.url}/api`,
    };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push({ method: req.method ?? '', path: url.pathname, authorization: req.headers.authorization });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };

    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
      const q = url.searchParams;
      const redirectUri = q.get('redirect_uri');
      if (q.get('client_id') !== this.clientId || !redirectUri || q.get('response_type') !== 'code')
        return json(400, { error: 'bad authorize request' });
      this.requestedScopes.push(q.get('scope') ?? '');
      const back = new URL(redirectUri);
      const state = q.get('state');
      if (state !== null) back.searchParams.set('state', state);
      const login = this.#nextLogin;
      if (!login) back.searchParams.set('error', 'access_denied');
      else {
        const code = randomBytes(10).toString('hex');
        this.#codes.set(code, { login, redirectUri });
        back.searchParams.set('code', code);
      }
      res.writeHead(302, { Location: back.toString() });
      res.end();
      return;
    }

    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const grant = this.#codes.get(form.get('code') ?? '');
      this.#codes.delete(form.get('code') ?? '');
      if (form.get('client_id') !== this.clientId || form.get('client_secret') !== this.clientSecret) {
        return json(200, {
          error: 'incorrect_client_credentials',
          error_description: 'The client_id and/or client_secret passed are incorrect.',
        });
      }
      if (!grant || grant.redirectUri !== form.get('redirect_uri')) {
        return json(200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      }
      const token = `gho_${randomBytes(18).toString('base64url')}`;
      this.#tokens.set(token, grant.login);
      this.issuedTokens.push(token);
      return json(200, { access_token: token, token_type: 'bearer', scope: 'read:org' });
    }

    if (url.pathname.startsWith('/api/')) {
      const token = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const me = token ? this.#users.get(this.#tokens.get(token)?.toLowerCase() ?? '') : undefined;
      if (!me) return json(401, { message: 'Bad credentials' });
      const path = url.pathname.slice('/api'.length).split('/').map(decodeURIComponent);
      if (url.pathname === '/api/user') {
        return json(200, { login: me.login, id: me.id, name: me.login, email: me.email ?? null, html_url: `${this.url}/${me.login}` });
      }
      // /user/memberships/orgs/{org}
      if (path.length === 5 && path[1] === 'user' && path[2] === 'memberships' && path[3] === 'orgs') {
        const org = path[4]!;
        const state = Object.entries(me.orgs ?? {}).find(([o]) => o.toLowerCase() === org.toLowerCase())?.[1];
        if (!state) return json(404, { message: 'Not Found' });
        return json(200, { state, role: 'member', organization: { login: org }, user: { login: me.login } });
      }
      // /orgs/{org}/teams/{team_slug}/memberships/{username}
      if (path.length === 7 && path[1] === 'orgs' && path[3] === 'teams' && path[5] === 'memberships') {
        const [org, slug, username] = [path[2]!, path[4]!, path[6]!];
        const member = this.#users.get(username.toLowerCase());
        const state = Object.entries(member?.teams ?? {}).find(([t]) => t.toLowerCase() === `${org}/${slug}`.toLowerCase())?.[1];
        if (!state) return json(404, { message: 'Not Found' });
        return json(200, { state, role: 'member', url: `${this.url}${url.pathname}` });
      }
    }
    json(404, { message: 'Not Found' });
  }
}

/** A fetch client that keeps cookies and never follows redirects by itself, as the OAuth dance needs. */
export class Browser {
  readonly cookies = new Map<string, string>();

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set('Cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    keepCookies(this.cookies, res);
    return res;
  }

  /** A form POST as a browser sends it from a page on `origin`. */
  postForm(url: string, fields: Record<string, string>, origin: string | undefined): Promise<Response> {
    return this.fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...(origin ? { Origin: origin } : {}) },
      body: new URLSearchParams(fields).toString(),
    });
  }
}

/** The hidden `_csrf` value of a page's form. */
export function csrfFromPage(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!m) throw new Error('no _csrf field on the page');
  return m[1]!;
}

/** A logger at trace level whose every line is kept, to search for secrets. */
export function capturingLogger(): { logger: Logger; text: () => string; lines: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
  return { logger, text: () => lines.join(''), lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

export interface AuthTestApp {
  url: string;
  auth: Auth;
  close(): Promise<void>;
}

/**
 * A small app wired as the lead's src/http/app.ts will be: viewer reads, operator control,
 * admin shutdown. `public_url` defaults to the app's own loopback URL; `port` fixes it in advance
 * (an OpenID provider's client must list the callback before the app starts).
 */
export async function startAuthApp(input: AuthConfigInput, deps: { logger: Logger; clock?: Clock; port?: number }): Promise<AuthTestApp> {
  // Listening first: the app's own URL is its public_url, which createAuth needs.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(deps.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const redirects = input.github !== undefined || (input.oidc?.length ?? 0) > 0;
  const config = authSchema.parse({ ...input, ...(redirects && !input.public_url ? { public_url: url } : {}) });
  const auth = createAuth(config, { logger: deps.logger, ...(deps.clock ? { clock: deps.clock } : {}) });

  const app = express();
  app.use(auth.sessionMiddleware);
  app.use(auth.authenticate);
  app.use(auth.router);
  app.get('/', (_req, res) => res.type('text').send('landing\n'));
  app.get('/metrics', auth.protectMetrics, (_req, res) => res.type('text').send('celery_workers 1\n'));
  app.get('/api/whoami', auth.requireRole('viewer'), (req, res) => res.json(describePrincipal(req)));
  app.get('/api/csrf-token', auth.requireRole('viewer'), (req, res) => res.json({ token: auth.csrfToken(req) }));
  app.post('/api/workers/pool-grow', express.json(), auth.requireRole('operator'), (req, res) =>
    res.json({ ok: true, by: describePrincipal(req).actor }),
  );
  app.post('/api/workers/shutdown', express.json(), auth.requireRole('admin'), (req, res) =>
    res.json({ ok: true, by: describePrincipal(req).actor }),
  );
  app.post('/form/pool-grow', express.urlencoded({ extended: false }), auth.csrf, auth.requireRole('operator'), (_req, res) =>
    res.json({ ok: true }),
  );

  server.on('request', app);
  return {
    url,
    auth,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await auth.stop();
    },
  };
}
