// Small hooks shared by the views: a ticking clock, a JSON resource, the live feed, and a
// throttle that turns a burst of events into one refetch.
import { useEffect, useRef, useState } from 'preact/hooks';
import { isAuthError } from './api-client.js';
import type { ServerEvent } from './api-types.js';
import { useApp } from './app-context.js';
import { openEventStream, type StreamStatus } from './event-stream.js';

/** The current time, re-rendered every `intervalMs` (default 1 000 ms). */
export function useNow(intervalMs = 1_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

export interface Resource<T> {
  /** The last good answer; kept while a refresh is in flight or after it failed. */
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
}

/**
 * GETs `path` (undefined: nothing), again whenever `refreshKey` or the token changes. A
 * refresh keeps the previous data on screen, so live views do not flicker.
 */
export function useResource<T>(path: string | undefined, refreshKey = 0): Resource<T> {
  const { api, tokenVersion } = useApp();
  const [state, setState] = useState<Resource<T>>({ data: undefined, error: undefined, loading: path !== undefined });
  const lastPath = useRef(path);
  useEffect(() => {
    if (path === undefined) return;
    const pathChanged = lastPath.current !== path;
    lastPath.current = path;
    const controller = new AbortController();
    setState((s) => ({ data: pathChanged ? undefined : s.data, error: pathChanged ? undefined : s.error, loading: true }));
    api.get<T>(path, controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, error: undefined, loading: false });
      },
      (error: unknown) => {
        if (controller.signal.aborted) return;
        setState((s) => ({ data: s.data, error: error instanceof Error ? error : new Error(String(error)), loading: false }));
      },
    );
    return () => controller.abort();
  }, [api, path, refreshKey, tokenVersion]);
  return state;
}

/** An error worth showing: not the 401s, which the token form handles. */
export function visibleError(error: Error | undefined): Error | undefined {
  return error === undefined || isAuthError(error) ? undefined : error;
}

/**
 * Keeps `/api/events?...` open while the component lives (undefined url: closed) and hands
 * each event to the latest `onEvent`. Reopens when the url or the token changes.
 */
export function useLiveEvents(url: string | undefined, onEvent: (event: ServerEvent) => void): StreamStatus {
  const { api, tokenVersion, onAuthFailed } = useApp();
  const [status, setStatus] = useState<StreamStatus>({ state: 'connecting' });
  const handler = useRef(onEvent);
  handler.current = onEvent;
  const authFailed = useRef(onAuthFailed);
  authFailed.current = onAuthFailed;
  useEffect(() => {
    if (url === undefined) return;
    const stream = openEventStream({
      url,
      headers: api.headers,
      onEvent: (event) => handler.current(event),
      onStatus: setStatus,
      onAuthFailed: (code) => authFailed.current(code),
    });
    return () => stream.close();
  }, [api, url, tokenVersion]);
  return status;
}

/**
 * Calls `refetch` whenever the live feed becomes live, the first time included: what changed
 * before the stream opened, or while it was down, came as no event, so a view that keeps itself
 * current from events reads its resource again.
 */
export function useRefetchWhenLive(status: StreamStatus, refetch: () => void): void {
  const handler = useRef(refetch);
  handler.current = refetch;
  useEffect(() => {
    if (status.state === 'live') handler.current();
  }, [status.state]);
}

/**
 * A counter that `request()` bumps at most once per `intervalMs`: hand it to useResource as
 * its refreshKey to refetch after events without a request per event.
 */
export function useThrottledRefresh(intervalMs: number): [number, () => void] {
  const [key, setKey] = useState(0);
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  const request = useRef(() => {
    if (timer.current !== undefined) return;
    const waitMs = Math.max(0, last.current + intervalMs - Date.now());
    timer.current = setTimeout(() => {
      timer.current = undefined;
      last.current = Date.now();
      setKey((k) => k + 1);
    }, waitMs);
  });
  return [key, request.current];
}

/**
 * Re-renders at most once per animation frame and per `minIntervalMs` however often
 * `bump()` is called: for stores a fast event stream mutates in place.
 */
export function useBatchedBump(minIntervalMs: number): [number, () => void] {
  const [version, setVersion] = useState(0);
  const pending = useRef(false);
  const last = useRef(0);
  const handles = useRef<{ timer?: ReturnType<typeof setTimeout>; frame?: number }>({});
  useEffect(
    () => () => {
      clearTimeout(handles.current.timer);
      if (handles.current.frame !== undefined) cancelAnimationFrame(handles.current.frame);
    },
    [],
  );
  const bump = useRef(() => {
    if (pending.current) return;
    pending.current = true;
    handles.current.timer = setTimeout(
      () => {
        handles.current.frame = requestAnimationFrame(() => {
          pending.current = false;
          last.current = Date.now();
          setVersion((v) => v + 1);
        });
      },
      Math.max(0, last.current + minIntervalMs - Date.now()),
    );
  });
  return [version, bump.current];
}
