import { readFileSync } from 'node:fs';
import type { Request } from 'express';
import { parseAuthorization } from '../auth/credentials.js';
import { FailureLimiter } from '../auth/login-limiter.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/load.js';
import { constantTimeEqual, presentedSecretProblem, Secret } from '../config/secret.js';

/** What the Alertmanager receiver accepts: its own credentials, apart from the API's users and tokens. */
export interface WebhookCredentials {
  bearer?: Secret;
  basic?: { username: string; password: Secret };
  /** auth.insecure_no_auth with no webhook credential: accept anyone (logged loudly at start). */
  insecure?: boolean;
}

/** A basic-auth password shorter than this is accepted (refusing would break running configs) but warned about. */
export const RECOMMENDED_WEBHOOK_PASSWORD_LENGTH = 16;

export class WebhookCredentialsError extends Error {}

/**
 * The webhook's credentials from the config, the token file read once: the one loader both the
 * service and `--check-config` use, so both refuse the same things. Every bearer source must
 * pass the same minimum (an empty token file used to accept an empty credential). Returns
 * warnings for the caller to log. With remediation off there is no receiver, so nothing is read.
 */
export function loadWebhookCredentials(config: Pick<Config, 'remediation' | 'auth'>): {
  credentials: WebhookCredentials;
  warnings: string[];
} {
  const w = config.remediation.webhook;
  const credentials: WebhookCredentials = {};
  const warnings: string[] = [];
  if (!config.remediation.enabled) return { credentials, warnings };
  if (w.bearer_token) {
    const problem = presentedSecretProblem(w.bearer_token.reveal());
    if (problem) throw new WebhookCredentialsError(`remediation.webhook.bearer_token: ${problem}`);
    credentials.bearer = w.bearer_token;
  } else if (w.bearer_token_file) {
    let text: string;
    try {
      text = readFileSync(w.bearer_token_file, 'utf8');
    } catch (e) {
      throw new WebhookCredentialsError(
        `remediation.webhook.bearer_token_file: cannot read ${w.bearer_token_file}: ${(e as Error).message}`,
      );
    }
    // Only the line break an editor or `echo` leaves (and ASCII spaces) is dropped, never other characters.
    const token = text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
    const problem = presentedSecretProblem(token);
    if (problem) throw new WebhookCredentialsError(`remediation.webhook.bearer_token_file ${w.bearer_token_file}: the token ${problem}`);
    credentials.bearer = new Secret(token);
  }
  if (w.basic_auth) {
    credentials.basic = { username: w.basic_auth.username, password: w.basic_auth.password };
    if (w.basic_auth.password.reveal().length < RECOMMENDED_WEBHOOK_PASSWORD_LENGTH) {
      warnings.push(
        `remediation.webhook.basic_auth.password is shorter than ${RECOMMENDED_WEBHOOK_PASSWORD_LENGTH} characters: anyone who can reach the receiver can guess it; use a long random password or bearer_token_file`,
      );
    }
  }
  if (!credentials.bearer && !credentials.basic && config.auth.insecure_no_auth) credentials.insecure = true;
  return { credentials, warnings };
}

/** Credentials exactly as Alertmanager's http_config sends them, compared in constant time. */
export function webhookAuthorized(header: string | undefined, credentials: WebhookCredentials): boolean {
  if (credentials.insecure) return true;
  if (header === undefined) return false;
  const presented = parseAuthorization(header);
  if (presented.scheme === 'bearer') return credentials.bearer ? credentials.bearer.equals(presented.token) : false;
  if (presented.scheme === 'basic' && credentials.basic) {
    // Both halves are always compared, so a wrong username costs the same as a wrong password.
    const userOk = constantTimeEqual(presented.username, credentials.basic.username);
    const passOk = credentials.basic.password.equals(presented.password);
    return userOk && passOk;
  }
  return false;
}

/**
 * Failed webhook authentications per client: past `maxFailures` in the window, that client is
 * answered 429 without its credentials being looked at, so guessing runs at 10 tries per
 * window, not at line speed. A sender that has not failed (Alertmanager presenting its
 * configured credential) is never slowed.
 */
export class WebhookThrottle {
  readonly #failures: FailureLimiter;
  constructor(clock: Clock, options = { maxFailures: 10, windowSeconds: 300 }) {
    this.#failures = new FailureLimiter(clock, options);
  }
  retryAfterSeconds(req: Request): number {
    return this.#failures.retryAfterSeconds([clientKey(req)]);
  }
  recordFailure(req: Request): void {
    this.#failures.recordFailure([clientKey(req)]);
  }
}

const clientKey = (req: Request): string => `webhook:${req.ip ?? 'unknown'}`;
