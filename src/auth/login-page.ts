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
 * In place of the sign-in page when nobody can sign in from a browser: what to configure, as
 * the README's quick start says it. `tokens` when API tokens exist (scripts get in, people do not).
 */
export function noSignInPage(o: { tokens: boolean; base?: string }): string {
  const base = escapeHtml(o.base ?? '');
  return [
    ...head(base, 'Sign in'),
    '<main class="signin">',
    '<h1>Nobody can sign in yet</h1>',
    o.tokens
      ? '<p>Only API tokens are configured: scripts reach the console and the API with an <code>Authorization: Bearer</code> header, and there is no sign-in form for people.</p>'
      : '<p>No user, token or single sign-on is configured, so the console and the control API stay closed.</p>',
    '<p>To sign in with a username and a password:</p>',
    '<ol class="signin-steps">',
    '<li>Make a user line (it asks for a password and prints <code>alice:admin:scrypt$…</code>, a hash, never the password):<pre>npm run --silent hash-secret -- user alice admin</pre></li>',
    '<li>Restart with it in the environment (or as <code>--auth-users</code>, or as <code>auth.users</code> in the YAML config):<pre>export CELERY_AUTOPILOT_AUTH_USERS="$(npm run --silent hash-secret -- user alice admin)"\nnpm start</pre></li>',
    `<li>Open <a href="${base}/ui">${base}/ui</a> and sign in as alice.</li>`,
    '</ol>',
    '<p class="muted">Roles: viewer reads, operator runs control commands, admin also the dangerous ones. GitHub, OpenID Connect and API tokens: see the README, section Authentication.</p>',
    '</main>',
    '</body></html>',
    '',
  ].join('\n');
}

/** The document head and the header bar shared by the sign-in pages. */
function head(base: string, title: string): string[] {
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${title} · celery-autopilot</title>`,
    `<link rel="icon" type="image/svg+xml" href="${base}/ui/static/favicon.svg">`,
    `<link rel="stylesheet" href="${base}/ui/static/console.css?v=${ASSET_VERSION}">`,
    '</head>',
    '<body>',
    `<header class="top"><a class="brand" href="${base}/">celery-autopilot</a></header>`,
  ];
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
  const parts = [...head(base, 'Sign in'), '<main class="signin">', '<h1>Sign in to celery-autopilot</h1>'];
  if (o.message) parts.push(`<p class="error" role="alert">${escapeHtml(o.message)}</p>`);
  if (o.signedInAs) {
    parts.push(
      `<p>Signed in as ${escapeHtml(o.signedInAs)}. <a href="${base}/ui">Open the console</a></p>`,
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
