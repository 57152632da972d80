import type { Request } from 'express';
import { CommandValidationError } from '../control/validators.js';
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
