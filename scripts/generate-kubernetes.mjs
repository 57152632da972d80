#!/usr/bin/env node
/* global console, process */
// Writes the Kubernetes objects that are copies of other shipped files, so the two never drift:
//   deploy/kubernetes/base/prometheusrule.yaml   ← alertmanager/celery-alerts.rules.yml (every group, as is)
//   deploy/kubernetes/base/grafana-dashboard.yaml ← grafana/dashboards/celery-autopilot.json (a ConfigMap
//                                                  with the Grafana sidecar's label grafana_dashboard: "1")
//
//   node scripts/generate-kubernetes.mjs          rewrite both files
//   node scripts/generate-kubernetes.mjs --check  exit 1, naming the stale file, if either differs
//   --root DIR                                     another checkout (tests use a scratch copy)
//
// test/unit/kubernetes-generated.test.ts runs --check, so editing the rules or the dashboard
// without running this fails the tests.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RULES = 'alertmanager/celery-alerts.rules.yml';
const DASHBOARD = 'grafana/dashboards/celery-autopilot.json';
const LABELS = { 'app.kubernetes.io/name': 'celery-autopilot', 'app.kubernetes.io/part-of': 'celery-autopilot' };

const header = (source) =>
  `# GENERATED from ${source} by scripts/generate-kubernetes.mjs: edit that file and run the script.\n` +
  `# A test fails when this copy and its source differ.\n`;

/** The PrometheusRule: the rules file's groups, unchanged, as prometheus-operator loads them. */
export function prometheusRule(rulesText) {
  const doc = parseYaml(rulesText);
  if (!doc || !Array.isArray(doc.groups)) throw new Error(`${RULES}: no groups`);
  const object = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'celery-autopilot', labels: { ...LABELS } },
    spec: { groups: doc.groups },
  };
  return header(RULES) + stringifyYaml(object, { lineWidth: 0 });
}

/** The dashboard as a ConfigMap that Grafana's dashboard sidecar picks up by its label. */
export function dashboardConfigMap(dashboardText) {
  // Parsed and re-serialised: a broken JSON file fails here, not in Grafana.
  const json = JSON.stringify(JSON.parse(dashboardText), null, 2) + '\n';
  const object = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'celery-autopilot-dashboard', labels: { ...LABELS, grafana_dashboard: '1' } },
    data: { 'celery-autopilot.json': json },
  };
  return header(DASHBOARD) + stringifyYaml(object, { lineWidth: 0 });
}

export const GENERATED = [
  { file: 'deploy/kubernetes/base/prometheusrule.yaml', source: RULES, render: prometheusRule },
  { file: 'deploy/kubernetes/base/grafana-dashboard.yaml', source: DASHBOARD, render: dashboardConfigMap },
];

/** Names of generated files whose content differs from what their source gives now. */
export function staleFiles(root = ROOT) {
  return GENERATED.filter(({ file, source, render }) => {
    const want = render(readFileSync(path.join(root, source), 'utf8'));
    let have;
    try {
      have = readFileSync(path.join(root, file), 'utf8');
    } catch {
      return true;
    }
    return have !== want;
  }).map((g) => g.file);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--root');
  const root = at > 0 && process.argv[at + 1] ? path.resolve(process.argv[at + 1]) : ROOT;
  if (process.argv.includes('--check')) {
    const stale = staleFiles(root);
    if (stale.length > 0) {
      console.error(`stale, run node scripts/generate-kubernetes.mjs: ${stale.join(', ')}`);
      process.exit(1);
    }
  } else {
    for (const { file, source, render } of GENERATED) {
      writeFileSync(path.join(root, file), render(readFileSync(path.join(root, source), 'utf8')));
      console.error(`wrote ${file}`);
    }
  }
}
