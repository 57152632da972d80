/**
 * What Python would print for a JSON value: `repr()` (Celery's argsrepr/kwargsrepr, shown in
 * task-received) and `json.dumps()` with its defaults (kombu's serializer: ", " and ": "
 * separators, ensure_ascii), so a message we publish is byte-for-byte what Celery 5.2.6 sends.
 */

/** A JSON value a task message can carry exactly; anything else is refused before sending. */
export class NotJsonError extends Error {}

const MAX_DEPTH = 64;

/** Checks that `value` is plain JSON that Python reads back as the same value. */
export function assertJson(value: unknown, path: string, depth = 0): void {
  if (depth > MAX_DEPTH) throw new NotJsonError(`${path} nests deeper than ${MAX_DEPTH} levels`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new NotJsonError(`${path} is not a finite number (JSON cannot carry it)`);
    // JSON.parse already rounded 12345678901234567890: what would reach the worker is not what was sent.
    if (Number.isInteger(value) && !Number.isSafeInteger(value))
      throw new NotJsonError(`${path} is an integer beyond ±2^53, which cannot be passed on exactly`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertJson(v, `${path}[${i}]`, depth + 1));
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value)) assertJson(v, `${path}.${k}`, depth + 1);
    return;
  }
  throw new NotJsonError(`${path} is not JSON`);
}

/** Python's float repr: the shortest round-trip digits, exponents with at least two digits. */
function pyNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return String(n);
  return String(n).replace(/e([+-])(\d)$/, 'e$10$2');
}

function hex(code: number, width: number): string {
  return code.toString(16).padStart(width, '0');
}

/** Python's str repr: single quotes unless the text holds ' and no ", non-printables escaped. */
function pyStringRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || (c >= 0x7f && c <= 0xa0)) out += `\\x${hex(c, 2)}`;
    else out += ch;
  }
  return out + quote;
}

export function pyRepr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'string') return pyStringRepr(value);
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  return `{${Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${pyStringRepr(k)}: ${pyRepr(v)}`)
    .join(', ')}}`;
}

/** reprlib-like cut of a repr (Celery's saferepr with argsrepr_maxsize / kwargsrepr_maxsize). */
export function cutRepr(repr: string, max: number): string {
  return repr.length <= max ? repr : `${repr.slice(0, max - 3)}...`;
}

const JSON_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };

function pyJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const c = s.charCodeAt(i);
    const esc = JSON_ESCAPES[ch];
    if (esc !== undefined) out += esc;
    else if (c < 0x20 || c > 0x7e)
      out += `\\u${hex(c, 4)}`; // per UTF-16 unit, as Python's ensure_ascii does
    else out += ch;
  }
  return `${out}"`;
}

/** json.dumps(value) with Python's defaults. */
export function pyJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'string') return pyJsonString(value);
  if (Array.isArray(value)) return `[${value.map(pyJson).join(', ')}]`;
  return `{${Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${pyJsonString(k)}: ${pyJson(v)}`)
    .join(', ')}}`;
}
