import type { Principal } from '../auth/index.js';
import { html } from './html.js';
import { ASSET_VERSION } from './static/assets.js';

/**
 * The page at `/`: what this is and where to go, in the console's style. It says whether the
 * caller is signed in (and as whom), so it never asks someone already in to sign in.
 */
export function landingPage(o: { version: string; prefix: string; caller: Principal | undefined }): string {
  const p = o.prefix;
  const consoleLine = o.caller
    ? html`<a class="signin-button" href="${p}/ui">Open the operator console</a>
<p class="muted">Signed in as <strong>${o.caller.name}</strong> (${o.caller.role}).</p>`
    : html`<a class="signin-button" href="${p}/login?next=${encodeURIComponent(`${p}/ui`)}">Sign in to the operator console</a>`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>celery-autopilot</title>
<link rel="icon" type="image/svg+xml" href="${p}/ui/static/favicon.svg">
<link rel="stylesheet" href="${p}/ui/static/console.css?v=${ASSET_VERSION}">
</head>
<body>
<header class="top"><a class="brand" href="${p}/">celery-autopilot</a></header>
<main class="signin">
<h1>celery-autopilot <span class="muted">${o.version}</span></h1>
<p>Celery metrics for Prometheus, worker control, task history and Alertmanager remediation.</p>
<div class="signin-providers">${consoleLine}</div>
<ul>
<li><a href="${p}/metrics">Metrics</a> (Prometheus scrapes this)</li>
<li><a href="${p}/-/healthy">Health</a> · <a href="${p}/-/ready">Readiness</a></li>
</ul>
</main>
</body></html>
`.text;
}
