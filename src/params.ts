/**
 * Request parameters, read one way for every route: Flower reads each from the query string or
 * a form/JSON body (tornado's get_argument), the last value when repeated; so do we. Values that
 * arrive as text are converted here, strictly, before any validator sees them. A bad value throws
 * what the caller's `fail` makes, so each layer answers in its own error (the control API's
 * CommandValidationError, the task query's TaskQueryError) from the same rules.
 */

/** Parsed parameters as Express gives them (req.query, a body): strings, arrays when repeated, nested objects. */
export type Params = Readonly<Record<string, unknown>>;

/** One parameter: the body's when it has it, else the query string's, the last if repeated. */
export function paramValue(name: string, query: Params, body?: unknown): unknown {
  if (body && typeof body === 'object' && !Array.isArray(body) && (body as Params)[name] !== undefined) return (body as Params)[name];
  const v = query[name];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** The words a boolean parameter takes. */
export interface BooleanWords {
  readonly yes: RegExp;
  readonly no: RegExp;
  readonly problem: string;
}

/** The control API's: true, 1, yes, on / false, 0, no, off. */
export const PLAIN_BOOLEAN: BooleanWords = { yes: /^(true|1|yes|on)$/i, no: /^(false|0|no|off)$/i, problem: 'must be true or false' };

export class ParamReader {
  constructor(
    /** The raw value of one parameter (see paramValue). */
    readonly value: (name: string) => unknown,
    private readonly fail: (name: string, problem: string) => Error,
  ) {}

  /** Text as sent ('' included unless `emptyIsAbsent`); anything else (a nested object, a JSON number) is refused. */
  text(name: string, { emptyIsAbsent = false } = {}): string | undefined {
    const v = this.value(name);
    if (v === undefined || (emptyIsAbsent && v === '')) return undefined;
    if (typeof v !== 'string') throw this.fail(name, 'must be text');
    return v;
  }

  /** A whole number, within `range` when given (then the refusal names the range and the value). */
  integer(name: string, range?: { min: number; max: number }): number | undefined {
    const v = this.value(name);
    if (v === undefined || v === '') return undefined;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d{1,12}$/.test(v.trim()) ? Number(v.trim()) : undefined;
    if (range) {
      if (n !== undefined && Number.isInteger(n) && n >= range.min && n <= range.max) return n;
      throw this.fail(name, `must be a whole number from ${range.min} to ${range.max}, got '${String(v).slice(0, 40)}'`);
    }
    if (typeof v === 'number' || (n !== undefined && /^-?\d{1,9}$/.test(String(v).trim()))) return n;
    throw this.fail(name, 'must be a whole number');
  }

  /** A number: digits with up to six decimals. */
  number(name: string): number | undefined {
    const v = this.value(name);
    if (v === undefined || v === '') return undefined;
    if (typeof v === 'number') return v;
    if (typeof v === 'string' && /^\d{1,9}(\.\d{1,6})?$/.test(v.trim())) return Number(v.trim());
    throw this.fail(name, 'must be a number');
  }

  /** One of a closed set of words (the audit kinds), as written: '' and any other case are refused. */
  oneOf<T extends string>(name: string, words: readonly T[]): T | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v === 'string' && (words as readonly string[]).includes(v)) return v as T;
    throw this.fail(name, `must be ${words.slice(0, -1).join(', ')} or ${words.at(-1)}`);
  }

  boolean(name: string, fallback: boolean, words: BooleanWords = PLAIN_BOOLEAN): boolean {
    const v = this.value(name);
    if (v === undefined || v === '') return fallback;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      if (words.yes.test(v)) return true;
      if (words.no.test(v)) return false;
    }
    throw this.fail(name, words.problem);
  }
}
