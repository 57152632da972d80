import type { AuditEntry, AuditLog, AuditRecord } from '../audit/audit-log.js';
import type { Remediator } from '../remediation/engine.js';
import { postForm } from './actions.js';
import { html, json, type Html, rowsOr } from './html.js';
import { layout, type ConsoleContext } from './layout.js';

const KINDS = ['control', 'remediation', 'admin'] as const satisfies ReadonlyArray<AuditEntry['kind']>;

function actor(r: AuditRecord): string {
  const by = r.by as { actor?: unknown } | undefined;
  return typeof by?.actor === 'string' ? by.actor : r.kind === 'remediation' ? 'alertmanager' : '';
}

function what(r: AuditRecord): string {
  return String(r.command ?? r.action ?? '');
}

function targets(r: AuditRecord): string {
  if (Array.isArray(r.targets)) return r.targets.join(', ');
  if (r.targets && typeof r.targets === 'object') return json(r.targets).replace(/\s+/g, ' ');
  return '';
}

const detail = (r: AuditRecord): Html => html`<details><summary>details</summary><pre>${json(r)}</pre></details>`;

function decisionsTable(records: AuditRecord[]): Html {
  const rows = records.map(
    (
      r,
    ) => html`<tr><td class="mono">${r.time}</td><td>${r.rule ?? ''}</td><td>${what(r)}</td><td><span class="state">${r.outcome ?? ''}</span> ${r.reason ?? ''}</td>
<td>${targets(r)}</td><td class="mono truncate">${json((r.alert as { labels?: unknown } | undefined)?.labels ?? {}).replace(/\s+/g, ' ')}</td><td>${detail(r)}</td></tr>`,
  );
  return html`<table id="decisions"><thead><tr><th>time</th><th>rule</th><th>action</th><th>outcome</th><th>targets</th><th>alert labels</th><th></th></tr></thead>
<tbody>${rowsOr(rows, 7, 'no decision yet')}</tbody></table>`;
}

function auditTable(ctx: ConsoleContext, records: AuditRecord[], kind: AuditEntry['kind'] | undefined): Html {
  const filter = html`<p class="summary">${[undefined, ...KINDS].map((k) => (k === kind ? html`<strong>${k ?? 'all'}</strong>` : html`<a href="${ctx.href('/ui/remediation', { audit: k })}">${k ?? 'all'}</a>`))}</p>`;
  const rows = records.map(
    (r) =>
      html`<tr data-kind="${r.kind}"><td class="mono">${r.time}</td><td>${r.kind}</td><td>${actor(r)}</td><td>${what(r)}</td><td>${targets(r)}</td><td>${r.outcome ?? ''}</td><td>${detail(r)}</td></tr>`,
  );
  return html`${filter}<table id="audit"><thead><tr><th>time</th><th>kind</th><th>by</th><th>what</th><th>targets</th><th>outcome</th><th></th></tr></thead>
<tbody>${rowsOr(rows, 7, 'nothing audited yet')}</tbody></table>`;
}

/**
 * Remediation at a glance: kill switch (admins can flip it), the rules in force, the latest
 * decisions, and the audit log of every control command, decision and admin change.
 */
export function remediationPage(
  ctx: ConsoleContext,
  remediator: Remediator | undefined,
  audit: AuditLog,
  kind: AuditEntry['kind'] | undefined,
): string {
  const rules = remediator?.rules ?? [];
  const state = remediator
    ? html`<div class="summary" id="kill-switch"><span>kill switch <strong>${remediator.killSwitch ? 'ON: no action is taken' : 'off'}</strong></span>
<span><strong>${rules.length}</strong> rules</span>
${postForm(ctx, 'admin', '/api/v1/remediation/kill-switch', remediator.killSwitch ? 'Turn kill switch off' : 'Turn kill switch on', {
  args: { enabled: !remediator.killSwitch },
  ask: remediator.killSwitch ? 'Let remediation act again?' : 'Stop all automatic remediation?',
  name: 'kill-switch',
})}</div>
<table id="rules"><thead><tr><th>rule</th><th>match</th><th>action</th><th>arguments</th><th>target</th><th class="num">cooldown s</th><th>dry run</th></tr></thead>
<tbody>${rules.map((r) => html`<tr><td>${r.name}</td><td class="mono">${json(r.match.labels).replace(/\s+/g, ' ')} ${Object.keys(r.match.labels_regex).length ? json(r.match.labels_regex).replace(/\s+/g, ' ') : ''}</td><td>${r.action}</td><td class="mono">${json(r.arguments).replace(/\s+/g, ' ')}</td><td class="mono">${json(r.target).replace(/\s+/g, ' ')}</td><td class="num">${r.cooldown_seconds}</td><td>${r.dry_run ? 'yes' : ''}</td></tr>`)}</tbody></table>`
    : html`<p class="muted" id="kill-switch">Remediation is not configured (remediation.rules_file): decisions appear here once it is.</p>`;
  const body = html`${state}<h2>Decisions</h2>${decisionsTable(audit.recent('remediation', 100))}<h2>Audit log</h2>${auditTable(ctx, audit.recent(kind, 200), kind)}`;
  return layout(ctx, { title: 'Remediation', section: 'remediation', body });
}
