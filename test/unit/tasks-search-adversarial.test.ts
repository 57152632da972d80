import { describe, expect, it } from 'vitest';
import type { TaskEvent } from '../../src/celery/events.js';
import { MAX_SEARCHED_CHARS, kwargsPairs } from '../../src/tasks/kwargs-repr.js';
import { parseSearch } from '../../src/tasks/task-query.js';
import { TaskStore } from '../../src/tasks/task-store.js';

/**
 * Every search operator over task text a Celery client chose to be hostile
 * (long runs of backslashes, quotes and brackets, 100 000 characters) must finish and answer
 * right. The kwargs:key=value search once used a backtracking regular expression that took
 * 38 s on 44 backslashes and never finished on 60: this file would hang on it.
 */

const BIG = 200_000;
const LIMITS = { args: BIG, kwargs: BIG, result: BIG, exception: BIG, traceback: BIG };
const T = 1_800_000_000;
const N = 100_000;

const backslashes = (n: number) => '\\'.repeat(n);
/** Text that defeated the old regex: a quoted string of backslashes inside a list (not followed by `:`). */
const inList = (n: number) => `['C:${backslashes(n)}x', "${backslashes(n)}"]`;
const HOSTILE: Record<string, string> = {
  slashes44: backslashes(44),
  slashes1000: backslashes(1000),
  slashes100k: backslashes(N),
  quotes100k: `'"`.repeat(N / 2),
  brackets100k: '(['.repeat(N / 4) + '}])'.repeat(N / 6),
  mixed100k: `\\'\\"[{(`.repeat(N / 8),
  unclosed100k: `'${backslashes(N - 1)}`,
};

function hostileStore(): { store: TaskStore; ids: string[] } {
  const store = new TaskStore({ maxTasks: 1000, limits: LIMITS });
  const ids: string[] = [];
  let at = 0;
  for (const [label, text] of Object.entries(HOSTILE)) {
    // Each hostile text in every searchable field, and inside a kwargs repr in two shapes.
    for (const [shape, kwargs] of [
      ['raw', text],
      ['list', `{'paths': ${inList(text.length > 2000 ? 2000 : text.length)}, 'blob': '${text}'}`],
      ['first', `{'user': 'ann', 'paths': ['C:${text}']}`],
    ] as const) {
      const uuid = `${label}-${shape}`;
      ids.push(uuid);
      store.handle({
        type: 'task-received',
        uuid,
        hostname: `celery@${label}`,
        timestamp: T + at++,
        name: `tasks.${label}`,
        args: `(${JSON.stringify(text)},)`,
        kwargs,
      } as unknown as TaskEvent);
      store.handle({
        type: 'task-failed',
        uuid,
        hostname: `celery@${label}`,
        timestamp: T + at++,
        exception: text,
        traceback: text,
      } as unknown as TaskEvent);
    }
  }
  store.handle({
    type: 'task-received',
    uuid: 'plain',
    hostname: 'celery@plain',
    timestamp: T + at++,
    name: 'tasks.plain',
    args: '(1, 2)',
    kwargs: "{'user': 'bob', 'n': 3}",
  } as unknown as TaskEvent);
  store.handle({
    type: 'task-succeeded',
    uuid: 'plain',
    hostname: 'celery@plain',
    timestamp: T + at,
    result: "'done'",
  } as unknown as TaskEvent);
  return { store, ids: [...ids, 'plain'] };
}

describe('search over hostile task text (every operator finishes and answers right)', () => {
  const { store, ids } = hostileStore();
  const found = (search: string) =>
    store
      .query({ search: parseSearch(search) })
      .tasks.map((t) => t.uuid)
      .sort();
  const firsts = Object.keys(HOSTILE).map((l) => `${l}-first`);

  it.each([
    ['kwargs:user=ann', firsts],
    ['kwargs:user=bob', ['plain']],
    ['kwargs:n=3', ['plain']],
    ['kwargs:user=nobody', []],
    ['kwargs:paths=x', []],
    ['kwargs:user', [...firsts, 'plain']],
    ['args:"(1, 2)"', ['plain']],
    ['result:done', ['plain']],
    ['name:slashes44', ['slashes44-first', 'slashes44-list', 'slashes44-raw']],
    ['state:SUCCESS', ['plain']],
    ['worker:plain', ['plain']],
    ['tasks.plain', ['plain']],
    ['"tasks.plain"', ['plain']],
    ['kwargs:user=ann AND name:mixed100k', ['mixed100k-first']],
    ['kwargs:user=bob OR kwargs:user=ann', [...firsts, 'plain'].sort()],
    ['(kwargs:user=ann OR result:done) state:SUCCESS', ['plain']],
    ['zzz-absent', []],
  ])('%s', (search, expected) => {
    expect(found(search)).toEqual([...expected].sort());
  });

  it('searches that match the hostile text itself', () => {
    // Backslashes and quotes are search terms too (quoted; \\ and \" escape inside quotes).
    const expected = (keep: (id: string) => boolean) => ids.filter(keep).sort();
    expect(found(`args:"${'\\\\'.repeat(40)}"`)).toEqual(expected((id) => /^(slashes|unclosed)/.test(id)));
    expect(found(`kwargs:"['C:\\\\\\\\\\\\"`)).toEqual(expected((id) => id.endsWith('-list') || /^slashes\d+k?-first$/.test(id)));
    expect(found('"[{("')).toEqual(expected((id) => id.startsWith('mixed100k')));
  });

  it('looks at the first MAX_SEARCHED_CHARS characters of a field', () => {
    const s = new TaskStore({ maxTasks: 10, limits: LIMITS });
    const late = `${'x'.repeat(MAX_SEARCHED_CHARS)}needle`;
    s.handle({
      type: 'task-received',
      uuid: 'late',
      hostname: 'celery@w',
      timestamp: T,
      args: late,
      kwargs: `{'a': 1, 'k': 'needle', 'pad': '${late}'}`,
    } as unknown as TaskEvent);
    expect(s.query({ search: parseSearch('args:needle') }).filtered).toBe(0);
    expect(s.query({ search: parseSearch('kwargs:k=needle') }).filtered).toBe(1);
  });
});

describe('kwargsPairs: one pass over a kwargs repr', () => {
  it.each([
    ["{'user': 'ann', 'n': 3}", ['user=ann', 'n=3']],
    ['{"user": "Ann", "n": 3}', ['user=ann', 'n=3']],
    ["{'path': 'C:\\\\temp\\\\x', 'q': \"it's\"}", ['path=c:\\\\temp\\\\x', "q=it's"]],
    ["{'l': [1, 2], 'd': {'a': 'b,}'}, 't': (1,), 'none': None}", ['l=[1, 2]', "d={'a': 'b,}'}", 't=(1,)', 'none=none']],
    ["{'a': 1, 'b': 'cut off by the repr lim", ['a=1']],
    ["{'a': [1, 2", []],
    ['{}', []],
    ['()', []],
    ["not a dict {'a': 1}", []],
    ["{'a': 1]", []],
    [null, []],
  ])('%s', (repr, expected) => {
    expect([...kwargsPairs(repr)]).toEqual(expected);
  });

  it('a pair after a long run of backslashes inside a list is still found', () => {
    const repr = `{'paths': ['${backslashes(10_000)}'], 'user': 'ann'}`;
    expect(kwargsPairs(repr).has('user=ann')).toBe(true);
  });
});
