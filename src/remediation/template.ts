import type { Alert } from './alertmanager.js';

/**
 * Argument templates: `{{ labels.queue_name }}`, `{{ annotations.grow_by | default: 1 }}`. A
 * deliberately tiny language (a lookup and a default), so a rule can never run code and every
 * template is checked when the rules are loaded.
 */
const TEMPLATE = /\{\{\s*(labels|annotations)\.([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*default:\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^}\s]+)\s*)?\}\}/g;

export class TemplateError extends Error {}

/** Checks a template's syntax at load time; throws TemplateError with what is wrong. */
export function checkTemplate(text: string): void {
  const stripped = text.replace(TEMPLATE, '');
  if (stripped.includes('{{') || stripped.includes('}}')) {
    throw new TemplateError(`"${text}": only {{ labels.NAME }} or {{ annotations.NAME | default: VALUE }} are allowed`);
  }
}

function unquote(v: string): string {
  if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) return v.slice(1, -1);
  return v;
}

/**
 * Renders one argument value. A string that is exactly one placeholder renders to the looked-up
 * value with its type restored (numbers and booleans), so `n: "{{ annotations.n | default: 1 }}"`
 * yields the number 1. A missing value without a default throws TemplateError.
 */
export function render(value: unknown, alert: Alert): unknown {
  if (typeof value === 'string') return renderString(value, alert);
  if (Array.isArray(value)) return value.map((v) => render(v, alert));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v, alert)]));
  }
  return value;
}

function renderString(text: string, alert: Alert): unknown {
  let whole: string | undefined;
  const out = text.replace(TEMPLATE, (match, source: 'labels' | 'annotations', name: string, fallback: string | undefined) => {
    const found = alert[source][name];
    const v = found !== undefined && found !== '' ? found : fallback !== undefined ? unquote(fallback) : undefined;
    if (v === undefined) throw new TemplateError(`${source}.${name} is missing and has no default`);
    if (match === text) whole = v;
    return v;
  });
  if (whole !== undefined) return typed(whole);
  return out;
}

function typed(v: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === 'true') return true;
  if (v === 'false') return false;
  return v;
}
