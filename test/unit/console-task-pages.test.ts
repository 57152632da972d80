import type { Request } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import type { TaskEvent } from '../../src/celery/events.js';
import type { ConsoleContext } from '../../src/console/layout.js';
import { taskPage } from '../../src/console/task.js';
import { attemptsOf, delta } from '../../src/console/task-timeline.js';
import { tasksPage, tasksQuery } from '../../src/console/tasks.js';
import { parseTaskQuery } from '../../src/tasks/query-params.js';
import { TaskQueryError } from '../../src/tasks/task-query.js';
import { TaskStore } from '../../src/tasks/task-store.js';

const LIMITS = { args: 1024, kwargs: 1024, result: 1024, exception: 1024, traceback: 8192 };
const T = 1_800_000_000;
const ID = '6f1c0a52-2b6e-4d0e-9d53-2b0d1f5b8a11';

const e = (type: string, at: number, extra: Record<string, unknown> = {}, uuid = ID): TaskEvent =>
  ({ type: `task-${type}`, uuid, hostname: 'celery@w1', timestamp: T + at, ...extra }) as unknown as TaskEvent;

const ctx: ConsoleContext = {
  principal: { kind: 'basic', name: 'olga', role: 'operator', via: 'session' },
  csrfToken: 't',
  prefix: '',
  can: () => true,
  href: (path, query) => `${path}${query ? `?${new URLSearchParams(query as Record<string, string>)}` : ''}`,
};

/** A task that failed once with KeyError, was retried (re-sent by itself) and then succeeded. */
function retriedThenSucceeded(): TaskStore {
  const s = new TaskStore({ maxTasks: 100, limits: LIMITS });
  s.handle(e('sent', 0, { name: 'tasks.retry_once', retries: 0 }));
  s.handle(e('received', 0.01, { name: 'tasks.retry_once', retries: 0, root_id: ID }));
  s.handle(e('started', 0.02));
  s.handle(e('retried', 0.05, { exception: "KeyError('again')", traceback: 'Traceback (most recent call last):\nKeyError' }));
  s.handle(e('received', 1.07, { name: 'tasks.retry_once', retries: 1, parent_id: ID, root_id: ID }));
  s.handle(e('started', 1.08));
  s.handle(e('succeeded', 1.1, { result: "'retried'", runtime: 0.02 }));
  return s;
}

const page = (s: TaskStore) =>
  taskPage(ctx, s.get(ID)!, s.children(ID), {
    seesPayload: true,
    abortable: false,
  });

describe('task page after a retry', () => {
  it('splits the timeline into the retried attempt and the one that succeeded, each in its own order', () => {
    const attempts = attemptsOf(retriedThenSucceeded().get(ID)!);
    expect(attempts.map((a) => [a.title, a.steps.map((s) => s.label)])).toEqual([
      ['attempt 1, retried', ['PENDING (sent)', 'RETRY']],
      ['attempt 2', ['RECEIVED', 'STARTED', 'SUCCESS']],
    ]);
    const html = page(retriedThenSucceeded());
    expect(html).toContain('<tr class="attempt-head"><th colspan="3">attempt 1, retried</th></tr>');
    expect(html).not.toContain('+-');
    expect(html).not.toMatch(/\+-|−\d/);
  });

  it('a SUCCESS task does not show the retried attempt’s traceback as its own', () => {
    const html = page(retriedThenSucceeded());
    expect(html).not.toContain('id="task-exception"');
    expect(html).not.toContain('id="task-traceback"');
    expect(html).toContain(
      '<details id="retry-failure"><summary>The retried attempt raised <span class="mono">KeyError(&#39;again&#39;)</span>',
    );
  });

  it('the task is not shown as its own parent, nor as its own child', () => {
    const html = page(retriedThenSucceeded());
    expect(html).toMatch(/<dd id="parent"><span class="muted">none \(a retry names the task itself as its parent\)<\/span><\/dd>/);
    expect(html).toMatch(/<dd id="children"><span class="muted">none<\/span><\/dd>/);
  });

  it.each([
    [1.02, '+1.020 s'],
    [0, '+0.000 s'],
    [-1.02, '−1.020 s'],
  ])('a delta of %d s reads %j', (d, text) => {
    expect(delta(d)).toBe(text);
  });

  it('a failure after a retry is the task’s own exception again', () => {
    const s = new TaskStore({ maxTasks: 100, limits: LIMITS });
    s.handle(e('received', 0, { name: 'tasks.x', retries: 0 }));
    s.handle(e('retried', 0.05, { exception: "KeyError('a')" }));
    s.handle(e('received', 1, { retries: 1 }));
    s.handle(e('failed', 1.5, { exception: "ValueError('b')", traceback: 'Traceback' }));
    expect(page(s)).toContain('<pre id="task-exception">ValueError(&#39;b&#39;)</pre>');
  });
});

