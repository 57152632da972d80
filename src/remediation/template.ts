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

/** Does this text contain a placeholder (so its value is only known once an alert renders it)? */
export function isTemplated(text: string): boolean {
  return text.includes('{{');
}

/**
 * What a step's arguments look like at load, for the command's validator: each placeholder takes
 * its default; one without a default takes `placeholder(argument)` when it is the whole value
 * (a value of the type the command expects), or "x" inside a longer string. `fromAlert` names
 * the top-level arguments that held a placeholder without default: only an alert can tell.
 */
export function probeArguments(
  args: Record<string, unknown>,
  placeholder: (argument: string) => unknown,
): { probe: Record<string, unknown>; fromAlert: Set<string> } {
  const fromAlert = new Set<string>();
  const probeValue = (name: string, value: unknown): unknown => {
    if (Array.isArray(value)) return value.map((v) => probeValue(name, v));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, probeValue(name, v)]));
    if (typeof value !== 'string') return value;
    let whole: unknown;
    let isWhole = false;
    const out = value.replace(TEMPLATE, (match, _source: string, _label: string, fallback: string | undefined) => {
      const v = fallback !== undefined ? unquote(fallback) : undefined;
      if (v === undefined) fromAlert.add(name);
      if (match === value) {
        isWhole = true;
        whole = v === undefined ? placeholder(name) : typed(v);
      }
      return v ?? 'x';
    });
    return isWhole ? whole : out;
  };
  const probe = Object.fromEntries(Object.entries(args).map(([k, v]) => [k, probeValue(k, v)]));
  return { probe, fromAlert };
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
