import { describe, expect, it } from 'vitest';
import { LiteralError, parsePythonLiteral } from '../../src/tasks/python-literal.js';
import { pyRepr } from '../../src/tasks/python-text.js';
import { parseRerunBody, planRerun } from '../../src/tasks/rerun.js';
import { SubmitError } from '../../src/tasks/submit-options.js';
import { SubmitRefusedError } from '../../src/tasks/submit-policy.js';
import { newTask } from '../../src/tasks/task-history.js';
import { TaskStore } from '../../src/tasks/task-store.js';

const reason = (repr: string): string => {
  try {
    parsePythonLiteral(repr);
  } catch (e) {
    if (e instanceof LiteralError) return e.reason;
    throw e;
  }
  return 'parsed';
};

describe('reading task reprs back (python-literal.ts)', () => {
  it.each<[string, unknown]>([
    ['(1, 2)', [1, 2]],
    ['(1,)', [1]],
    ['()', []],
    ["{'a': 1, 'b': [True, False, None], 'c': {'d': -2.5e-07}}", { a: 1, b: [true, false, null], c: { d: -2.5e-7 } }],
    // Celery's saferepr: single quotes, only the quote escaped, control characters raw.
    ["('it\\'s', 'x\ny', 'é')", ["it's", 'x\ny', 'é']],
    // Python's repr (our publisher's argsrepr): double quotes when the text holds a ', full escapes.
    ['("it\'s \\\\ \\n \\x07 \\u00e9",)', ["it's \\ \n \x07 é"]],
  ])('%s', (repr, value) => {
    expect(parsePythonLiteral(repr)).toEqual(value);
  });

  it('reads back what our publisher writes (pyRepr) for JSON values', () => {
    const value = [1, 'two', { three: [3.5, null, true], 'q"uote': "it's \\ \n" }, 'é'];
    expect(parsePythonLiteral(pyRepr(value))).toEqual(value);
    // A tab in a single-quoted repr is \t there, but a raw tab in saferepr: not guessed.
    expect(() => parsePythonLiteral(pyRepr(['tab\there']))).toThrow(LiteralError);
  });

  it.each<[string, string]>([
    ["('aaaa...',)", 'truncated'], // saferepr cut a long string: still valid Python, refused
    ['([[[...]]],)', 'truncated'], // saferepr nesting cut
    ['(1, 2, 3…', 'truncated'], // our own cap
    ["('a\\b',)", 'not_literal'], // saferepr writes a backslash raw, repr escapes it: ambiguous
    ['(<object at 0x7f>,)', 'not_literal'],
    ["(b'xy',)", 'not_literal'],
    ['(100000000000000000000,)', 'not_literal'],
    ['(inf,)', 'not_literal'],
    ['({1: 2},)', 'not_literal'],
    ['(1, 2) junk', 'not_literal'],
    ['(' + '['.repeat(100) + ']'.repeat(100) + ',)', 'not_literal'],
  ])('%s is refused: %s', (repr, why) => {
    expect(reason(repr)).toBe(why);
  });
});

describe('planRerun', () => {
  const task = (fields: Partial<ReturnType<typeof newTask>>) =>
    Object.assign(newTask('orig-1'), { name: 't.add', args: '(1, 2)', kwargs: '{}', queue: 'q1' }, fields);

  it("takes the original's name, args, kwargs and queue, each replaceable", () => {
    expect(planRerun(task({}), {}, 'celery')).toEqual({ name: 't.add', args: [1, 2], kwargs: {}, queue: 'q1', edited: [] });
    expect(planRerun(task({}), { args: [5], queue: 'q2' }, 'celery')).toMatchObject({ args: [5], queue: 'q2', edited: ['args', 'queue'] });
    expect(planRerun(task({ queue: null }), {}, 'celery').queue).toBe('celery');
  });

  it('refuses truncated args with 409 saying why, and accepts edited args instead', () => {
    const truncated = task({ args: "('" + 'x'.repeat(50) + "...',)" });
    expect(() => planRerun(truncated, {}, 'celery')).toThrow(SubmitRefusedError);
    try {
      planRerun(truncated, {}, 'celery');
    } catch (e) {
      expect((e as SubmitRefusedError).status).toBe(409);
      expect((e as Error).message).toContain("its args were truncated (Celery's argsrepr_maxsize or tasks.max_args_chars)");
      expect((e as Error).message).toContain('give args in the body');
    }
    expect(planRerun(truncated, { args: ['short'] }, 'celery').args).toEqual(['short']);
  });

  it('refuses a task without a known name, or without args on record', () => {
    expect(() => planRerun(task({ name: null }), {}, 'celery')).toThrow('has no known name');
    expect(() => planRerun(task({ kwargs: null }), {}, 'celery')).toThrow('has no kwargs on record');
  });

  it('a body takes only args, kwargs and queue, with the submission checks', () => {
    expect(() => parseRerunBody({ task_id: 'x' })).toThrow(SubmitError);
    expect(() => parseRerunBody({ args: 'x' })).toThrow('args must be an array');
    expect(() => parseRerunBody({ args: [2 ** 60] })).toThrow('beyond ±2^53');
    expect(() => parseRerunBody({ queue: 'a b' })).toThrow('queue');
    expect(parseRerunBody(undefined)).toEqual({});
    expect(parseRerunBody({ kwargs: { a: 1 } })).toEqual({ kwargs: { a: 1 } });
  });
});

describe('TaskStore re-run links', () => {
  it('links a re-run and its original both ways, keeps the link when the re-run’s events arrive, and drops it on eviction', () => {
    const store = new TaskStore({ maxTasks: 3, limits: { args: 100, kwargs: 100, result: 100, exception: 100, traceback: 100 } });
    store.handle({
      type: 'task-received',
      uuid: 'orig',
      name: 't.add',
      args: '(1,)',
      kwargs: '{}',
      hostname: 'w@h',
      timestamp: 1,
      clock: 1,
    } as never);
    store.recordRerun('new', 'orig', { name: 't.add', args: '(1,)', kwargs: '{}', queue: 'celery' }, 2);
    expect(store.get('new')).toMatchObject({ state: 'PENDING', rerun_of: 'orig', name: 't.add', queue: 'celery' });
    expect(store.reruns('orig')).toEqual(['new']);
    store.handle({ type: 'task-succeeded', uuid: 'new', result: '2', runtime: 0.1, hostname: 'w@h', timestamp: 3, clock: 2 } as never);
    expect(store.get('new')).toMatchObject({ state: 'SUCCESS', rerun_of: 'orig' });
    for (const id of ['a', 'b', 'c'])
      store.handle({ type: 'task-received', uuid: id, name: 't', hostname: 'w@h', timestamp: 4, clock: 3 } as never);
    expect(store.get('new')).toBeUndefined();
    expect(store.reruns('orig')).toEqual([]);
  });

  it("keeps what a fast worker's events already recorded when the re-run is linked after them", () => {
    const store = new TaskStore({ maxTasks: 10, limits: { args: 100, kwargs: 100, result: 100, exception: 100, traceback: 100 } });
    store.handle({ type: 'task-failed', uuid: 'new', exception: 'ValueError()', hostname: 'w@h', timestamp: 3, clock: 2 } as never);
    store.recordRerun('new', 'orig', { name: 't.add', args: '(1,)', kwargs: '{}', queue: 'celery' }, 2);
    expect(store.get('new')).toMatchObject({ state: 'FAILURE', worker: 'w@h', rerun_of: 'orig' });
    expect(store.reruns('orig')).toEqual(['new']);
  });
});
