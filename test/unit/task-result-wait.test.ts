import type { Request } from 'express';
import { describe, expect, it } from 'vitest';
import { waitSeconds } from '../../src/http/task-submit-api.js';
import { SubmitError } from '../../src/tasks/submit-options.js';

const asked = (timeout: unknown) => ({ query: timeout === undefined ? {} : { timeout } }) as unknown as Request;

function refusal(timeout: unknown, max: number, operator = true): string {
  try {
    waitSeconds(asked(timeout), max, operator);
  } catch (e) {
    expect(e).toBeInstanceOf(SubmitError);
    return (e as Error).message;
  }
  throw new Error(`timeout=${String(timeout)} was accepted`);
}

describe('timeout of a result wait (/api/task/result, /api/task/apply)', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['0', 0],
    ['0.5', 0.5],
    [' 2 ', 2],
    ['60', 60],
    ['1.123456', 1.123456],
  ])('timeout=%j waits %j s', (timeout, seconds) => {
    expect(waitSeconds(asked(timeout), 60)).toBe(seconds);
  });

  it.each(['forever', '-1', '1e3', '0x10', '61', '60.000001', '1.1234567', '1 2', '.5', '5.', '1234567'])(
    'timeout=%j is refused with the bounds in words',
    (timeout) => {
      expect(refusal(timeout, 60)).toBe('timeout must be seconds from 0 to 60');
    },
  );

  it('a viewer is told the operator role waits longer', () => {
    expect(refusal('10', 5, false)).toBe('timeout must be seconds from 0 to 5 for a viewer (longer waits need the operator role)');
  });

  it('a repeated timeout counts by its last value, as every request parameter does', () => {
    expect(waitSeconds(asked(['30', '0.5']), 60)).toBe(0.5);
    expect(refusal(['0.5', '3601'], 3600)).toBe('timeout must be seconds from 0 to 3600');
  });

  it('a nested value is refused, not read', () => {
    expect(refusal({ seconds: '1' }, 60)).toBe('timeout must be seconds from 0 to 60');
  });
});
