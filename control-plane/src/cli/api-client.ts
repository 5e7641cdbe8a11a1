// The CLI's client of the control plane's HTTP API: fetch with a timeout, the bearer token, and
// every failure turned into a CliError with the exit code scripts rely on.
import { ApiErrorResponseSchema } from '@outpost/shared';
import { CliError, CliExitCode } from './exit-codes.js';

export interface ApiClientOptions {
  /** Base URL of the control plane, e.g. http://127.0.0.1:8080. */
  url: string;
  token?: string | undefined;
  /** Give up after this long; default 10 000 ms. Not applied to an open event stream. */
  timeoutMs?: number;
  /** Aborts every request (Ctrl-C): the request fails with CliExitCode.interrupted. */
  signal?: AbortSignal;
}

/** A 2xx answer: its status and parsed JSON body. */
export interface ApiAnswer {
  status: number;
  body: unknown;
}

export interface ApiClient {
  /** GETs `path` (with its query) and returns the parsed JSON body of a 2xx answer. */
  get(path: string): Promise<unknown>;
  /** POSTs `body` as JSON to `path` and returns the 2xx answer (201 and 200 may mean different things). */
  post(path: string, body: unknown): Promise<ApiAnswer>;
  /**
   * Opens a `text/event-stream` at `path` (no timeout once it answered) and returns its body;
   * `signal` ends it. Give a signal per connection: a listener stays on it while the stream is open.
   */
  stream(path: string, signal: AbortSignal): Promise<ReadableStream<Uint8Array>>;
}

export const DEFAULT_CLI_TIMEOUT_MS = 10_000;

/** Of an answer carrying the API's error body. */
function exitCodeFor(status: number): CliExitCode {
  if (status === 400) return CliExitCode.invalid;
  if (status === 401 || status === 403) return CliExitCode.auth;
  if (status === 404) return CliExitCode.notFound;
  if (status === 409) return CliExitCode.conflict;
  return CliExitCode.apiError;
}

/** A client of the control plane at `options.url`; every failure is a CliError with its exit code. */
export function createApiClient(options: ApiClientOptions): ApiClient {
  const base = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? DEFAULT_CLI_TIMEOUT_MS;
  const authorization: Record<string, string> = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };

  const interrupted = (): CliError => new CliError(CliExitCode.interrupted, 'interrupted');

  /** The fetch itself; a failure to get any answer is `unreachable` (or `interrupted`). */
  const send = async (path: string, init: RequestInit, signal: AbortSignal): Promise<Response> => {
    try {
      return await fetch(`${base}${path}`, { ...init, signal });
    } catch (cause) {
      if (options.signal?.aborted === true) throw interrupted();
      const reason = (cause as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : describeFetchFailure(cause);
      throw new CliError(CliExitCode.unreachable, `cannot reach the control plane at ${base}: ${reason}`, { cause });
    }
  };

  /** The error an answer that is not 2xx stands for. */
  const failure = (path: string, response: Response, body: unknown): CliError => {
    const error = ApiErrorResponseSchema.safeParse(body);
    if (error.success) {
      const { code, message, details } = error.data.error;
      const hint = code.startsWith('AUTH_') ? ' (give a token with --token or OUTPOST_TOKEN)' : code === 'FORBIDDEN' ? ' (give an operator token)' : '';
      return new CliError(exitCodeFor(response.status), `${code}: ${message}${hint}`, { code, ...(details === undefined ? {} : { details }) });
    }
    // Not the API's error body: a proxy, or not a control plane at all.
    const exitCode = response.status === 401 || response.status === 403 ? CliExitCode.auth : CliExitCode.unreachable;
    return new CliError(exitCode, `${base}${path} answered HTTP ${response.status} ${response.statusText} without an Outpost error body: is ${base} an Outpost control plane?`);
  };

  /**
   * A signal for one request: aborted after `timeoutMs` (a TimeoutError) or by `options.signal`.
   * Not AbortSignal.any: each call of it leaves a listener on the long-lived Ctrl-C signal until
   * garbage collection, and a watch making a request a second would pile them up.
   */
  const requestSignal = (): { signal: AbortSignal; dispose(): void } => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    const onInterrupt = (): void => controller.abort(options.signal?.reason);
    if (options.signal?.aborted === true) controller.abort(options.signal.reason);
    else options.signal?.addEventListener('abort', onInterrupt, { once: true });
    return {
      signal: controller.signal,
      dispose() {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onInterrupt);
      },
    };
  };

  const request = async (method: 'GET' | 'POST', path: string, payload?: unknown): Promise<ApiAnswer> => {
    const headers: Record<string, string> = { accept: 'application/json', ...authorization };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const { signal, dispose } = requestSignal();
    let response: Response;
    let text: string;
    try {
      response = await send(path, { method, headers, ...(payload === undefined ? {} : { body: JSON.stringify(payload) }) }, signal);
      try {
        text = await response.text();
      } catch (cause) {
        if (options.signal?.aborted === true) throw interrupted();
        const reason = (cause as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : describeFetchFailure(cause);
        throw new CliError(CliExitCode.unreachable, `${base}${path}: the answer broke off: ${reason}`, { cause });
      }
    } finally {
      dispose();
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!response.ok) throw failure(path, response, body);
    if (body === undefined) throw new CliError(CliExitCode.unreachable, `${base}${path} answered ${response.status} without JSON: is ${base} an Outpost control plane?`);
    return { status: response.status, body };
  };

  return {
    async get(path) {
      return (await request('GET', path)).body;
    },
    post: (path, body) => request('POST', path, body),
    async stream(path, streamSignal) {
      // The timeout covers the answer's headers only: an event stream stays open for as long as it is read.
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
      const onStop = (): void => controller.abort(streamSignal.reason);
      if (streamSignal.aborted) controller.abort(streamSignal.reason);
      // Left on `streamSignal` once the stream is open: the caller gives a signal per connection.
      else streamSignal.addEventListener('abort', onStop, { once: true });
      try {
        const response = await send(path, { headers: { accept: 'text/event-stream', ...authorization } }, controller.signal);
        if (!response.ok || response.body === null) {
          let body: unknown;
          try {
            body = JSON.parse(await response.text());
          } catch {
            body = undefined;
          }
          throw failure(path, response, body);
        }
        return response.body;
      } catch (error) {
        streamSignal.removeEventListener('abort', onStop);
        throw error;
      } finally {
        clearTimeout(timer);
      }
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
