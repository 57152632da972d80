import { describeExporterOnRealWorkers } from '../support/exporter-scenarios.js';

describeExporterOnRealWorkers('redis');
