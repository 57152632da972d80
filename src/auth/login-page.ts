import { ASSET_VERSION } from '../console/static/assets.js';
import { escapeHtml } from '../html.js';
import type { OidcButton } from './context.js';

export interface LoginPageOptions {
  csrfToken: string;
  next: string;
  passwordLogin: boolean;
  githubLogin: boolean;
  /** OpenID Connect providers, each a button; one whose issuer has not been reached yet says so. */
  oidc?: readonly OidcButton[];
  signedInAs?: string;
  message?: string;
  /** url_prefix: the forms post under it. */
  base?: string;
}

/**
 * The sign-in page: a button per OAuth / OpenID provider (GitHub first, then auth.oidc in config
 * order), then the password form for configured users. Styled by the console's stylesheet (the
 * page's CSP allows this origin's styles and nothing inline); no script.
 */
export function loginPage(o: LoginPageOptions): string {
  const next = escapeHtml(o.next);
  const csrf = escapeHtml(o.csrfToken);
  const base = escapeHtml(o.base ?? '');
  const nextQuery = encodeURIComponent(o.next);
  const parts = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>Sign in · celery-autopilot</title>',
    `<link rel="icon" type="image/svg+xml" href="${base}/ui/static/favicon.svg">`,
    `<link rel="stylesheet" href="${base}/ui/static/console.css?v=${ASSET_VERSION}">`,
    '</head>',
    '<body>',
    '<header class="top"><span class="brand">celery-autopilot</span></header>',
    '<main class="signin">',
    '<h1>Sign in to celery-autopilot</h1>',
  ];
  if (o.message) parts.push(`<p class="error" role="alert">${escapeHtml(o.message)}</p>`);
  if (o.signedInAs) {
    parts.push(
      `<p>Signed in as ${escapeHtml(o.signedInAs)}.</p>`,
      `<form method="post" action="${base}/logout"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit">Sign out</button></form>`,
    );
  }
  const buttons: string[] = [];
  if (o.githubLogin) buttons.push(`<a class="signin-button" href="${base}/auth/github?next=${nextQuery}">Sign in with GitHub</a>`);
  for (const p of o.oidc ?? []) {
    const name = escapeHtml(p.name);
    buttons.push(
      p.available
        ? `<a class="signin-button" href="${base}/auth/oidc/${escapeHtml(p.id)}?next=${nextQuery}">Sign in with ${name}</a>`
        : `<span class="signin-button unavailable" aria-disabled="true">Sign in with ${name} <small>unavailable: its issuer cannot be reached yet (retrying)</small></span>`,
    );
  }
  if (buttons.length > 0) parts.push('<div class="signin-providers">', ...buttons, '</div>');
  if (o.passwordLogin) {
    parts.push(
      buttons.length > 0 ? '<p class="muted signin-or">or with a username and password</p>' : '',
      `<form method="post" action="${base}/login" class="signin-password">`,
      `<input type="hidden" name="_csrf" value="${csrf}">`,
      `<input type="hidden" name="next" value="${next}">`,
      '<p><label>Username <input name="username" autocomplete="username" required></label></p>',
      '<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>',
      '<p><button type="submit">Sign in</button></p>',
      '</form>',
    );
  }
  parts.push('</main>', '</body></html>', '');
  return parts.join('\n');
}
