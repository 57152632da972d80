import { compileEmailPattern, MAX_EMAIL_LENGTH, type OidcProviderConfig } from '../../config/oidc-schema.js';
import { ROLES, type Role } from '../roles.js';

/** The claims of one sign-in: the ID token's (verified by the client library), with userinfo's added. */
export type Claims = Readonly<Record<string, unknown>>;

export type Decision =
  | { readonly allowed: true; readonly role: Role; readonly name: string }
  | {
      readonly allowed: false;
      /** For the login page: says why, showing only the person's own claims. */
      readonly reason: string;
      /** For the one log line: the same facts as fields. */
      readonly log: Readonly<Record<string, unknown>>;
    };

/** How many of a person's own claim values a refusal shows (a user may be in hundreds of groups). */
const SHOWN_VALUES = 10;
const SHOWN_VALUE_LENGTH = 80;

/**
 * A claim by name, or by a dotted path into nested objects (Keycloak's `realm_access.roles`). A
 * name that is itself a top-level claim wins, so namespaced claims with dots in them
 * (`https://gitlab.org/claims/groups/owner`) are found as they are. Only own properties are
 * read: a path like `__proto__.x` finds nothing.
 */
export function claimAt(claims: Claims, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let node: unknown = claims;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** A claim's values as strings: one string, or the strings, numbers and booleans of a list. */
export function claimStrings(value: unknown): string[] {
  const one = (v: unknown): string[] => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? [String(v)] : []);
  return Array.isArray(value) ? value.flatMap(one) : one(value);
}

const shown = (values: readonly string[]): string =>
  values.length === 0
    ? 'none'
    : values
        .slice(0, SHOWN_VALUES)
        .map((v) => (v.length > SHOWN_VALUE_LENGTH ? `${v.slice(0, SHOWN_VALUE_LENGTH)}…` : v))
        .join(', ') + (values.length > SHOWN_VALUES ? ` and ${values.length - SHOWN_VALUES} more` : '');

/**
 * Who gets in, with which role, for one provider. In order: a verified e-mail address (unless
 * require_verified_email is off), the required claims, the e-mail allow-list (Flower's --auth: a
 * list, or a regular expression matched on the whole address), then the role from the mapped
 * claim — the highest role any value maps to — or default_role. Nothing matched: refused.
 * The same decision runs at every sign-in, so after the session's absolute lifetime the person
 * is judged again on their claims of that day.
 */
export class AccessPolicy {
  readonly #emails: ReadonlySet<string>;
  readonly #pattern: RegExp | undefined;
  readonly #roleClaims: readonly string[];
  /** Highest role first, each with the values that give it. */
  readonly #roleValues: ReadonlyArray<readonly [Role, ReadonlySet<string>]>;

  constructor(private readonly config: OidcProviderConfig) {
    this.#emails = new Set(config.allow_emails.map((e) => e.toLowerCase()));
    this.#pattern = config.allow_email_regex === undefined ? undefined : compileEmailPattern(config.allow_email_regex);
    const roles = config.roles;
    this.#roleClaims = roles ? (typeof roles.claim === 'string' ? [roles.claim] : roles.claim) : [];
    this.#roleValues = roles ? [...ROLES].reverse().map((r) => [r, new Set(roles[r])] as const) : [];
  }

  decide(claims: Claims): Decision {
    const c = this.config;
    const email = typeof claims.email === 'string' ? claims.email : undefined;
    const who = email ?? (typeof claims.sub === 'string' ? `subject ${claims.sub}` : 'this account');
    const refuse = (reason: string, log: Record<string, unknown>): Decision => ({
      allowed: false,
      reason: `${c.name} account ${who}: ${reason}`,
      log: { email: email ?? null, ...log },
    });

    if (c.require_verified_email) {
      if (email === undefined) return refuse(`${c.name} sent no e-mail address (is the "email" scope granted?)`, { why: 'no_email' });
      if (claims.email_verified !== true) return refuse(`${c.name} has not verified this e-mail address`, { why: 'email_not_verified' });
    }
    for (const [path, expected] of Object.entries(c.require_claims)) {
      const values = claimStrings(claimAt(claims, path));
      if (!values.includes(expected))
        return refuse(`its ${path} (${shown(values)}) is not one allowed here`, {
          why: 'required_claim',
          claim: path,
          values: values.slice(0, SHOWN_VALUES),
        });
    }
    if (this.#emails.size > 0 || this.#pattern) {
      if (email === undefined || !this.#emailAllowed(email))
        return refuse('this e-mail address is not on the allow-list here', { why: 'email_not_allowed' });
    }
    const role = this.#mappedRole(claims) ?? c.default_role;
    if (role === undefined) {
      const values = this.#roleClaims.flatMap((p) => claimStrings(claimAt(claims, p)));
      const overage = this.#roleClaims.some((p) => claimAt(claims, `_claim_names.${p}`) !== undefined);
      return refuse(
        overage
          ? `the token carries a link instead of the ${this.#roleClaims.join(', ')} claim (too many groups): assign the groups to the application`
          : `none of its ${this.#roleClaims.join(', ')} (${shown(values)}) gives a role here`,
        { why: 'no_role', values: values.slice(0, SHOWN_VALUES), ...(overage ? { overage: true } : {}) },
      );
    }
    const nameValue = claimStrings(claimAt(claims, c.name_claim))[0] ?? email ?? (typeof claims.sub === 'string' ? claims.sub : 'unknown');
    return { allowed: true, role, name: `${c.id}/${nameValue}` };
  }

  /** Exact addresses first; the pattern only on addresses of a sane length, so no input can make it backtrack for long. */
  #emailAllowed(email: string): boolean {
    if (email.length > MAX_EMAIL_LENGTH) return false;
    if (this.#emails.has(email.toLowerCase())) return true;
    return this.#pattern?.test(email) ?? false;
  }

  #mappedRole(claims: Claims): Role | undefined {
    if (this.#roleClaims.length === 0) return undefined;
    const values = new Set(this.#roleClaims.flatMap((p) => claimStrings(claimAt(claims, p))));
    for (const [role, allowed] of this.#roleValues) {
      for (const v of allowed) if (values.has(v)) return role;
    }
    return undefined;
  }
}
