import type { Request } from 'express';
import { AUDIT_KINDS, type AuditKind } from '../audit/audit-log.js';
import { CommandValidationError } from '../celery/validators.js';
import { ParamReader, paramValue } from '../params.js';

/** The control API's parameters (query string or body, src/params.ts); a bad one is a CommandValidationError (400). */
export const requestParams = (req: Request): ParamReader =>
  new ParamReader(
    (name) => paramValue(name, req.query, req.body),
    (name, problem) => new CommandValidationError(problem, name),
  );

export const param = (req: Request, name: string): unknown => requestParams(req).value(name);
export const integerParam = (req: Request, name: string, fallback?: number): number | undefined =>
  requestParams(req).integer(name) ?? fallback;
export const numberParam = (req: Request, name: string): number | undefined => requestParams(req).number(name);
export const booleanParam = (req: Request, name: string, fallback: boolean): boolean => requestParams(req).boolean(name, fallback);
export const stringParam = (req: Request, name: string): string | undefined => requestParams(req).text(name);

/** Which audit records (/api/v1/audit): one kind, or every kind unless asked. */
export const auditKind = (req: Request): AuditKind | undefined => requestParams(req).oneOf('kind', AUDIT_KINDS);

/** How many audit records one answer holds (/api/v1/audit, the remediation decisions): 1–1000, 100 unless asked. */
export const auditLimit = (req: Request): number => requestParams(req).integer('limit', { min: 1, max: 1000 }) ?? 100;
