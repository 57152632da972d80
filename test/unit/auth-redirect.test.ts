import { describe, expect, it } from 'vitest';
import { safeNext } from '../../src/auth/redirect.js';

describe('safeNext: where to go after login', () => {
  it.each([
    ['a path', '/api/workers', '/api/workers'],
    ['a path with query and fragment', '/dash?q=1&x=%2F#top', '/dash?q=1&x=%2F#top'],
    ['the root', '/', '/'],
    ['an encoded double slash stays a path', '/%2F%2Fevil.example', '/%2F%2Fevil.example'],
  ])('keeps %s', (_scenario, next, expected) => {
    expect(safeNext(next)).toBe(expected);
  });

  it.each([
    ['protocol-relative', '//evil.example'],
    ['protocol-relative with path', '//evil.example/login'],
    ['backslash (browsers read it as a slash)', '/\\evil.example'],
    ['backslash first', '\\\\evil.example'],
    ['absolute https', 'https://evil.example/'],
    ['javascript:', 'javascript:alert(1)'],
    ['relative without slash', 'evil.example'],
    ['tab inside (browsers drop it)', '/\t/evil.example'],
    ['newline', '/\n/evil.example'],
    ['NUL', '/\u0000evil'],
    ['DEL', '/\u007fevil'],
    ['dot segment that resolves to //', '/.//evil.example'],
    ['empty', ''],
    ['too long', `/${'a'.repeat(3000)}`],
  ])('turns %s into the console, /ui', (_scenario, next) => {
    expect(safeNext(next)).toBe('/ui');
  });

  it.each([[undefined], [null], [42], [['/a', '/b']], [{ path: '/a' }]])('turns a non-string (%j) into /ui', (next) => {
    expect(safeNext(next)).toBe('/ui');
  });
});
