import { AUDIT_KINDS, type AuditKind, type AuditLog, type AuditRecord } from '../audit/audit-log.js';
import type { Remediator } from '../remediation/engine.js';
import { postForm } from './actions.js';
import { html, json, type Html, rowsOr } from './html.js';
import { layout, type ConsoleContext } from './layout.js';
import { ruleSentence } from './rule-sentence.js';

function actor(r: AuditRecord): string {
  const by = r.by as { actor?: unknown } | undefined;
  return typeof by?.actor === 'string' ? by.actor : r.kind === 'remediation' ? 'alertmanager' : '';
}

function what(r: AuditRecord): string {
  const action = String(r.command ?? r.action ?? '');
  return r.event === 'verification' ? `verify ${action}` : action;
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
    ) => html`<tr><td class="mono">${r.time}</td><td>${r.rule ?? ''}</td><td>${what(r)}</td><td><span class="outcome outcome-${String(r.outcome ?? '')}">${r.outcome ?? ''}</span> ${r.reason ?? ''}${typeof r.approved_by === 'string' ? html` <span class="muted">approved by ${r.approved_by}</span>` : ''}${typeof r.escalated_from === 'string' ? html` <span class="muted">escalated from ${r.escalated_from}</span>` : ''}</td>
<td>${targets(r)}</td><td class="mono truncate">${json((r.alert as { labels?: unknown } | undefined)?.labels ?? {}).replace(/\s+/g, ' ')}</td><td>${detail(r)}</td></tr>`,
  );
  return html`<table id="decisions"><thead><tr><th>time</th><th>rule</th><th>action</th><th>outcome</th><th>targets</th><th>alert labels</th><th></th></tr></thead>
<tbody>${rowsOr(rows, 7, 'no decision yet')}</tbody></table>`;
}

function auditTable(ctx: ConsoleContext, records: AuditRecord[], kind: AuditKind | undefined): Html {
  const filter = html`<p class="summary">${[undefined, ...AUDIT_KINDS].map((k) => (k === kind ? html`<strong>${k ?? 'all'}</strong>` : html`<a href="${ctx.href('/ui/remediation', { audit: k })}">${k ?? 'all'}</a>`))}</p>`;
  const rows = records.map(
    (r) =>
      html`<tr data-kind="${r.kind}"><td class="mono">${r.time}</td><td>${r.kind}</td><td>${actor(r)}</td><td>${what(r)}</td><td>${targets(r)}</td><td>${r.outcome ?? r.result ?? ''}</td><td>${detail(r)}</td></tr>`,
  );
  return html`${filter}<table id="audit"><thead><tr><th>time</th><th>kind</th><th>by</th><th>what</th><th>targets</th><th>outcome</th><th></th></tr></thead>
<tbody>${rowsOr(rows, 7, 'nothing audited yet')}</tbody></table>`;
}

function proposalsTable(ctx: ConsoleContext, remediator: Remediator): Html {
  const list = remediator.oversight.proposals.list().slice(0, 50);
  const rows = list.map((p) => {
    const change = p.change.map((c) => `${c.target}: ${c.before} → ${c.after}`).join(', ');
    const answer =
      p.status === 'pending'
        ? html`${postForm(ctx, 'operator', `/api/v1/remediation/proposals/${p.id}/approve`, 'Approve', { name: 'approve', ask: `${p.action} on ${p.targets.join(', ')}: ${change}?` })}${postForm(ctx, 'operator', `/api/v1/remediation/proposals/${p.id}/reject`, 'Reject', { name: 'reject' })}`
        : html`${p.decidedBy ?? ''}${p.decision ? html` → <span class="state">${p.decision.outcome}</span> ${p.decision.reason ?? ''}` : ''}`;
    return html`<tr data-proposal="${p.id}"><td class="mono">${p.createdAt}</td><td>${p.rule}</td><td>${p.action} <span class="mono">${json(p.arguments ?? {}).replace(/\s+/g, ' ')}</span></td><td>${p.targets.join(', ')}</td><td class="mono">${change}</td>
<td class="mono truncate">${p.alert.labels.alertname ?? ''} ${p.alert.labels.queue_name ?? ''}</td><td class="muted">${p.safeguardsPassed.join(', ')}</td><td><span class="state">${p.status}</span>${p.status === 'pending' ? html`<br><span class="muted">until ${p.expiresAt.slice(11, 19)}</span>` : ''}</td><td>${answer}</td></tr>`;
  });
  return html`<table id="proposals"><thead><tr><th>proposed</th><th>rule</th><th>action</th><th>targets</th><th>before → after</th><th>alert</th><th>safeguards passed</th><th>status</th><th></th></tr></thead>
<tbody>${rowsOr(rows, 9, 'no proposal: rules with mode: approve propose here instead of acting')}</tbody></table>`;
}

