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
 * POST a JSON body to the API and show the reply in the #result panel; resolves with it.
 * @param {string} path
 * @param {unknown} body
 * @param {string} what
 * @returns {Promise<{ status: number, reply: Record<string, unknown> }>}
 */
async function send(path, body, what) {
  const out = document.getElementById('result');
  if (!out) return { status: 0, reply: {} };
  delete out.dataset.status;
  delete out.dataset.outcome;
  out.hidden = false;
  out.textContent = `sending ${what}…`;
  try {
    const res = await fetch(prefix + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': meta('csrf-token') },
      body: JSON.stringify(body),
    });
    /** @type {Record<string, unknown>} */
    const reply = await res.json().catch(() => ({}));
    out.textContent = `${res.status} ${JSON.stringify(reply, null, 2)}`;
    out.dataset.outcome = typeof reply.outcome === 'string' ? reply.outcome : '';
    out.dataset.status = String(res.status);
    // A published task (a re-run): a link to its page.
    const id = reply['task-id'];
    if (typeof id === 'string') {
      const a = document.createElement('a');
      a.href = `${prefix}/ui/tasks/${encodeURIComponent(id)}`;
      a.id = 'result-task';
      a.textContent = `open the new task ${id}`;
      out.append('\n', a);
    }
    return { status: res.status, reply };
  } catch (e) {
    out.textContent = `not sent: ${e}`;
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