const request = (query: Record<string, string>) => ({ query }) as unknown as Request;

describe('task list parameters', () => {
  it.each(['BOGUS', 'success', 'PROGRESS'])('state=%s is refused with 400 and the states in words', (state) => {
    let error: unknown;
    try {
      parseTaskQuery({ state }, true);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TaskQueryError);
    expect((error as TaskQueryError).status).toBe(400);
    expect((error as Error).message).toBe(
      `state must be one of PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, REJECTED, got '${state}'`,
    );
  });

  it.each(['FAILURE', 'All'])('state=%s is accepted', (state) => {
    expect(() => parseTaskQuery({ state }, true)).not.toThrow();
  });

  describe('times in the filter boxes are UTC, like the columns, whatever the server zone', () => {
    const zone = process.env.TZ;
    afterEach(() => {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    });
    it.each(['America/New_York', 'Asia/Kolkata', 'UTC'])('server in %s', (tz) => {
      process.env.TZ = tz;
      const { query } = tasksQuery(request({ received_start: '2027-01-15T13:45', received_end: '2027-01-15 14:00' }), true);
      expect(query.receivedStart).toBe(Date.UTC(2027, 0, 15, 13, 45) / 1000);
      expect(query.receivedEnd).toBe(Date.UTC(2027, 0, 15, 14, 0) / 1000);
    });
  });

  it('a repeated parameter counts by its last value, as in /api/tasks: the page, its links and its bulk forms are those of the last', () => {
    const s = new TaskStore({ maxTasks: 100, limits: LIMITS });
    for (let i = 0; i < 60; i++) {
      s.handle(e('received', i, { name: `tasks.t${i % 3}` }, `t-${i}`));
      s.handle(e('failed', i + 0.5, { exception: 'KeyError()' }, `t-${i}`));
    }
    const repeated = {
      limit: ['500', '25'],
      search: ['tasks.t1', 'tasks.t2'],
      state: ['SUCCESS', 'FAILURE'],
      received_start: ['2030-01-01T00:00', '2027-01-15T07:59'],
    };
    const last = { limit: '25', search: 'tasks.t2', state: 'FAILURE', received_start: '2027-01-15T07:59' };
    const asked = (query: Record<string, unknown>) => request(query as Record<string, string>);
    expect(tasksQuery(asked(repeated), true)).toEqual(tasksQuery(asked(last), true));
    expect(tasksQuery(asked(repeated), true).query.limit).toBe(parseTaskQuery(repeated, true).limit);
    const o = { seesPayload: true, payloadRole: 'operator' as const, workers: [] };
    const html = tasksPage(ctx, s, asked(repeated), o);
    expect(html).toContain('Revoke all 20 matching');
    expect(html).toBe(tasksPage(ctx, s, asked(last), o));
  });

  it('past the end, the pager says how many match and links back to the last page', () => {
    const s = new TaskStore({ maxTasks: 100, limits: LIMITS });
    for (let i = 0; i < 51; i++) s.handle(e('received', i, { name: 'tasks.add' }, `t-${i}`));
    const html = tasksPage(ctx, s, request({ offset: '5000', limit: '50' }), { seesPayload: true, payloadRole: 'operator', workers: [] });
    expect(html).not.toContain('5001–5000');
    expect(html).toContain('nothing from <strong>5001</strong>: only <strong>51</strong> match');
    expect(html).toContain('href="/ui/tasks?limit=50&amp;offset=50" rel="prev"');
  });
});
