import { describeScrapeMoment } from '../support/exporter-scrape-moment-scenarios.js';

describeScrapeMoment('redis');
