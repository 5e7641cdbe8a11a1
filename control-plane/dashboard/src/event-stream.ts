// The live feed: `GET /api/events` read with fetch + ReadableStream (EventSource cannot send
// an Authorization header), parsed by @outpost/shared/sse-parser, reconnected with jittered exponential
// backoff whenever it drops. A 401 stops it until the operator gives another token.
import { responseError } from './api-client.js';
import type { ServerEvent, ServerEventType } from './api-types.js';
import { createSseParser } from '@outpost/shared/sse-parser';
import { backoffDelayMs } from '@outpost/shared/backoff';

/** First reconnect delay; doubles per failed attempt. */
export const DEFAULT_RECONNECT_MIN_MS = 500;
/** Longest reconnect delay. */
export const DEFAULT_RECONNECT_MAX_MS = 15_000;
/**
 * A stream that stayed open this long was healthy: when it drops, reconnecting starts over from
 * the shortest delay. One that drops sooner keeps backing off.
 */
export const DEFAULT_STREAM_STABLE_MS = 30_000;
/**
 * A stream silent this long is taken for dead (a proxy or NAT dropped it without a FIN) and
 * reopened: three keep-alives of the control plane's default 15 s.
 */
export const DEFAULT_STREAM_IDLE_MS = 45_000;

export type StreamStatus =
  | { state: 'connecting' }
  | { state: 'live' }
  | { state: 'reconnecting'; inMs: number; reason: string }
  | { state: 'unauthorized'; code: string }
  | { state: 'closed' };

export interface EventStreamOptions {
  /** `/api/events?...`. */
  url: string;
  headers(): Record<string, string>;
  onEvent(event: ServerEvent): void;
  onStatus(status: StreamStatus): void;
  onAuthFailed(code: string): void;
  /** Default DEFAULT_RECONNECT_MIN_MS (500 ms). */
  reconnectMinMs?: number;
  /** Default DEFAULT_RECONNECT_MAX_MS (15 s). */
  reconnectMaxMs?: number;
  /** Default DEFAULT_STREAM_IDLE_MS (45 s). */
  idleMs?: number;
  /** Default DEFAULT_STREAM_STABLE_MS (30 s). */
  stableMs?: number;
}

export interface EventStream {
  close(): void;
}

const EVENT_TYPES: ReadonlySet<string> = new Set<ServerEventType>(['agents', 'rollout', 'telemetry', 'inference', 'anomaly']);

/** Delay before reconnect attempt `attempt` (0-based): exponential with equal jitter (50..100 %), so a fleet of tabs does not reconnect in step. */
export function reconnectDelayMs(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.round(backoffDelayMs({ initialMs: minMs, maxMs, jitter: 'equal' }, attempt, random));
}

/** When to reconnect; pure apart from `random`, so its pacing is tested without a server. */
export interface ReconnectPolicy {
  /** The stream answered 200 at `nowMs` (epoch ms). */
  opened(nowMs: number): void;
  /**
   * The stream failed to open or dropped at `nowMs`: the delay before the next attempt, ms, at
   * least `serverRetryMs` (the stream's `retry:`) when given.
   */
  nextDelayMs(nowMs: number, serverRetryMs?: number): number;
}

/**
 * Exponential backoff with jitter (reconnectDelayMs) whose attempt count goes back to 0 only
 * after a stream stayed open `stableMs`. Resetting it as soon as a stream opens would let a
 * server or proxy that answers 200 and hangs up at once (a restart, a connection limit) draw
 * a reconnect every `minMs` from every open tab for as long as that lasts.
 */
export function createReconnectPolicy(options: { minMs: number; maxMs: number; stableMs: number; random?: () => number }): ReconnectPolicy {
  let attempt = 0;
  let openedAtMs: number | undefined;
  return {
    opened(nowMs) {
      openedAtMs = nowMs;
    },
    nextDelayMs(nowMs, serverRetryMs) {
      if (openedAtMs !== undefined && nowMs - openedAtMs >= options.stableMs) attempt = 0;
      openedAtMs = undefined;
      const delayMs = Math.max(serverRetryMs ?? 0, reconnectDelayMs(attempt, options.minMs, options.maxMs, options.random));
      attempt++;
      return delayMs;
    },
  };
}

/** Opens the stream now; it keeps itself open until `close()`. */
export function openEventStream(options: EventStreamOptions): EventStream {
  const idleMs = options.idleMs ?? DEFAULT_STREAM_IDLE_MS;
  const policy = createReconnectPolicy({
    minMs: options.reconnectMinMs ?? DEFAULT_RECONNECT_MIN_MS,
    maxMs: options.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS,
    stableMs: options.stableMs ?? DEFAULT_STREAM_STABLE_MS,
  });
  let closed = false;
  let controller: AbortController | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const status = (s: StreamStatus): void => {
    if (!closed) options.onStatus(s);
  };

  const dispatch = (event: string, data: string): void => {
    if (!EVENT_TYPES.has(event)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return; // one bad frame must not end the feed
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    try {
      options.onEvent({ type: event, data: parsed } as ServerEvent);
    } catch (error) {
      // A view that cannot take one event (e.g. a control plane of another version) must not
      // end the feed: reported like an uncaught error, and the next event comes.
      reportError(error);
    }
  };

  const scheduleReconnect = (reason: string, serverRetryMs: number | undefined): void => {
    if (closed) return;
    const inMs = policy.nextDelayMs(Date.now(), serverRetryMs);
    status({ state: 'reconnecting', inMs, reason });
    timer = setTimeout(() => void connect(), inMs);
  };

  const connect = async (): Promise<void> => {
    if (closed) return;
    status({ state: 'connecting' });
    controller = new AbortController();
    const parser = createSseParser();
    let response: Response;
    try {
      response = await fetch(options.url, { headers: { ...options.headers(), accept: 'text/event-stream' }, signal: controller.signal, cache: 'no-store' });
    } catch (error) {
      return scheduleReconnect(`control plane unreachable (${(error as Error).message})`, undefined);
    }
    if (response.status === 401) {
      const error = await responseError(response);
      if (closed) return;
      options.onAuthFailed(error.code);
      status({ state: 'unauthorized', code: error.code });
      return;
    }
    if (!response.ok || response.body === null) {
      const error = await responseError(response);
      return scheduleReconnect(`${error.code}: ${error.message}`, undefined);
    }
    policy.opened(Date.now());
    status({ state: 'live' });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const request = controller;
    let idle = false;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        idle = true;
        request.abort();
      }, idleMs);
    };
    try {
      arm();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        arm();
        for (const message of parser.push(value)) dispatch(message.event, message.data);
        if (closed) return;
      }
      scheduleReconnect('the control plane ended the stream', parser.retryMs);
    } catch (error) {
      const reason = idle ? `no data for ${Math.round(idleMs / 1000)} s` : `stream broke (${(error as Error).message})`;
      if (!closed) scheduleReconnect(reason, parser.retryMs);
    } finally {
      clearTimeout(watchdog);
      // Whatever ended the loop, the response must not stay open: a browser gives an origin six
      // HTTP/1.1 connections, and each leaked stream would hold one until the page closes.
      request.abort();
    }
  };

  void connect();
  return {
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      controller?.abort();
      options.onStatus({ state: 'closed' });
    },
  };
}
