import { createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';

/**
 * A real OpenID Provider for the sign-in suites: oidc-provider (a certified implementation of
 * OpenID Connect, by the author of openid-client), in-process, over HTTPS with a certificate from
 * the suite's own CA. Only the login screen is ours: whoever `signInAs` names "signs in" and
 * consents at once, as FakeGitHub's authorize page does. PKCE is required of every client.
 *
 * Faults are injected the way a hostile or broken network would deliver them: the next token
 * response's ID token is tampered with, or re-signed with the provider's own key after a claim
 * was changed (expired, another audience, no nonce), so the client's checks are what refuse it.
 */

export interface TestOidcUser {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  groups?: string[];
  realm_access?: { roles: string[] };
  hd?: string;
}

/** Changes the next ID token's claims and re-signs it with the provider's key, or 'tamper': changes a claim and keeps the old signature. */
export type IdTokenFault = 'tamper' | ((claims: Record<string, unknown>) => Record<string, unknown>);

export interface TestOidcProviderOptions {
  certFile: string;
  keyFile: string;
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  users: TestOidcUser[];
  /** true: scope claims travel in the ID token (Google, Okta); false: only through userinfo (oidc-provider's default). */
  claimsInIdToken?: boolean;
  /** Listen here (to be the issuer a service was configured with before it started). */
  port?: number;
  /** The client's registered token endpoint authentication method. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export class TestOidcProvider {
  readonly users: Map<string, TestOidcUser>;
  /** Every authorization request's query, to check what the client asked for (PKCE, scope, nonce). */
  readonly authorizeRequests: URLSearchParams[] = [];
  /** Token endpoint answers, error codes included. */
  readonly tokenResponses: Array<{ status: number; error?: string }> = [];
  /** How each token request carried the client secret (oidc-provider takes either, whatever the client registered). */
  readonly tokenClientAuth: Array<'client_secret_basic' | 'client_secret_post'> = [];
  #nextSub: string | null = null;
  #fault: IdTokenFault | undefined;

  private constructor(
    private readonly server: Server,
    readonly issuer: string,
    private readonly signingKey: { key: KeyObject; kid: string },
    users: TestOidcUser[],
  ) {
    this.users = new Map(users.map((u) => [u.sub, u]));
  }

  static async start(o: TestOidcProviderOptions): Promise<TestOidcProvider> {
    const server = createServer({ cert: readFileSync(o.certFile), key: readFileSync(o.keyFile) });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
    });
    const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = 'test-key-1';
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };
    const fake = new TestOidcProvider(
      server,
      issuer,
      { key: createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })), kid },
      o.users,
    );
    const provider = fake.#provider(o, jwk);
    const handler = provider.callback();
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.startsWith('/interaction/')) {
        fake.#interaction(provider, req, res).catch((e: Error) => {
          res.statusCode = 500;
          res.end(e.message);
        });
        return;
      }
      Promise.resolve(handler(req, res)).catch((e: Error) => {
        res.statusCode = 500;
        res.end(e.message);
      });
    });
    return fake;
  }

  /** The person who "signs in" at the next login screen; null: they press Cancel. */
  signInAs(sub: string | null): void {
    this.#nextSub = sub;
  }

  /** The next token response's ID token is delivered broken this way (once). */
  faultNextIdToken(fault: IdTokenFault): void {
    this.#fault = fault;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #provider(o: TestOidcProviderOptions, jwk: Record<string, unknown>): Provider {
    const provider = new Provider(this.issuer, {
      clients: [
        {
          client_id: o.clientId,
          client_secret: o.clientSecret,
          redirect_uris: o.redirectUris,
          response_types: ['code'],
          grant_types: ['authorization_code'],
          token_endpoint_auth_method: o.tokenEndpointAuthMethod ?? 'client_secret_basic',
        },
      ],
      jwks: { keys: [jwk as never] },
      // Each provider its own keys: cookies ignore ports, so a browser sends one provider's session
      // cookie to another on 127.0.0.1, and with the same keys (and oidc-provider's process-wide
      // memory store) the second would take it for its own session.
      cookies: { keys: [randomBytes(32).toString('base64url')] },
      pkce: { methods: ['S256'], required: () => true },
      features: { devInteractions: { enabled: false } },
      conformIdTokenClaims: o.claimsInIdToken !== true,
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'groups', 'realm_access', 'hd'] },
      interactions: { url: (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      findAccount: (_ctx: KoaContextWithOIDC, sub: string) => {
        const user = this.users.get(sub);
        if (!user) return undefined;
        return { accountId: sub, claims: () => ({ ...this.users.get(sub)! }) };
      },
    });
    provider.use(async (ctx, next) => {
      if (ctx.path === '/auth' && ctx.method === 'GET') this.authorizeRequests.push(new URLSearchParams(ctx.querystring));
      if (ctx.path === '/token')
        this.tokenClientAuth.push(/^basic /i.test(ctx.get('authorization')) ? 'client_secret_basic' : 'client_secret_post');
      await next();
      if (ctx.path !== '/token') return;
      const body = ctx.body as { id_token?: string; error?: string } | undefined;
      this.tokenResponses.push({ status: ctx.status, ...(body?.error ? { error: body.error } : {}) });
      if (body?.id_token && this.#fault) {
        body.id_token = this.#broken(body.id_token, this.#fault);
        this.#fault = undefined;
      }
    });
    return provider;
  }

  /** The login and consent screens, answered at once for the user `signInAs` chose. */
  async #interaction(provider: Provider, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    const sub = this.#nextSub;
    if (sub === null || !this.users.has(sub)) {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' });
      return;
    }
    const grant = new provider.Grant({ accountId: sub, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { login: { accountId: sub }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  #broken(idToken: string, fault: IdTokenFault): string {
    const [header, payload, signature] = idToken.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (fault === 'tamper') return `${header}.${b64url({ ...claims, sub: 'someone-else' })}.${signature}`;
    const signed = `${b64url({ alg: 'RS256', kid: this.signingKey.kid })}.${b64url(fault(claims))}`;
    return `${signed}.${sign('sha256', Buffer.from(signed), this.signingKey.key).toString('base64url')}`;
  }
}
