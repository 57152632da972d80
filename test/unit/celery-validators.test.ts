import { describe, expect, it } from 'vitest';
import {
  CommandValidationError,
  validateExchangeName,
  validateModuleName,
  validateQueueName,
  validateRateLimit,
  validateRoutingKey,
  validateSignal,
  validateTaskId,
  validateTaskName,
  validateWorkerName,
  validateWorkerPattern,
} from '../../src/celery/validators.js';

const long = (n: number) => 'a'.repeat(n);

type Validator = (value: unknown) => unknown;

/** Every validator: values it keeps (as returned) and values it refuses, each a named scenario. */
const tables: Array<{ name: string; validate: Validator; good: Array<[string, unknown, unknown?]>; bad: Array<[string, unknown]> }> = [
  {
    name: 'validateWorkerName',
    validate: validateWorkerName,
    good: [
      ['celery default', 'celery@web-1'],
      ['dotted host', 'worker1@host.example.com'],
      ['test rig name', 'rig-1a2b3c4d@cap'],
      ['underscores', 'my_worker@my_host'],
      ['fixture name', 'cap1@vm'],
    ],
    bad: [
      ['empty', ''],
      ['no host', 'celery'],
      ['two @', 'a@b@c'],
      ['wildcard', 'celery@*'],
      ['question mark', 'celery@web-?'],
      ['double quote', 'celery@web"1'],
      ['single quote', "celery@web'1"],
      ['newline', 'celery@web\n1'],
      ['space', 'celery @web'],
      ['JSON fragment', '{"x":1}@host'],
      ['JSON close', 'a@b"],"destination":null'],
      ['percent (unexpanded %h)', 'celery@%h'],
      ['leading dot', '.celery@host'],
      ['too long', `${long(150)}@${long(60)}`],
      ['not a string', 42],
      ['null', null],
      ['array', ['celery@host']],
    ],
  },
  {
    name: 'validateWorkerPattern',
    validate: validateWorkerPattern,
    good: [
      ['prefix glob', 'celery@web-*'],
      ['host glob', 'web-*@*'],
      ['single char', 'celery@web-?'],
      ['literal name', 'celery@web-1'],
    ],
    bad: [
      ['only star', '*'],
      ['everything in disguise', '*@*'],
      ['only wildcards', '?*@?*'],
      ['character class', 'celery@web-[12]'],
      ['regex', 'celery@web-.+$'],
      ['space', 'celery@ web'],
      ['quote', 'celery@"web'],
      ['newline', 'celery@web\n'],
      ['too long', `${long(201)}*`],
      ['empty', ''],
      ['number', 5],
    ],
  },
  {
    name: 'validateQueueName',
    validate: validateQueueName,
    good: [
      ['default', 'celery'],
      ['dotted', 'reports.high'],
      ['dashes and colons', 'billing:invoices-v2'],
    ],
    bad: [
      ['empty', ''],
      ['reserved amq.', 'amq.gen-123'],
      ['celery event queue', 'celeryev.1234'],
      ['a worker mailbox', 'celery@web.celery.pidbox'],
      ['topic wildcard', 'reports.*'],
      ['hash', 'reports#'],
      ['slash', 'a/b'],
      ['space', 'my queue'],
      ['quote', "q'"],
      ['newline', 'q\nq'],
      ['trailing dot', 'reports.'],
      ['too long', long(201)],
      ['object', { name: 'q' }],
    ],
  },
  {
    name: 'validateExchangeName',
    validate: validateExchangeName,
    good: [['plain', 'reports']],
    bad: [
      ['event exchange', 'celeryev'],
      ['pidbox', 'celery.pidbox'],
      ['reply pidbox', 'reply.celery.pidbox'],
      ['amq.', 'amq.direct'],
      ['empty', ''],
    ],
  },
  {
    name: 'validateRoutingKey',
    validate: validateRoutingKey,
    good: [
      ['plain', 'reports'],
      ['topic', 'reports.*.high.#'],
    ],
    bad: [
      ['space', 'a b'],
      ['empty', ''],
      ['quote', 'a"'],
    ],
  },
  {
    name: 'validateTaskName',
    validate: validateTaskName,
    good: [
      ['two parts', 'tasks.add'],
      ['deep', 'proj.app.tasks.send_email'],
      ['single identifier', 'add'],
    ],
    bad: [
      ['empty', ''],
      ['leading digit', 'tasks.1add'],
      ['dash', 'tasks.send-email'],
      ['double dot', 'tasks..add'],
      ['trailing dot', 'tasks.'],
      ['space', 'tasks add'],
      ['call syntax', 'tasks.add()'],
      ['quote', "tasks.add'"],
      ['newline', 'tasks.add\n'],
      ['too long', `t.${long(200)}`],
      ['number', 1],
    ],
  },
  {
    name: 'validateModuleName',
    validate: validateModuleName,
    good: [['dotted', 'proj.tasks']],
    bad: [
      ['path', 'proj/tasks.py'],
      ['relative import', '.tasks'],
      ['code', '__import__("os")'],
    ],
  },
  {
    name: 'validateTaskId',
    validate: validateTaskId,
    good: [
      ['uuid4', 'c583efb0-f3dc-422f-9f3a-36de4468f54a'],
      ['upper case kept as is', 'C583EFB0-F3DC-422F-9F3A-36DE4468F54A'],
      // Celery takes any string as a task id (apply_async(task_id=...)): so does revoke now.
      ['a custom id', 'abc'],
      ['uuid without dashes', 'c583efb0f3dc422f9f3a36de4468f54a'],
      ['uuid plus suffix', 'c583efb0-f3dc-422f-9f3a-36de4468f54a"'],
      ['custom id with spaces and unicode', 'nightly report 2024-05-01 ü'],
      ['longest', 'x'.repeat(255)],
    ],
    bad: [
      ['number', 123],
      ['empty', ''],
      ['only spaces', '   '],
      ['too long', 'x'.repeat(256)],
      ['newline', 'abc\ndef'],
      ['NUL', 'abc\u0000'],
    ],
  },
  {
    name: 'validateRateLimit',
    validate: validateRateLimit,
    good: [
      ['per minute', '10/m', '10/m'],
      ['fractional per second', '0.5/s', '0.5/s'],
      ['bare number string (per second)', '100', '100'],
      ['per hour', '1000/h', '1000/h'],
      ['leading dot', '.5/s', '.5/s'],
      ['number', 100, '100'],
      ['fractional number', 2.5, '2.5'],
      ['empty string disables', '', null],
      ['zero disables', 0, null],
      ['zero string disables', '0', null],
      ['zero per minute disables', '0/m', null],
      ['null disables', null, null],
    ],
    bad: [
      ['word', 'abc'],
      ['unknown unit', '10/d'],
      ['long unit', '10/min'],
      ['exponent', '1e3'],
      ['infinity', 'inf'],
      ['negative', '-1/s'],
      ['negative number', -1],
      ['spaces', ' 10/m '],
      ['underscore digits', '1_000/s'],
      ['two slashes', '10/m/s'],
      ['too fast', '2000000/s'],
      ['NaN', Number.NaN],
      ['boolean', true],
      ['object', { rate: '10/m' }],
    ],
  },
  {
    name: 'validateSignal',
    validate: validateSignal,
    good: [
      ['TERM', 'SIGTERM'],
      ['KILL', 'SIGKILL'],
      ['USR1', 'SIGUSR1'],
    ],
    bad: [
      ['number', 9],
      ['short name', 'KILL'],
      ['lower case', 'sigterm'],
      ['not allowed', 'SIGSTOP'],
      ['injection', 'SIGTERM; rm -rf /'],
    ],
  },
];

describe('control validators', () => {
  for (const table of tables) {
    describe(table.name, () => {
      it.each(table.good)('keeps %s', (_scenario, value, expected) => {
        expect(table.validate(value)).toEqual(expected === undefined ? value : expected);
      });
      it.each(table.bad)('refuses %s', (_scenario, value) => {
        expect(() => table.validate(value)).toThrow(CommandValidationError);
      });
    });
  }

  it('names the field and never echoes a long rejected value', () => {
    const attempt = `celery@host"${'x'.repeat(5000)}`;
    let error: unknown;
    try {
      validateWorkerName(attempt, 'workers[3]');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CommandValidationError);
    expect((error as CommandValidationError).field).toBe('workers[3]');
    expect((error as Error).message).toBe('workers[3]: must be at most 200 characters');
  });
});
