import * as client from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import type { OidcProviderConfig } from '../../config/oidc-schema.js';
import type { Logger } from '../../log.js';
import { AccessPolicy, type Claims } from './access-policy.js';
import type { OidcMaterial } from './material.js';

/** One sign-in in progress, kept in the visitor's session between the redirect and the callback. */
export interface PendingSignIn {
  provider: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  issuedAtMs: number;
  /** Where to go afterwards, already checked by safeNext. */
  next: string;
}

/** A sign-in that did not work: the page's status and message, and the fields of its one log line. */
export class SignInError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly log: Readonly<Record<string, unknown>>,
  ) {
    super(message);
  }
}

/** Discovery retries: 1 s, 2 s, 4 s, … up to 30 s apart, for as long as the service runs. */
const RETRY_INITIAL_MS = 1000;
const RETRY_MAX_MS = 30_000;
const SHOWN_DESCRIPTION = 200;

/**
 * One OpenID Connect provider, through openid-client (a certified relying party): discovery from
 * the issuer URL, retried in the background until it works, so an unreachable issuer never stops
 * the service or the other sign-in methods; then the authorization code flow with PKCE (S256),
 * state and nonce, where the library checks the ID token's signature against the issuer's keys
 * (enableNonRepudiationChecks), its issuer, audience, expiry and nonce. Every request goes through an undici agent that trusts
 * the configured CA (openid-client speaks fetch; a CA is an agent option, not a fetch one).
 */
export class OidcProvider {
  readonly id: string;
  readonly name: string;
  readonly callbackUrl: string;
  readonly policy: AccessPolicy;
  #configuration: client.Configuration | undefined;
  #lastError: string | undefined;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #agent: Agent;
  readonly #fetch: client.CustomFetch;
  readonly #logger: Logger;

