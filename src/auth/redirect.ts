const PROBE_ORIGIN = 'http://same-origin.invalid';

/**
 * The `next` target after login: only a path on this origin, otherwise "/". Browsers treat "\" as
 * "/" and drop tabs and newlines inside URLs, so "//host", "/\host" and "/\t/host" all leave the
 * site; anything with a backslash or control character is refused outright rather than cleaned.
 * The string is returned as given (not normalised): resolving "/.//evil" yields the path
 * "//evil", which a later redirect would read as another host.
 */
export function safeNext(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048) return '/';
  if (raw[0] !== '/' || raw[1] === '/') return '/';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\\\x00-\x1f\x7f]/.test(raw)) return '/';
  let resolved: URL;
  try {
    resolved = new URL(raw, PROBE_ORIGIN);
  } catch {
    return '/';
  }
  if (resolved.origin !== PROBE_ORIGIN || resolved.pathname.startsWith('//')) return '/';
  return raw;
}
