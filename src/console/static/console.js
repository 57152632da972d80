// The console's only script, served as GET <prefix>/ui/static/console.js (no inline script: the
// CSP forbids it). It does what a server-rendered page cannot: send action forms as JSON to the
// control API with the session's CSRF token, showing the workers' replies; and refresh a live
// table in place. Without it pages still read fine and nothing is ever sent by a GET.
// Type-checked by tsc (tsconfig.browser.json, checkJs) and linted by eslint like the server code.
// Loaded as a module script: its names stay its own, it runs after the page is parsed, strict.

/** @param {string} name */
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') ?? '';
const prefix = meta('url-prefix');

/**
 * The command's arguments: fixed ones from data-args, then one per [data-arg] field.
 * @param {HTMLFormElement} form
 * @returns {Record<string, unknown>}
 */
function argumentsOf(form) {
  /** @type {Record<string, unknown>} */
  const args = form.dataset.args ? JSON.parse(form.dataset.args) : {};
  for (const el of form.querySelectorAll('[data-arg]')) {
    if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement)) continue;
    const name = el.dataset.arg ?? '';
    if (el instanceof HTMLInputElement && el.type === 'checkbox') {
      args[name] = el.checked;
      continue;
    }
    if (el.value === '') {
      if (el.dataset.empty === 'null') args[name] = null;
      else if (el.dataset.empty === 'keep') args[name] = '';
      continue;
    }
    // JSON boxes (a re-run's args and kwargs): a typo is reported, never sent as text.
    if (el.dataset.type === 'json') {
      try {
        args[name] = JSON.parse(el.value);
      } catch {
        throw new Error(`${name} is not JSON`);
      }
      continue;
    }
    args[name] = el.dataset.type === 'number' ? Number(el.value) : el.value;
  }
  return args;
}

/**
 * @typedef {{ worker: string, status: string, reply?: unknown, message?: string, confirmed?: boolean | null, confirmation?: string }} WorkerResult
 * @typedef {{ outcome?: string, command?: string, results?: WorkerResult[], error?: string, message?: string, dryRun?: boolean,
 *   'task-id'?: string, count?: number, messages?: number, purged?: number, dry_run?: boolean }} Reply
 */

/**
 * An element with text (never HTML: worker names and messages come from the broker).
 * @param {string} tag
 * @param {string} text
 * @param {string} [className]
 */
function el(tag, text, className) {
  const e = document.createElement(tag);
  e.textContent = text;
  if (className) e.className = className;
  return e;
}

/**
 * What the worker said, in its words: Celery answers {"ok": "..."} or {"error": "..."}.
 * @param {WorkerResult} r
 */
function workerSaid(r) {
  const reply = /** @type {Record<string, unknown> | undefined} */ (r.reply && typeof r.reply === 'object' ? r.reply : undefined);
  const said = r.message ?? reply?.ok ?? reply?.error;
  return typeof said === 'string' ? said : said === undefined ? '' : JSON.stringify(said);
}

/**
 * What a task or queue action's answer counts, in words (they carry no per-worker results).
 * @param {Reply} reply
 */
function counted(reply) {
  if (reply.dry_run && reply.count !== undefined) return `${reply.count} would be affected`;
  if (reply.dry_run && reply.messages !== undefined) return `${reply.messages} messages would be removed`;
  if (reply.purged !== undefined) return `${reply.purged} messages removed`;
  if (reply.count !== undefined) return `${reply.count} tasks`;
  if (reply['task-id'] !== undefined) return `sent as ${reply['task-id']}`;
  return undefined;
}

/**
 * The reply in words: one line for the whole action, one per worker (✓/✗, the worker's message,
 * what confirmation saw before → after), and the JSON behind a toggle for whoever needs it.
 * @param {HTMLElement} out
 * @param {number} status
 * @param {Reply} reply
 * @param {string} what
 */
function showReply(out, status, reply, what) {
  const ok = status >= 200 && status < 300 && (reply.outcome === undefined || ['ok', 'sent', 'dry_run'].includes(reply.outcome));
  const results = Array.isArray(reply.results) ? reply.results : [];
  const done = results.filter((r) => r.status === 'ok').length;
  const head = `${ok ? '✓' : '✗'} ${what}: ${reply.error ?? reply.message ?? reply.outcome ?? counted(reply) ?? `HTTP ${status}`}`;
  out.replaceChildren(el('p', results.length ? `${head} (${done} of ${results.length} workers)` : head, 'result-head'));
  if (results.length) {
    const list = document.createElement('ul');
    for (const r of results) {
      const good = r.status === 'ok' && r.confirmed !== false;
      const parts = [r.worker, workerSaid(r) || r.status, r.confirmation ?? ''].filter(Boolean);
      list.append(el('li', `${good ? '✓' : '✗'} ${parts.join(' — ')}`, good ? 'ok' : 'bad'));
    }
    out.append(list);
  }
  const raw = document.createElement('details');
  raw.append(el('summary', `reply (HTTP ${status})`), el('pre', JSON.stringify(reply, null, 2), 'raw'));
  out.append(raw);
}

