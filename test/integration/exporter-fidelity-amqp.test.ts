import { describeExporterFidelity } from '../support/exporter-fidelity-scenarios.js';

describeExporterFidelity('amqp');
