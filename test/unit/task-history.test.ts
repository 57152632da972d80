import { describe, expect, it } from 'vitest';
import type { TaskEvent, TaskEventType } from '../../src/celery/events.js';
import { applyEvent, newTask, type TaskState } from '../../src/tasks/task-history.js';
import { amqpEventFixtures } from '../support/fixtures.js';

const LIMITS = { args: 1024, kwargs: 1024, result: 1024, exception: 1024, traceback: 8192 };
const T = 1_800_000_000;
const ID = 'b4f1c1de-2f7e-4d4b-9d3a-000000000001';

type Short = 'sent' | 'received' | 'started' | 'succeeded' | 'failed' | 'retried' | 'revoked' | 'rejected';
/** `received@2`: task-received with timestamp T+2. */
function ev(spec: string): TaskEvent {
  const [type, at] = spec.split('@') as [Short, string];
  const e: Record<string, unknown> = {
    type: `task-${type}` as TaskEventType,
    uuid: ID,
    hostname: type === 'sent' ? 'gen1@client' : 'celery@w1',
    timestamp: T + Number(at ?? 0),
  };
  if (type === 'sent' || type === 'received') Object.assign(e, { name: 'tasks.add', args: '(1, 2)', kwargs: '{}', retries: 0 });
  if (type === 'succeeded') Object.assign(e, { result: '3', runtime: 0.5 });
  if (type === 'failed' || type === 'retried') Object.assign(e, { exception: "ValueError('boom')", traceback: 'Traceback ...' });
  return e as unknown as TaskEvent;
}

function run(specs: string[]) {
  const task = newTask(ID);
  const outcomes = specs.map((s) => applyEvent(task, ev(s), LIMITS));
  return { task, outcomes };
}

describe("Celery's task state machine from events", () => {
  const table: Array<[string, string[], TaskState, Partial<Record<string, unknown>>?]> = [
    [
      'in order to success',
      ['sent@0', 'received@1', 'started@2', 'succeeded@3'],
      'SUCCESS',
      { result: '3', runtime: 0.5, worker: 'celery@w1', client: 'gen1@client' },
    ],
    [
      'in order to failure',
      ['sent@0', 'received@1', 'started@2', 'failed@3'],
      'FAILURE',
      { exception: "ValueError('boom')", traceback: 'Traceback ...' },
    ],
    ['only sent', ['sent@0'], 'PENDING', { name: 'tasks.add' }],
    ['received only', ['received@1'], 'RECEIVED', { args: '(1, 2)' }],
    ['success before started (reordered)', ['received@1', 'succeeded@3', 'started@2'], 'SUCCESS', { started: T + 2, succeeded: T + 3 }],
    [
      'success before received: name and args still arrive',
      ['succeeded@3', 'received@1'],
      'SUCCESS',
      { name: 'tasks.add', args: '(1, 2)', received: T + 1 },
    ],
    [
      'sent after the worker finished (separate connections)',
      ['received@1', 'started@2', 'succeeded@3', 'sent@0'],
      'SUCCESS',
      { client: 'gen1@client', sent: T },
    ],
    ['started before received', ['started@2', 'received@1'], 'STARTED'],
    ['revoked while waiting', ['received@1', 'revoked@2'], 'REVOKED'],
    ['revoked then a late started', ['received@1', 'revoked@3', 'started@2'], 'REVOKED'],
    ['rejected', ['received@1', 'started@2', 'rejected@3'], 'REJECTED'],
    ['a late received cannot undo rejected', ['started@2', 'rejected@3', 'received@1'], 'REJECTED'],
    ['rejected with requeue, then delivered again', ['received@1', 'rejected@2', 'received@3', 'started@4'], 'STARTED'],
    ['retry then a new attempt succeeds', ['received@1', 'started@2', 'retried@3', 'received@4', 'started@5', 'succeeded@6'], 'SUCCESS'],
    ['retry: the next attempt is received', ['received@1', 'started@2', 'retried@3', 'received@4'], 'RECEIVED'],
    [
      'retry arrives after the next attempt started',
      ['received@1', 'started@2', 'received@4', 'started@5', 'retried@3'],
      'STARTED',
      { retried: T + 3, started: T + 5 },
    ],
    ['a late started of the first attempt after the retry', ['received@1', 'retried@3', 'started@2'], 'RETRY'],
    ['retry then failure for good', ['received@1', 'started@2', 'retried@3', 'received@4', 'started@5', 'failed@6'], 'FAILURE'],
  ];
  it.each(table)('%s', (_label, specs, state, fields) => {
    const { task } = run(specs);
    expect(task.state).toBe(state);
    if (fields) expect(task).toMatchObject(fields);
  });

  it('ignores a redelivered event and says so', () => {
    const { task, outcomes } = run(['received@1', 'started@2', 'succeeded@3', 'started@2', 'succeeded@3']);
    expect(task.state).toBe('SUCCESS');
    expect(outcomes).toEqual(['applied', 'applied', 'applied', 'duplicate', 'duplicate']);
  });

  it('a duplicate retried after the next attempt started does not bring back RETRY', () => {
    const { task } = run(['received@1', 'started@2', 'retried@3', 'received@4', 'started@5', 'retried@3']);
    expect(task.state).toBe('STARTED');
  });

  it('every order of one attempt ends in the same state and fields', () => {
    const specs = ['sent@0', 'received@1', 'started@2', 'succeeded@3'];
    const permutations = (xs: string[]): string[][] =>
      xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
    const reference = run(specs).task;
    for (const order of permutations(specs)) {
      const { task } = run(order);
      expect({ order, state: task.state, timestamp: task.timestamp, name: task.name, args: task.args, result: task.result }).toEqual({
        order,
        state: 'SUCCESS',
        timestamp: reference.timestamp,
        name: 'tasks.add',
        args: '(1, 2)',
        result: '3',
      });
    }
  });

  it('cuts long fields to the configured sizes', () => {
    const task = newTask(ID);
    const long = 'x'.repeat(5000);
    applyEvent(
      task,
      { type: 'task-failed', uuid: ID, hostname: 'celery@w1', timestamp: T, exception: long, traceback: long } as unknown as TaskEvent,
      { ...LIMITS, exception: 100, traceback: 200 },
    );
    expect(task.exception).toHaveLength(100);
    expect(task.exception!.endsWith('…')).toBe(true);
    expect(task.traceback).toHaveLength(200);
  });

  it("reads Celery 5.2.6's captured events", () => {
    const task = newTask('569f899c-94ab-485d-8076-a2755c164e4b');
    const fixtures = Object.values(amqpEventFixtures());
    for (const fx of fixtures) {
      const parsed = JSON.parse(fx.body_raw) as unknown;
      for (const e of Array.isArray(parsed) ? parsed : [parsed])
        if ((e as TaskEvent).uuid === task.uuid) applyEvent(task, e as TaskEvent, LIMITS);
    }
    expect(task).toMatchObject({
      state: 'SUCCESS',
      result: '5',
      worker: 'cap1@vm',
      name: 'tasks.add',
      args: '(2, 3)',
      client: 'gen10795@vm',
      routing_key: 'celery',
      queue: 'celery',
    });
  });
});