/**
 * After an action, the page's sections as the server renders them now (a grown pool, a revoked
 * task): every top-level element with an id in <main> is swapped for its fresh copy, the result
 * panel excepted.
 */
async function refreshSections() {
  const res = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
  if (!res.ok) return;
  const fresh = new DOMParser().parseFromString(await res.text(), 'text/html');
  for (const next of fresh.querySelectorAll('main [id]')) {
    if (next.id === 'result' || next.parentElement?.closest('main [id]')) continue;
    document.getElementById(next.id)?.replaceWith(document.importNode(next, true));
  }
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
}

/**
 * POST a JSON body to the API, show the reply in the #result panel, then refresh the page's sections.
 * @param {string} path
 * @param {unknown} body
 * @param {string} what
 * @returns {Promise<{ status: number, reply: Reply }>}
 */
async function send(path, body, what) {
  const out = document.getElementById('result');
  if (!out) return { status: 0, reply: {} };
  delete out.dataset.status;
  delete out.dataset.outcome;
  out.hidden = false;
  out.replaceChildren(el('p', `sending ${what}…`, 'result-head'));
  try {
    const res = await fetch(prefix + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': meta('csrf-token') },
      body: JSON.stringify(body),
    });
    /** @type {Reply} */
    const reply = await res.json().catch(() => ({}));
    showReply(out, res.status, reply, what);
    out.dataset.outcome = reply.outcome || '';
    out.dataset.status = String(res.status);
    // A published task (a re-run): a link to its page.
    const id = reply['task-id'];
    if (typeof id === 'string') {
      const a = el('a', `open the new task ${id}`);
      if (a instanceof HTMLAnchorElement) a.href = `${prefix}/ui/tasks/${encodeURIComponent(id)}`;
      a.id = 'result-task';
      out.append(a);
    }
    if (res.ok) await refreshSections().catch(() => undefined);
    return { status: res.status, reply };
  } catch (e) {
    out.replaceChildren(el('p', `✗ ${what} not sent: ${e}`, 'result-head'));
    out.dataset.status = '0';
    return { status: 0, reply: {} };
  }
}

/**
 * Acts on many things at once (bulk re-run / revoke, a queue purge): the dry run first, its count
 * in the confirmation, then the act. A purge also wants the queue's name typed.
 * @param {HTMLFormElement} form
 * @param {Record<string, unknown>} args
 */
async function twoStep(form, args) {
  const path = form.dataset.post ?? '';
  const label = form.dataset.label || path;
  const name = form.dataset.confirmName;
  if (name !== undefined && args.confirm_name !== name) {
    const out = document.getElementById('result');
    if (out) {
      out.hidden = false;
      out.dataset.status = '0';
      out.textContent = `type the queue name "${name}" to confirm; nothing was sent`;
    }
    return;
  }
  delete args.confirm_name;
  const dry = await send(path, { ...args, dry_run: true }, `${label} (dry run)`);
  if (dry.status !== 200) return;
  const count = dry.reply.count ?? dry.reply.messages;
  if (!window.confirm(`${label}: ${count} ${form.dataset.noun ?? 'items'}. Go ahead?`)) return;
  await send(path, args, label);
}

document.addEventListener('submit', (ev) => {
  const form = ev.target;
  if (!(form instanceof HTMLFormElement) || !(form.dataset.command || form.dataset.post)) return;
  ev.preventDefault();
  /** @type {Record<string, unknown>} */
  let args;
  try {
    args = argumentsOf(form);
  } catch (e) {
    const out = document.getElementById('result');
    if (out) {
      out.hidden = false;
      out.dataset.status = '0';
      out.textContent = `not sent: ${e instanceof Error ? e.message : e}`;
    }
    return;
  }
  if (form.dataset.twoStep) {
    void twoStep(form, args);
    return;
  }
  if (form.dataset.ask && !window.confirm(form.dataset.ask)) return;
  if (form.dataset.command) {
    const targets = form.dataset.worker ? { workers: [form.dataset.worker] } : { all: true };
    const body = { command: form.dataset.command, arguments: args, targets, confirm: form.dataset.confirm === '1' };
    void send('/api/v1/actions', body, form.dataset.command + (form.dataset.worker ? ` to ${form.dataset.worker}` : ''));
  } else if (form.dataset.post) {
    void send(form.dataset.post, args, form.dataset.label || form.dataset.post);
  }
});

const live = document.querySelector('[data-live]');
const toggle = document.getElementById('live-toggle');
if (live instanceof HTMLElement && toggle instanceof HTMLInputElement) {
  const every = Math.max(2, Number(live.dataset.live) || 5) * 1000;
  setInterval(async () => {
    if (!toggle.checked || document.hidden) return;
    try {
      const res = await fetch(location.href, { credentials: 'same-origin', headers: { accept: 'text/html' } });
      if (!res.ok) return;
      const fresh = new DOMParser().parseFromString(await res.text(), 'text/html').querySelector('[data-live]');
      if (!fresh) return;
      live.innerHTML = fresh.innerHTML;
      live.dataset.refreshes = String(Number(live.dataset.refreshes || 0) + 1);
    } catch {
      // The next tick tries again.
    }
  }, every);
}

export {};