function verificationsTable(remediator: Remediator): Html {
  const verdicts = [...remediator.oversight.verdicts].reverse();
  const perRule = new Map<string, { effective: number; ineffective: number }>();
  for (const v of verdicts) {
    const c = perRule.get(v.rule) ?? { effective: 0, ineffective: 0 };
    c[v.result]++;
    perRule.set(v.rule, c);
  }
  const counts = [...perRule].map(
    ([rule, c]) => html`<span><strong>${rule}</strong> ${c.effective} effective, ${c.ineffective} ineffective</span>`,
  );
  const rows = verdicts
    .slice(0, 50)
    .map(
      (v) =>
        html`<tr data-result="${v.result}"><td>${v.rule}</td><td>${v.action}</td><td class="mono truncate">${v.alert.labels.alertname ?? ''} ${v.alert.labels.queue_name ?? ''}</td><td><span class="state">${v.result}</span></td><td>${v.via.replace(/_/g, ' ')}</td><td class="num">${v.seconds}</td><td class="num">${v.timeToDrain === undefined ? '' : Number.isFinite(v.timeToDrain) ? v.timeToDrain.toFixed(1) : '∞'}</td></tr>`,
    );
  return html`<p class="summary" id="verification-counts">${counts.length ? counts : html`<span class="muted">no verdict yet: rules with verify are checked here</span>`}</p>
<table id="verifications"><thead><tr><th>rule</th><th>action</th><th>alert</th><th>result</th><th>shown by</th><th class="num">after s</th><th class="num">time to drain s</th></tr></thead>
<tbody>${rowsOr(rows, 7, 'nothing verified yet')}</tbody></table>`;
}

/**
 * Remediation at a glance: kill switch (admins can flip it), the rules in force, the latest
 * decisions, and the audit log of every control command, decision and admin change.
 */
export function remediationPage(
  ctx: ConsoleContext,
  remediator: Remediator | undefined,
  audit: AuditLog,
  kind: AuditKind | undefined,
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
<table id="rules"><thead><tr><th>rule</th><th>what it does</th><th></th></tr></thead>
<tbody>${rules.map((r) => html`<tr data-rule="${r.name}"><td class="nowrap">${r.name}</td><td class="rule-sentence">${ruleSentence(r)}</td><td><details><summary>as written</summary><pre>${json({ ...r, regexes: undefined })}</pre></details></td></tr>`)}</tbody></table>`
    : html`<p class="muted" id="kill-switch">Remediation is not configured (remediation.rules_file): decisions appear here once it is.</p>`;
  const oversight = remediator
    ? html`<h2>Proposals</h2>${proposalsTable(ctx, remediator)}<h2>Verification</h2>${verificationsTable(remediator)}`
    : html``;
  const body = html`${state}${oversight}<h2>Decisions</h2>${decisionsTable(audit.recent('remediation', 100).filter((r) => r.event === undefined))}<h2>Audit log</h2>${auditTable(ctx, audit.recent(kind, 200), kind)}`;
  return layout(ctx, { title: 'Remediation', section: 'remediation', body });
}
