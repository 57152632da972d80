import { describeTaskReadApi } from '../support/task-read-scenarios.js';

describeTaskReadApi('amqp');
