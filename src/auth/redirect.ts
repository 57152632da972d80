const PROBE_ORIGIN = 'http://same-origin.invalid';

/** Where a sign-in lands when it was not sent from a page: the console, not the landing page. */
export const AFTER_SIGN_IN = '/ui';

/**
 * The `next` target after login: only a path on this origin, otherwise "/". Browsers treat "\" as
 * "/" and drop tabs and newlines inside URLs, so "//host", "/\host" and "/\t/host" all leave the
 * site; anything with a backslash or control character is refused outright rather than cleaned,
 * and leads to the console (AFTER_SIGN_IN).
 * The string is returned as given (not normalised): resolving "/.//evil" yields the path
 * "//evil", which a later redirect would read as another host.
 */
export function safeNext(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048) return AFTER_SIGN_IN;
  if (raw[0] !== '/' || raw[1] === '/') return AFTER_SIGN_IN;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\\\x00-\x1f\x7f]/.test(raw)) return AFTER_SIGN_IN;
  let resolved: URL;
  try {
    resolved = new URL(raw, PROBE_ORIGIN);
  } catch {
    return AFTER_SIGN_IN;
  }
  if (resolved.origin !== PROBE_ORIGIN || resolved.pathname.startsWith('//')) return AFTER_SIGN_IN;
  return raw;
}
