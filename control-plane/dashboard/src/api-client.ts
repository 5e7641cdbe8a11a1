// The dashboard's only door to the control plane: JSON GETs (and the POSTs of operator actions,
// which carry no body) with the operator's bearer token.
// A 401 flips the app into "token needed" (the token form) instead of failing each view.
import type { ApiErrorResponse } from './api-types.js';

/** A failed API call: `code` is the API's stable error code, or NETWORK / BAD_RESPONSE. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The API's codes for a missing or refused token. */
export const AUTH_CODES: ReadonlySet<string> = new Set(['AUTH_REQUIRED', 'AUTH_INVALID']);

/** True for a refused token (HTTP 401 or an AUTH_* code): the token form's business, not a view's. */
export function isAuthError(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 401 || AUTH_CODES.has(error.code));
}

/** The API's error code of a failed call, undefined for anything else. */
export function errorCode(error: unknown): string | undefined {
  return error instanceof ApiError ? error.code : undefined;
}

export interface ApiClient {
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  /** A POST without a body (the rollout actions); answers the response's JSON. */
  post<T>(path: string, signal?: AbortSignal): Promise<T>;
  /** Headers every API request carries (the SSE reader uses them too). */
  headers(): Record<string, string>;
}

export interface ApiClientOptions {
  token(): string | undefined;
  /** Called on every 401, with the API's code. */
  onAuthFailed(code: string): void;
}

function isErrorBody(body: unknown): body is ApiErrorResponse {
  if (typeof body !== 'object' || body === null) return false;
  const error = (body as { error?: unknown }).error;
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string';
}

/** Reads a response into an ApiError (the API's `{ error: { code, message } }` when it sent one). */
export async function responseError(response: Response): Promise<ApiError> {
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (isErrorBody(body)) return new ApiError(response.status, body.error.code, body.error.message);
  return new ApiError(response.status, response.status === 401 ? 'AUTH_REQUIRED' : 'BAD_RESPONSE', `HTTP ${response.status} ${response.statusText}`.trim());
}

/** The API client; each request reads the token in force from `options.token()`. */
export function createApiClient(options: ApiClientOptions): ApiClient {
  const headers = (): Record<string, string> => {
    const token = options.token();
    return token === undefined ? { accept: 'application/json' } : { accept: 'application/json', authorization: `Bearer ${token}` };
  };
  const request = async <T>(method: 'GET' | 'POST', path: string, signal: AbortSignal | undefined): Promise<T> => {
    const token = options.token();
    let response: Response;
    try {
      response = await fetch(path, { method, headers: headers(), ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      if (signal?.aborted === true) throw error;
      throw new ApiError(0, 'NETWORK', `control plane unreachable (${(error as Error).message})`);
    }
    if (!response.ok) {
      const error = await responseError(response);
      // Only a refusal of the token still in force: a 401 to a request sent with the previous
      // token, read after the operator gave another, must not bring the token form back.
      if (response.status === 401 && signal?.aborted !== true && options.token() === token) options.onAuthFailed(error.code);
      throw error;
    }
    try {
      return (await response.json()) as T;
    } catch {
      throw new ApiError(response.status, 'BAD_RESPONSE', `${path} did not answer JSON`);
    }
  };
  return {
    headers,
    get: <T>(path: string, signal?: AbortSignal) => request<T>('GET', path, signal),
    post: <T>(path: string, signal?: AbortSignal) => request<T>('POST', path, signal),
  };
}
