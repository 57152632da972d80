import { describeTaskSubmitApi } from '../support/task-submit-scenarios.js';

describeTaskSubmitApi('amqp');