  constructor(
    readonly config: OidcProviderConfig,
    private readonly material: OidcMaterial,
    deps: { logger: Logger; publicUrl: string },
  ) {
    this.id = config.id;
    this.name = config.name;
    this.policy = new AccessPolicy(config);
    this.#logger = deps.logger;
    // Under public_url's path, as GitHub's callback: behind a proxy with url_prefix the proxy forwards it.
    this.callbackUrl = new URL(`./auth/oidc/${config.id}/callback`, deps.publicUrl.replace(/\/*$/, '/')).toString();
    const timeoutMs = config.timeout_seconds * 1000;
    this.#agent = new Agent({
      connect: { timeout: timeoutMs, ...(material.ca !== undefined ? { ca: material.ca } : {}) },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    this.#fetch = (url, options) => undiciFetch(url, { ...options, dispatcher: this.#agent } as never) as unknown as Promise<Response>;
  }

  /** Discovery done: the button works. */
  get available(): boolean {
    return this.#configuration !== undefined;
  }

  /** Why the provider is unavailable (the last discovery error), for logs and tests. */
  get problem(): string | undefined {
    return this.#configuration ? undefined : this.#lastError;
  }

  start(): void {
    this.#discoverInBackground();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#agent.close().catch(() => undefined);
  }

  #discoverInBackground(): void {
    // #discover catches everything it expects; anything else is a bug worth a line, not a crash.
    this.#discover().catch((e: Error) => this.#logger.error({ provider: this.id, err: e.message }, 'OpenID provider discovery crashed'));
  }

  async #discover(): Promise<void> {
    const c = this.config;
    try {
      const secret = this.material.clientSecret.reveal();
      const auth =
        c.token_endpoint_auth_method === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
      const configuration = await client.discovery(new URL(c.issuer_url), c.client_id, undefined, auth, {
        [client.customFetch]: this.#fetch,
        timeout: c.timeout_seconds,
        // openid-client trusts an ID token from the token endpoint on TLS alone, as the
        // specification allows; this checks its signature against the issuer's keys as well.
        execute: [client.enableNonRepudiationChecks],
      });
      if (this.#stopped) return;
      this.#configuration = configuration;
      this.#logger.info(
        { provider: this.id, issuer: c.issuer_url, attempts: this.#failures + 1 },
        'OpenID provider discovered: sign-in available',
      );
    } catch (e) {
      if (this.#stopped) return;
      this.#failures++;
      this.#lastError = describeFailure(e);
      const delayMs = Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** (this.#failures - 1));
      this.#logger.warn(
        { provider: this.id, issuer: c.issuer_url, err: this.#lastError, retryInSeconds: delayMs / 1000 },
        'OpenID provider discovery failed: its sign-in is unavailable until it succeeds',
      );
      this.#timer = setTimeout(() => this.#discoverInBackground(), delayMs);
      this.#timer.unref();
    }
  }

  /** The provider's authorization URL for a new sign-in, and what the callback will need to check it. */
  async begin(next: string, nowMs: number): Promise<{ url: URL; pending: PendingSignIn }> {
    const configuration = this.#ready();
    const codeVerifier = client.randomPKCECodeVerifier();
    const pending: PendingSignIn = {
      provider: this.id,
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier,
      issuedAtMs: nowMs,
      next,
    };
    const url = client.buildAuthorizationUrl(configuration, {
      ...this.config.authorization_params,
      redirect_uri: this.callbackUrl,
      scope: this.config.scopes.join(' '),
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    });
    return { url, pending };
  }

  /**
   * The callback: the code exchanged (with the PKCE verifier and the client secret), the ID token
   * checked, then the userinfo claims added (its `sub` must be the ID token's). Throws SignInError.
   */
  async complete(query: string, pending: PendingSignIn): Promise<Claims> {
    const configuration = this.#ready();
    const current = new URL(this.callbackUrl);
    current.search = query;
    let tokens;
    try {
      tokens = await client.authorizationCodeGrant(configuration, current, {
        pkceCodeVerifier: pending.codeVerifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
        idTokenExpected: true,
      });
    } catch (e) {
      throw this.#explain(e);
    }
    const idToken = tokens.claims();
    if (!idToken) throw new SignInError(502, `${this.name} sent no ID token`, { why: 'no_id_token' });
    if (!this.config.userinfo || configuration.serverMetadata().userinfo_endpoint === undefined) return { ...idToken };
    try {
      const info = await client.fetchUserInfo(configuration, tokens.access_token, idToken.sub);
      // The signed ID token wins where both say something.
      return { ...info, ...idToken };
    } catch (e) {
      throw this.#explain(e);
    }
  }

  #ready(): client.Configuration {
    if (!this.#configuration) {
      throw new SignInError(
        503,
        `Sign-in with ${this.name} is unavailable: its issuer could not be reached yet (retrying in the background). Try again shortly or use another method.`,
        { why: 'provider_unavailable', err: this.#lastError ?? null },
      );
    }
    return this.#configuration;
  }

  /** A library error as a page message: the provider's own error code and description, or what was wrong with the token. Never a token or a secret. */
  #explain(e: unknown): SignInError {
    const name = this.name;
    if (e instanceof client.AuthorizationResponseError) {
      return new SignInError(403, `${name} refused the sign-in: ${e.error}${describe(e.error_description)}`, {
        why: 'provider_error',
        error: e.error,
      });
    }
    if (e instanceof client.ResponseBodyError) return this.#tokenError(e.error, e.error_description, e.status);
    if (e instanceof client.WWWAuthenticateChallengeError) {
      // A 401 with a Bearer/Basic challenge: the error is in the challenge's parameters.
      const p = e.cause[0]?.parameters;
      return this.#tokenError(p?.error ?? 'unauthorized', p?.error_description, e.status);
    }
    // openid-client wraps the check that failed; the inner error names the claim.
    const outer = e as Error & { code?: string; cause?: unknown };
    const inner =
      outer instanceof client.ClientError && outer.cause instanceof Error
        ? (outer.cause as Error & { code?: string; cause?: unknown })
        : outer;
    const claim = typeof inner.cause === 'object' && inner.cause !== null ? (inner.cause as { claim?: unknown }).claim : undefined;
    const token = idTokenProblem(inner.message, inner.code ?? outer.code, claim);
    if (token) return new SignInError(403, `${name}'s ID token was refused: ${token}`, { why: 'id_token', err: inner.message });
    return new SignInError(502, `Could not complete the sign-in with ${name}: ${describeFailure(e)}`, {
      why: 'provider_unreachable',
      err: describeFailure(e),
    });
  }

  #tokenError(error: string, description: string | undefined, status: number): SignInError {
    const hint = error === 'invalid_client' ? ' — check client_id and the client secret' : '';
    return new SignInError(502, `${this.name} refused the code exchange: ${error}${describe(description)}${hint}`, {
      why: 'token_error',
      error,
      status,
    });
  }
}

function describe(description: string | undefined): string {
  if (!description) return '';
  return ` (${description.length > SHOWN_DESCRIPTION ? `${description.slice(0, SHOWN_DESCRIPTION)}…` : description})`;
}

/** What a check of the ID token found, in words; undefined when the error is not about the token. */
function idTokenProblem(message: string, code: string | undefined, claim: unknown): string | undefined {
  if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED') {
    if (claim === 'aud' || claim === 'azp') return 'it was issued to another client (aud)';
    if (claim === 'iss') return 'it was issued by another issuer (iss)';
    if (claim === 'nonce') return "it does not carry this sign-in's nonce (replayed or forged)";
    return message;
  }
  if (code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') return 'it has expired or is not valid yet (exp, iat, nbf; check the clocks)';
  if (/signature verification failed/i.test(message)) return 'its signature does not verify';
  if (/claim missing/i.test(message) && /nonce/.test(message)) return 'it carries no nonce (replayed or forged)';
  if (/JWT|ID Token|id_token/i.test(message)) return message;
  return undefined;
}

/** A network or protocol failure in one line: the message, and the system error code beneath it. */
function describeFailure(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  const cause = err.cause && typeof err.cause === 'object' ? (err.cause.code ?? err.cause.message) : undefined;
  return cause ? `${err.message} (${cause})` : (err.message ?? String(e));
}
