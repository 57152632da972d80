import { describeHttpControl } from '../support/http-control-scenarios.js';

describeHttpControl('redis');
