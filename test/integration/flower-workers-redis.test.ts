import { describeFlowerWorkersApi } from '../support/flower-workers-scenarios.js';

describeFlowerWorkersApi('redis');
