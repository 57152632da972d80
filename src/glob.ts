/**
 * fnmatch-style `*` and `?` (kombu's "glob" matcher), anchored at both ends: the one glob of the
 * service (remediation targets and `target.allow`, `tasks.submit.allow`). A linear scan that
 * backtracks only to the last `*`, so it costs at most pattern × text steps whatever either holds:
 * the regular expression it replaces (`.*` per star) backtracked polynomially in the number of
 * stars against broker-supplied worker names.
 */
export function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    const c = pattern[p];
    if (c === '*') {
      star = p++;
      resume = t;
    } else if (c !== undefined && (c === '?' || c === text[t])) {
      p++;
      t++;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else return false;
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}
