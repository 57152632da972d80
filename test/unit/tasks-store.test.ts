import { describe, expect, it } from 'vitest';
import type { TaskEvent } from '../../src/celery/events.js';
import { QUERY_SLICE, TaskQueryError, parseSearch, runQueryInSlices } from '../../src/tasks/task-query.js';
import { TaskStore } from '../../src/tasks/task-store.js';

const LIMITS = { args: 1024, kwargs: 1024, result: 1024, exception: 1024, traceback: 8192 };
const T = 1_800_000_000;

const e = (type: string, uuid: string, at: number, extra: Record<string, unknown> = {}): TaskEvent =>
  ({ type: `task-${type}`, uuid, hostname: 'celery@w1', timestamp: T + at, ...extra }) as unknown as TaskEvent;

function store(maxTasks = 1000) {
  return new TaskStore({ maxTasks, limits: LIMITS });
}

describe('task store', () => {
  it('keeps the newest tasks when 200 000 pass through a store of 10 000', () => {
    const s = store(10_000);
    for (let i = 0; i < 200_000; i++) s.handle(e('received', `t${i}`, i, { name: `tasks.n${i % 7}`, args: `(${i},)` }));
    expect(s.size).toBe(10_000);
    expect(s.evictions).toBe(190_000);
    expect(s.get('t189999')).toBeUndefined();
    expect(s.get('t190000')?.args).toBe('(190000,)');
    expect(s.get('t199999')?.state).toBe('RECEIVED');
    expect(s.taskTypes()).toEqual(['tasks.n0', 'tasks.n1', 'tasks.n2', 'tasks.n3', 'tasks.n4', 'tasks.n5', 'tasks.n6']);
    // A bound on a size, not a speed: 200 000 events take ~4 s on an idle 2-core machine, so
    // vitest's 5 s default failed it under load.
  }, 60_000);

  it('evicts the least recently updated task, not one still getting events', () => {
    const s = store(100);
    s.handle(e('received', 'long', 0, { name: 'tasks.sleep' }));
    for (let i = 0; i < 99; i++) s.handle(e('received', `t${i}`, 1 + i));
    s.handle(e('started', 'long', 200));
    s.handle(e('received', 'one-more', 201));
    expect(s.get('long')?.state).toBe('STARTED');
    expect(s.get('t0')).toBeUndefined();
  });

  it('counts duplicates and links children to their parent', () => {
    const s = store();
    s.handle(e('received', 'parent', 0, { name: 'tasks.chain' }));
    s.handle(e('received', 'child', 1, { name: 'tasks.add', parent_id: 'parent', root_id: 'parent' }));
    s.handle(e('received', 'child', 1, { name: 'tasks.add', parent_id: 'parent', root_id: 'parent' }));
    expect(s.duplicates).toBe(1);
    expect(s.children('parent')).toEqual(['child']);
    expect(s.get('child')).toMatchObject({ parent_id: 'parent', root_id: 'parent' });
  });

  describe('queries (Flower /api/tasks)', () => {
    const s = store();
    s.handle(e('received', 'a', 1, { name: 'tasks.add', args: '(1, 2)', kwargs: "{'user': 'ann', 'n': 3}" }));
    s.handle(e('succeeded', 'a', 2, { result: '3' }));
    s.handle(e('received', 'b', 3, { name: 'tasks.fail', args: '()', kwargs: '{}', hostname: 'celery@w2' }));
    s.handle(e('failed', 'b', 4, { exception: "ValueError('boom')", hostname: 'celery@w2' }));
    s.handle(e('received', 'c', 5, { name: 'tasks.add', args: '(5, 6)', kwargs: "{'user': 'bob'}" }));
    const ids = (q: Parameters<TaskStore['query']>[0]) => s.query(q).tasks.map((t) => t.uuid);

    it('newest state change first by default, with limit and offset', () => {
      expect(ids({})).toEqual(['c', 'b', 'a']);
      expect(ids({ limit: 1, offset: 1 })).toEqual(['b']);
      expect(ids({ limit: 0 })).toEqual([]);
      expect(s.query({ limit: 1 })).toMatchObject({ filtered: 3, total: 3 });
    });

    it('filters by name, worker, state and received range', () => {
      expect(ids({ name: 'tasks.add' })).toEqual(['c', 'a']);
      expect(ids({ worker: 'celery@w2' })).toEqual(['b']);
      expect(ids({ state: 'failure' })).toEqual(['b']);
      expect(ids({ receivedStart: T + 2, receivedEnd: T + 4 })).toEqual(['b']);
    });

    it('sorts by a field, descending with -', () => {
      expect(ids({ sortBy: { field: 'received', descending: false } })).toEqual(['a', 'b', 'c']);
      expect(ids({ sortBy: { field: 'name', descending: true } })).toEqual(['b', 'c', 'a']);
    });

    it("searches with Flower's syntax", () => {
      expect(ids({ search: parseSearch('state:FAILURE') })).toEqual(['b']);
      expect(ids({ search: parseSearch('kwargs:user=ann') })).toEqual(['a']);
      expect(ids({ search: parseSearch('args:"(5, 6)" OR name:fail') })).toEqual(['c', 'b']);
      expect(ids({ search: parseSearch('tasks.add AND bob') })).toEqual(['c']);
      expect(ids({ search: parseSearch('(state:SUCCESS OR state:FAILURE) name:add') })).toEqual(['a']);
      // Unqualified terms do not look into fields the caller may not see.
      expect(ids({ search: parseSearch('bob'), hidden: ['args', 'kwargs', 'result'] })).toEqual([]);
    });

    it.each([
      ['"unterminated', /unterminated quote/],
      ['ab', /at least 3 characters/],
      ['NOT foo', /NOT is not supported/],
      ['-foo', /negation/],
      ['foo OR', /OR at position 4 must be followed/],
      ['(foo', /missing closing parenthesis/],
      ['foo)', /unexpected '\)'/],
      ['()', /empty group/],
      ['((((((foo))))))', /nests deeper/],
      ['x'.repeat(3000), /longer than 2048/],
    ])('refuses search %.20s with a message', (raw, message) => {
      expect(() => parseSearch(raw)).toThrow(TaskQueryError);
      expect(() => parseSearch(raw)).toThrow(message);
    });
  });

  it('searches a large store a slice at a time, pausing in between, with the same answer as in one go', async () => {
    const s = store(5 * QUERY_SLICE);
    for (let i = 0; i < 5 * QUERY_SLICE; i++)
      s.handle(e('received', `t${i}`, i, { name: 'tasks.add', kwargs: `{'user': '${i % 2 ? 'ann' : 'bob'}'}` }));
    const q = { search: parseSearch('kwargs:user=ann'), limit: 100, offset: 50 };
    let pauses = 0;
    const tasks = new Map([...s.all()].map((t) => [t.uuid, t]));
    const sliced = await runQueryInSlices(tasks, q, async () => {
      pauses++;
      // The store changes while the search waits: an updated task must not be counted twice.
      s.handle(e('started', `t${pauses}`, 10_000 + pauses));
    });
    expect(pauses).toBe(4);
    expect(sliced.filtered).toBe(s.query(q).filtered);
    expect(sliced.tasks.map((t) => t.uuid)).toEqual(s.query(q).tasks.map((t) => t.uuid));
    expect((await s.queryInSlices(q)).tasks.map((t) => t.uuid)).toEqual(s.query(q).tasks.map((t) => t.uuid));
  });
});
