// Error answers of the HTTP API: `{ "error": { "code", "message", "details"? } }` with a stable
// code from ApiErrorCodeSchema (clients branch on the code, never on the message).
import { ErrorCode, type ApiErrorCode, type ApiErrorResponse, type Logger } from '@outpost/shared';
import type { HttpResponse } from './http-server.js';

/** An error answer with `status` and a stable `code`. */
export function apiError(status: number, code: ApiErrorCode, message: string, details?: Record<string, unknown>): HttpResponse {
  const body: ApiErrorResponse = { error: { code, message, ...(details === undefined ? {} : { details }) } };
  return { status, body };
}

/** A bad parameter is echoed back at most this long. */
const MAX_ECHOED_CHARS = 100;

/** `value` shortened for an error message or its details. */
export function echo(value: string): string {
  return value.length > MAX_ECHOED_CHARS ? `${value.slice(0, MAX_ECHOED_CHARS)}...` : value;
}

/** 404 ROUTE_NOT_FOUND for a method and path no route serves. */
export function routeNotFound(method: string, url: string): HttpResponse {
  return apiError(404, ErrorCode.ROUTE_NOT_FOUND, `no route ${method} ${echo(url.split('?')[0] ?? '')}`);
}

/** The answer to a request that threw: a client error fastify found stays a 400, anything else is a logged 500. */
export function requestFailed(logger: Logger): (error: unknown, statusCode: number | undefined) => HttpResponse {
  return (error, statusCode) => {
    if (statusCode !== undefined) return apiError(statusCode, ErrorCode.REQUEST_INVALID, (error as Error).message);
    logger.error({ err: error }, 'API request failed');
    return apiError(500, ErrorCode.INTERNAL_ERROR, 'internal error; see the control plane log');
  };
}
