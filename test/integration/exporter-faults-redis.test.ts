import { describeExporterFaults } from '../support/exporter-faults.js';

describeExporterFaults('redis');
