import { describeControlOnRealWorkers } from '../support/control-scenarios.js';

describeControlOnRealWorkers('amqp');
