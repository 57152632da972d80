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
