import { describe, expect, it } from 'vitest';
import { globMatch } from '../../src/glob.js';

describe('globMatch (fnmatch * and ?, anchored)', () => {
  it.each([
    ['celery@web-*', 'celery@web-1', true],
    ['celery@web-*', 'celery@web-', true],
    ['celery@web-*', 'celery@db-1', false],
    ['celery@web-?', 'celery@web-12', false],
    ['*@web-?', 'celery@web-1', true],
    ['tasks.*', 'tasks.add', true],
    ['tasks.*', 'celery.accumulate', false],
    ['*', '', true],
    ['', '', true],
    ['', 'a', false],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['**a', 'ba', true],
    ['a.b', 'aXb', false],
  ])('%s against %s: %s', (pattern, text, expected) => {
    expect(globMatch(pattern, text)).toBe(expected);
  });

  it('many stars against a long worker name end at once (a `.*` per star backtracked polynomially)', () => {
    const pattern = `${'*a'.repeat(99)}b`;
    expect(pattern.length).toBe(199);
    expect(globMatch(pattern, 'a'.repeat(255))).toBe(false);
    expect(globMatch(pattern, `${'a'.repeat(254)}b`)).toBe(true);
  });
});
