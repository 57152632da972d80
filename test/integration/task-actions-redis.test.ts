import { describeTaskActions } from '../support/task-actions-scenarios.js';

describeTaskActions('redis');
