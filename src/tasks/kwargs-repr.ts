/**
 * Reading the Python reprs Celery puts in task events (`argsrepr`, `kwargsrepr`) for searches:
 * text any client of the Celery app chooses, so every function here is one bounded pass.
 */

/**
 * How much of one field a search looks at: the first this many characters. Fields are cut at
 * `tasks.max_*_chars` (1024 by default) already; this bounds what one search can cost per task
 * when those limits are raised, whatever the text holds.
 */
export const MAX_SEARCHED_CHARS = 16_384;

/** A field as a search compares it: lower-cased, at most MAX_SEARCHED_CHARS long. */
export const searched = (v: string | null): string =>
  v === null ? '' : (v.length > MAX_SEARCHED_CHARS ? v.slice(0, MAX_SEARCHED_CHARS) : v).toLowerCase();

/** Index just past the quoted string opening at `start` (`\` escapes the next character), or -1 if it never closes. */
function endOfQuoted(s: string, start: number): number {
  const quote = s[start]!;
  let i = start + 1;
  // Jumps from one quote or backslash to the next (native searches), never back.
  for (;;) {
    const close = s.indexOf(quote, i);
    if (close < 0) return -1;
    const escape = s.indexOf('\\', i);
    if (escape < 0 || escape > close) return close + 1;
    i = escape + 2;
  }
}

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const CLOSERS: Record<string, string> = { '(': ')', '[': ']', '{': '}' };

/**
 * Index of the `,` or `}` that ends an unquoted value starting at `start` (brackets and quoted
 * strings inside it skipped), or -1 if the text ends (or a bracket is mismatched) first.
 */
function endOfValue(s: string, start: number): number {
  const open: string[] = [];
  for (let i = start; i < s.length; i++) {
    const c = s[i]!;
    if (c === "'" || c === '"') {
      const end = endOfQuoted(s, i);
      if (end < 0) return -1;
      i = end - 1;
    } else if (c in CLOSERS) open.push(CLOSERS[c]!);
    else if (c === ')' || c === ']' || c === '}') {
      if (open.length === 0) return c === '}' ? i : -1;
      if (open.pop() !== c) return -1;
    } else if (c === ',' && open.length === 0) return i;
  }
  return -1;
}

/**
 * Calls `visit(key, valueStart, valueEnd)` for each `key: value` at the top level of a kwargs repr
 * such as `{'user': 'ann', 'n': 3}` (Python's repr, or JSON): the key without its quotes, the
 * value's bounds in `s` (a quoted value without its quotes, another one trimmed), until `visit`
 * returns true. One pass over the text, each character looked at a bounded number of times:
 * broker-supplied text must never make a search slow (a backtracking regular expression once took
 * minutes on a run of backslashes). A pair cut off by the end of the text (a truncated repr) is
 * left out. Values are not copied: a search compares only the value of the key it asks for.
 */
function forEachPair(s: string, visit: (key: string, valueStart: number, valueEnd: number) => boolean): void {
  let i = 0;
  const skipSpace = () => {
    while (isSpace(s[i])) i++;
  };
  skipSpace();
  if (s[i] !== '{') return;
  i++;
  for (;;) {
    skipSpace();
    if (s[i] !== "'" && s[i] !== '"') return;
    const keyEnd = endOfQuoted(s, i);
    if (keyEnd < 0) return;
    const key = s.slice(i + 1, keyEnd - 1);
    i = keyEnd;
    skipSpace();
    if (s[i] !== ':') return;
    i++;
    skipSpace();
    let start: number;
    let end: number;
    if (s[i] === "'" || s[i] === '"') {
      const close = endOfQuoted(s, i);
      if (close < 0) return;
      [start, end] = [i + 1, close - 1];
      i = close;
      skipSpace();
      if (s[i] !== ',' && s[i] !== '}') return;
    } else {
      const stop = endOfValue(s, i);
      if (stop < 0) return;
      [start, end] = [i, stop];
      while (start < end && isSpace(s[start])) start++;
      while (end > start && isSpace(s[end - 1])) end--;
      i = stop;
    }
    if (visit(key, start, end) || s[i] === '}') return;
    i++;
  }
}

const bounded = (repr: string): string => (repr.length > MAX_SEARCHED_CHARS ? repr.slice(0, MAX_SEARCHED_CHARS) : repr);

/** Every top-level `key=value` of a kwargs repr, lower-cased (see forEachPair). */
export function kwargsPairs(repr: string | null): Set<string> {
  const out = new Set<string>();
  if (repr === null) return out;
  const s = bounded(repr);
  forEachPair(s, (key, start, end) => {
    out.add(`${key.toLowerCase()}=${s.slice(start, end).toLowerCase()}`);
    return false;
  });
  return out;
}

/** Whether a kwargs repr has `key` (lower-case) with exactly `value` (lower-case) at its top level: `kwargs:key=value`. */
export function hasKwarg(repr: string | null, key: string, value: string): boolean {
  if (repr === null) return false;
  const s = bounded(repr);
  let found = false;
  forEachPair(s, (k, start, end) => {
    found = end - start === value.length && k.toLowerCase() === key && s.slice(start, end).toLowerCase() === value;
    return found;
  });
  return found;
}
