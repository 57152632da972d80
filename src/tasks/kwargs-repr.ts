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
  const quote = s[start];
  for (let i = start + 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === quote) return i + 1;
  }
  return -1;
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
 * `key=value` pairs at the top level of a kwargs repr such as `{'user': 'ann', 'n': 3}` (Python's
 * repr, or JSON), lower-cased; quoted values without their quotes, others as written. One pass
 * over the text, each character looked at a bounded number of times: broker-supplied text must
 * never make a search slow (a backtracking regular expression once took minutes on a run of
 * backslashes). A pair cut off by the end of the text (a truncated repr) is left out.
 */
export function kwargsPairs(repr: string | null): Set<string> {
  const out = new Set<string>();
  if (repr === null) return out;
  const s = repr.length > MAX_SEARCHED_CHARS ? repr.slice(0, MAX_SEARCHED_CHARS) : repr;
  let i = 0;
  const skipSpace = () => {
    while (isSpace(s[i])) i++;
  };
  skipSpace();
  if (s[i] !== '{') return out;
  i++;
  for (;;) {
    skipSpace();
    if (s[i] !== "'" && s[i] !== '"') return out;
    const keyEnd = endOfQuoted(s, i);
    if (keyEnd < 0) return out;
    const key = s.slice(i + 1, keyEnd - 1);
    i = keyEnd;
    skipSpace();
    if (s[i] !== ':') return out;
    i++;
    skipSpace();
    let value: string;
    if (s[i] === "'" || s[i] === '"') {
      const end = endOfQuoted(s, i);
      if (end < 0) return out;
      value = s.slice(i + 1, end - 1);
      i = end;
      skipSpace();
      if (s[i] !== ',' && s[i] !== '}') return out;
    } else {
      const end = endOfValue(s, i);
      if (end < 0) return out;
      value = s.slice(i, end).trim();
      i = end;
    }
    out.add(`${key.toLowerCase()}=${value.toLowerCase()}`);
    if (s[i] === '}') return out;
    i++;
  }
}
