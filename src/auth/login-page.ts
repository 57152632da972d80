import { escapeHtml } from '../html.js';

export interface LoginPageOptions {
  csrfToken: string;
  next: string;
  passwordLogin: boolean;
  githubLogin: boolean;
  signedInAs?: string;
  message?: string;
  /** url_prefix: the forms post under it. */
  base?: string;
}

/** The sign-in page: a password form for configured users and/or a "Sign in with GitHub" link. */
export function loginPage(o: LoginPageOptions): string {
  const next = escapeHtml(o.next);
  const csrf = escapeHtml(o.csrfToken);
  const base = escapeHtml(o.base ?? '');
  const parts = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><title>Sign in · celery-autopilot</title></head>',
    '<body>',
    '<h1>Sign in to celery-autopilot</h1>',
  ];
  if (o.message) parts.push(`<p role="alert">${escapeHtml(o.message)}</p>`);
  if (o.signedInAs) {
    parts.push(
      `<p>Signed in as ${escapeHtml(o.signedInAs)}.</p>`,
      `<form method="post" action="${base}/logout"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit">Sign out</button></form>`,
    );
  }
  if (o.passwordLogin) {
    parts.push(
      `<form method="post" action="${base}/login">`,
      `<input type="hidden" name="_csrf" value="${csrf}">`,
      `<input type="hidden" name="next" value="${next}">`,
      '<p><label>Username <input name="username" autocomplete="username" required></label></p>',
      '<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>',
      '<p><button type="submit">Sign in</button></p>',
      '</form>',
    );
  }
  if (o.githubLogin) parts.push(`<p><a href="${base}/auth/github?next=${encodeURIComponent(o.next)}">Sign in with GitHub</a></p>`);
  parts.push('</body></html>', '');
  return parts.join('\n');
}
