// The CLI's client of the control plane's HTTP API: fetch with a timeout, the bearer token, and
// every failure turned into a CliError with the exit code scripts rely on.
import { ApiErrorResponseSchema } from '@outpost/shared';
import { CliError, CliExitCode } from './exit-codes.js';

export interface ApiClientOptions {
  /** Base URL of the control plane, e.g. http://127.0.0.1:8080. */
  url: string;
  token?: string | undefined;
  /** Give up after this long; default 10 000 ms. */
  timeoutMs?: number;
}

export interface ApiClient {
  /** GETs `path` (with its query) and returns the parsed JSON body of a 2xx answer. */
  get(path: string): Promise<unknown>;
}

export const DEFAULT_CLI_TIMEOUT_MS = 10_000;

/** Of an answer carrying the API's error body. */
function exitCodeFor(status: number): CliExitCode {
  if (status === 401 || status === 403) return CliExitCode.auth;
  if (status === 404) return CliExitCode.notFound;
  return CliExitCode.apiError;
}

/** A client of the control plane at `options.url`; every failure is a CliError with its exit code. */
export function createApiClient(options: ApiClientOptions): ApiClient {
  const base = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS;
  return {
    async get(path) {
      let response: Response;
      let text: string;
      try {
        response = await fetch(`${base}${path}`, {
          headers: { accept: 'application/json', ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }) },
          signal: AbortSignal.timeout(timeoutMs),
        });
        text = await response.text();
      } catch (cause) {
        const reason = (cause as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : describeFetchFailure(cause);
        throw new CliError(CliExitCode.unreachable, `cannot reach the control plane at ${base}: ${reason}`, { cause });
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (response.ok) {
        if (body === undefined) throw new CliError(CliExitCode.unreachable, `${base}${path} answered ${response.status} without JSON: is ${base} an Outpost control plane?`);
        return body;
      }
      const error = ApiErrorResponseSchema.safeParse(body);
      if (error.success) {
        const hint = error.data.error.code.startsWith('AUTH_') ? ' (give a token with --token or OUTPOST_TOKEN)' : '';
        throw new CliError(exitCodeFor(response.status), `${error.data.error.code}: ${error.data.error.message}${hint}`, { code: error.data.error.code });
      }
      // Not the API's error body: a proxy, or not a control plane at all.
      const exitCode = response.status === 401 || response.status === 403 ? CliExitCode.auth : CliExitCode.unreachable;
      throw new CliError(exitCode, `${base}${path} answered HTTP ${response.status} ${response.statusText} without an Outpost error body: is ${base} an Outpost control plane?`);
    },
  };
}

/** fetch hides the socket error in `cause`: ECONNREFUSED, ENOTFOUND, ... */
function describeFetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code !== undefined) return cause.message === undefined ? cause.code : cause.message;
  // fetch refuses some ports outright ("bad port") with a plain error as the cause.
  return cause?.message ?? (error as Error).message;
}
