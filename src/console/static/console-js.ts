/**
 * The console's only script, served as GET <prefix>/ui/static/console.js (no inline script: the
 * CSP forbids it). It does two things a server-rendered page cannot: send action forms as JSON
 * to the control API with the session's CSRF token, showing the workers' replies; and refresh
 * a live table in place. Without it pages still read fine and nothing is ever sent by a GET.
 */
export const CONSOLE_JS = `(() => {
  'use strict';
  const meta = (name) => (document.querySelector('meta[name="' + name + '"]') || {}).content || '';
  const prefix = meta('url-prefix');

  function argumentsOf(form) {
    const args = form.dataset.args ? JSON.parse(form.dataset.args) : {};
    for (const el of form.querySelectorAll('[data-arg]')) {
      const name = el.dataset.arg;
      if (el.type === 'checkbox') { args[name] = el.checked; continue; }
      if (el.value === '') { if (el.dataset.empty === 'null') args[name] = null; else if (el.dataset.empty === 'keep') args[name] = ''; continue; }
      args[name] = el.dataset.type === 'number' ? Number(el.value) : el.value;
    }
    return args;
  }

  async function send(path, body, what) {
    const out = document.getElementById('result');
    if (!out) return;
    delete out.dataset.status; delete out.dataset.outcome;
    out.hidden = false;
    out.textContent = 'sending ' + what + '…';
    try {
      const res = await fetch(prefix + path, { method: 'POST', credentials: 'same-origin',
        headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': meta('csrf-token') },
        body: JSON.stringify(body) });
      const reply = await res.json().catch(() => ({}));
      out.textContent = res.status + ' ' + JSON.stringify(reply, null, 2);
      out.dataset.outcome = reply.outcome || '';
      out.dataset.status = String(res.status);
    } catch (e) {
      out.textContent = 'not sent: ' + e;
      out.dataset.status = '0';
    }
  }

  document.addEventListener('submit', (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !(form.dataset.command || form.dataset.post)) return;
    ev.preventDefault();
    if (form.dataset.ask && !window.confirm(form.dataset.ask)) return;
    if (form.dataset.command) {
      const targets = form.dataset.worker ? { workers: [form.dataset.worker] } : { all: true };
      const body = { command: form.dataset.command, arguments: argumentsOf(form), targets, confirm: form.dataset.confirm === '1' };
      send('/api/v1/actions', body, form.dataset.command + (form.dataset.worker ? ' to ' + form.dataset.worker : ''));
    } else {
      send(form.dataset.post, argumentsOf(form), form.dataset.label || form.dataset.post);
    }
  });

  const live = document.querySelector('[data-live]');
  const toggle = document.getElementById('live-toggle');
  if (live && toggle) {
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
      } catch { /* the next tick tries again */ }
    }, every);
  }
})();
`;
