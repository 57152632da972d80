import type { Request } from 'express';
import { CommandValidationError } from '../control/validators.js';

/**
 * Flower reads every parameter from the query string or a form/JSON body (tornado's
 * get_argument); so do we. Values that arrive as text are converted here, strictly, before the
 * control layer's validators see them.
 */
export function param(req: Request, name: string): unknown {
  const body = req.body as Record<string, unknown> | undefined;
  if (body && typeof body === 'object' && !Array.isArray(body) && body[name] !== undefined) return body[name];
  const q = req.query[name];
  return Array.isArray(q) ? q[q.length - 1] : q;
}

export function integerParam(req: Request, name: string, fallback?: number): number | undefined {
  const v = param(req, name);
  if (v === undefined || v === '') return fallback;
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^-?\d{1,9}$/.test(v.trim())) return Number(v.trim());
  throw new CommandValidationError('must be a whole number', name);
}

export function numberParam(req: Request, name: string): number | undefined {
  const v = param(req, name);
  if (v === undefined || v === '') return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\d{1,9}(\.\d{1,6})?$/.test(v.trim())) return Number(v.trim());
  throw new CommandValidationError('must be a number', name);
}

export function booleanParam(req: Request, name: string, fallback: boolean): boolean {
  const v = param(req, name);
  if (v === undefined || v === '') return fallback;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    if (/^(true|1|yes|on)$/i.test(v)) return true;
    if (/^(false|0|no|off)$/i.test(v)) return false;
  }
  throw new CommandValidationError('must be true or false', name);
}

export function stringParam(req: Request, name: string): string | undefined {
  const v = param(req, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new CommandValidationError('must be text', name);
  return v;
}
