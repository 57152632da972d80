import { timingSafeEqual, createHash } from 'node:crypto';
import { inspect } from 'node:util';

/**
 * A value that must never be printed: it renders as `<secret>` in logs, JSON, errors and
 * `util.inspect`, and is only readable through an explicit `reveal()`.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  /** Constant-time comparison (both sides hashed first, so lengths leak nothing either). */
  equals(candidate: string): boolean {
    return constantTimeEqual(this.#value, candidate);
  }
  toString(): string {
    return '<secret>';
  }
  toJSON(): string {
    return '<secret>';
  }
  [inspect.custom](): string {
    return '<secret>';
  }
}

export function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The least length of a shared secret a client presents as is (webhook bearer tokens), from any source. */
export const MIN_PRESENTED_SECRET_LENGTH = 16;

/**
 * Why a secret that clients send verbatim in an Authorization header is unusable, or undefined.
 * The same rule for inline values and files: at least 16 characters of visible ASCII, since
 * that is all an HTTP credential can carry unaltered.
 */
export function presentedSecretProblem(value: string): string | undefined {
  if (value.length < MIN_PRESENTED_SECRET_LENGTH)
    return `must be at least ${MIN_PRESENTED_SECRET_LENGTH} characters (it is ${value.length})`;
  if (!/^[\x21-\x7e]+$/.test(value)) return 'may only contain visible ASCII characters (no spaces, no control or non-ASCII characters)';
  return undefined;
}
