import type { Request, Response } from 'express';
import { roleAtLeast, type Auth, type Principal, type Role } from '../auth/index.js';
import { html, type Html } from './html.js';
import { ASSET_VERSION } from './static/assets.js';

/** What every page needs to know about the request: who asks, and where the console lives. */
export interface ConsoleContext {
  readonly principal: Principal;
  readonly csrfToken: string;
  /** `url_prefix` ("" or "/flower"): every link, form action and asset starts with it. */
  readonly prefix: string;
  can(role: Role): boolean;
  /** A link to a path of this app (starting with "/"), under the prefix, with an optional query. */
  href(path: string, query?: Record<string, string | number | undefined>): string;
}

export function consoleContext(req: Request, res: Response, auth: Auth): ConsoleContext {
  const principal = req.principal!;
  const prefix = typeof res.locals.urlPrefix === 'string' ? (res.locals.urlPrefix as string) : '';
  return {
    principal,
    // Only cookie sessions need (and have) a CSRF token: a caller with header credentials (API
    // token, basic auth) where no session store is configured gets pages without one.
    csrfToken: req.session ? auth.csrfToken(req) : '',
    prefix,
    can: (role) => roleAtLeast(principal.role, role),
    href: (path, query) => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') q.set(k, String(v));
      const qs = q.toString();
      return `${prefix}${path}${qs ? `?${qs}` : ''}`;
    },
  };
}

export type Section = 'overview' | 'workers' | 'tasks' | 'queues' | 'remediation';

const NAV: ReadonlyArray<readonly [Section, string, string]> = [
  ['overview', 'Overview', '/ui'],
  ['workers', 'Workers', '/ui/workers'],
  ['tasks', 'Tasks', '/ui/tasks'],
  ['queues', 'Queues', '/ui/queues'],
  ['remediation', 'Remediation', '/ui/remediation'],
];

/**
 * The page shell: navigation, who is signed in, sign-out, and the reply panel the action forms
 * write the API's answer into (operators only; shown, and kept in view, once something was sent). No inline script or style: the CSP
 * allows only the console's own files.
 */
export function layout(ctx: ConsoleContext, o: { title: string; section: Section; body: Html }): string {
  const nav = NAV.map(
    ([section, label, path]) => html`<a href="${ctx.href(path)}"${section === o.section ? html` aria-current="page"` : ''}>${label}</a>`,
  );
  const page = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · celery-autopilot</title>
<meta name="csrf-token" content="${ctx.csrfToken}"><meta name="url-prefix" content="${ctx.prefix}">
<link rel="icon" type="image/svg+xml" href="${ctx.href('/ui/static/favicon.svg')}">
<link rel="stylesheet" href="${ctx.href('/ui/static/console.css', { v: ASSET_VERSION })}">
<script type="module" src="${ctx.href('/ui/static/console.js', { v: ASSET_VERSION })}"></script>
</head>
<body>
<header class="top"><a class="brand" href="${ctx.href('/ui')}">celery-autopilot</a><nav>${nav}</nav>
<div class="who">Signed in as <strong>${ctx.principal.name}</strong> (${ctx.principal.role})
<form method="post" action="${ctx.href('/logout')}" class="inline"><input type="hidden" name="_csrf" value="${ctx.csrfToken}"><button>Log out</button></form></div></header>
<main>
<h1>${o.title}</h1>
${ctx.can('operator') ? html`<div id="result" aria-live="polite" hidden></div>` : ''}
${o.body}
</main>
</body></html>
`;
  return page.text;
}

/** A short error page in the console's frame (unknown worker, bad parameter). */
export function errorPage(ctx: ConsoleContext, section: Section, title: string, message: string): string {
  return layout(ctx, { title, section, body: html`<p class="error" role="alert">${message}</p>` });
}
