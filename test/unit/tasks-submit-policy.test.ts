import { describe, expect, it } from 'vitest';
import { SubmitPolicy, SubmitRefusedError } from '../../src/tasks/submit-policy.js';

const policy = (allow: string[], o: { create?: boolean; listed?: string[]; consumed?: string[] } = {}) =>
  new SubmitPolicy({ allow, createMissingQueues: o.create ?? false, listedQueues: o.listed ?? [] }, (q) => (o.consumed ?? []).includes(q));

const refusal = (fn: () => void): { status: number; message: string } | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!(e instanceof SubmitRefusedError)) throw e;
    return { status: e.status, message: e.message };
  }
};

describe('task submission policy (tasks.submit)', () => {
  it('is off with an empty allow-list', () => {
    expect(policy([]).enabled).toBe(false);
    expect(refusal(() => policy([]).checkTask('tasks.add'))).toEqual({
      status: 403,
      message: 'task submission is off: tasks.submit.allow lists no task',
    });
  });

  it.each([
    [['tasks.*'], 'tasks.add', true],
    [['tasks.*'], 'reports.daily', false],
    [['reports.daily', 'billing.retry_?'], 'billing.retry_1', true],
    [['*'], 'anything.at.all', true],
    [['*'], 'celery.accumulate', false],
    [['*', 'celery.*'], 'celery.accumulate', true],
    [['celery.chord_unlock'], 'celery.accumulate', false],
    [['celery.accumulate'], 'celery.accumulate', true],
  ])('allow %j: %s → %s', (allow, name, allowed) => {
    expect(refusal(() => policy(allow).checkTask(name))?.status).toBe(allowed ? undefined : 403);
  });

  it("says why Celery's own tasks are refused", () => {
    expect(refusal(() => policy(['*']).checkTask('celery.accumulate'))?.message).toMatch(
      /only a tasks.submit.allow glob starting with 'celery.'/,
    );
  });

  it('sends only to consumed or listed queues unless creating queues is allowed', () => {
    const p = policy(['*'], { listed: ['reports'], consumed: ['default'] });
    expect(refusal(() => p.checkQueue('default'))).toBeUndefined();
    expect(refusal(() => p.checkQueue('reports'))).toBeUndefined();
    expect(refusal(() => p.checkQueue('made-up'))).toEqual({
      status: 400,
      message:
        "no live worker consumes queue 'made-up' and metrics.queues does not list it (tasks.submit.create_missing_queues allows any queue)",
    });
    expect(refusal(() => policy(['*'], { create: true }).checkQueue('made-up'))).toBeUndefined();
  });
});
