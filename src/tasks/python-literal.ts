/**
 * Reads back the Python reprs Celery puts in task events (`argsrepr`, `kwargsrepr`) as JSON
 * values, for a re-run: the subset of Python literals a JSON task message can have produced
 * (tuples and lists, dicts with string keys, str, int, float, True/False/None). Anything else —
 * an object's repr, bytes, a set — cannot be sent again as it was and is refused by name.
 * One pass over the text, bounded by its length and MAX_DEPTH.
 */

/** Why a repr cannot be read back: truncated (cut by a cap) or not a JSON-able literal. */
export class LiteralError extends Error {
  constructor(
    readonly reason: 'truncated' | 'not_literal',
    message: string,
  ) {
    super(message);
  }
}

const MAX_DEPTH = 64;
const HEX: Record<number, RegExp> = { 2: /^[0-9a-fA-F]{2}$/, 4: /^[0-9a-fA-F]{4}$/, 8: /^[0-9a-fA-F]{8}$/ };
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v' };

/**
 * A repr that was cut short: our own cap (`…` at the end, task-history.ts text()) or Celery's
 * saferepr, which writes `...` where it stopped (argsrepr_maxsize, a long string, nesting deeper
 * than three levels). A real "..." in an argument is refused too: the text cannot tell them apart.
 */
export function looksTruncated(repr: string): boolean {
  return repr.endsWith('…') || repr.includes('...');
}

export function parsePythonLiteral(repr: string): unknown {
  // Over 80 lines on purpose: one recursive-descent parser whose steps share the cursor `i`;
  // split into functions they would pass it around by hand.
  // Checked first: saferepr cuts a long string to 'abc...', which still reads as a string.
  if (looksTruncated(repr)) throw new LiteralError('truncated', 'it was cut short (a "…" or "..." where the text was truncated)');
  let i = 0;
  const s = repr;
  const fail = (what: string): never => {
    throw new LiteralError('not_literal', `${what} at character ${i}`);
  };
  const space = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\n')) i++;
  };
  // Two writers, two string styles: Python's repr (our publisher's argsrepr) escapes backslashes
  // and control characters and picks " when the text holds a '; Celery's saferepr (every Celery
  // client) always uses ' and escapes only the quote. A double-quoted string is repr's; in a
  // single-quoted one only \' means the same in both, so any other backslash is refused.
  const str = (): string => {
    const quote = s[i]!;
    i++;
    let out = '';
    while (i < s.length && s[i] !== quote) {
      if (s[i] !== '\\') {
        out += s[i++];
        continue;
      }
      const e = s[i + 1];
      if (e === undefined) return fail('an unfinished escape');
      if (quote === "'") {
        if (e !== "'") fail("a backslash whose meaning differs between Python's repr and Celery's saferepr");
        out += "'";
        i += 2;
        continue;
      }
      if (e in ESCAPES) {
        out += ESCAPES[e];
        i += 2;
        continue;
      }
      const width = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
      const hex = s.slice(i + 2, i + 2 + width);
      if (width === 0 || !HEX[width]!.test(hex)) fail('an unknown escape');
      out += String.fromCodePoint(parseInt(hex, 16));
      i += 2 + width;
    }
    if (i >= s.length) fail('an unfinished string');
    i++;
    return out;
  };
  const value = (depth: number): unknown => {
    if (depth > MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
    space();
    const c = s[i];
    if (c === "'" || c === '"') return str();
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: unknown[] = [];
      for (;;) {
        space();
        if (s[i] === close) break;
        items.push(value(depth + 1));
        space();
        if (s[i] === ',') i++;
        else if (s[i] !== close) fail(`an unexpected ${s[i] === undefined ? 'end' : `'${s[i]}'`}`);
      }
      i++;
      return items;
    }
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      for (;;) {
        space();
        if (s[i] === '}') break;
        if (s[i] !== "'" && s[i] !== '"') fail('a dict key that is not a string');
        const key = str();
        space();
        if (s[i] !== ':') fail("a missing ':'");
        i++;
        out[key] = value(depth + 1);
        space();
        if (s[i] === ',') i++;
        else if (s[i] !== '}') fail(`an unexpected ${s[i] === undefined ? 'end' : `'${s[i]}'`}`);
      }
      i++;
      return out;
    }
    const word = /^(True|False|None|-?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?))/.exec(s.slice(i, i + 400));
    if (!word) return fail('something that is not a JSON-able Python literal');
    i += word[0].length;
    const w = word[0];
    if (w === 'True') return true;
    if (w === 'False') return false;
    if (w === 'None') return null;
    const n = Number(w);
    if (/^-?\d+$/.test(w) && !Number.isSafeInteger(n)) fail('an integer beyond ±2^53');
    return n;
  };
  const out = value(0);
  space();
  if (i !== s.length) fail('text after the value');
  return out;
}
