// `GET /api/events` for the CLI: read with fetch (so the token goes in the Authorization
// header, as the dashboard does it), parsed as server-sent events, reopened with backoff when it
// drops. The CLI only follows rollouts, so it hands on `rollout` events and nothing else.
//
// The parser is the WHATWG "event stream interpretation" reduced to what the control plane
// sends (event, data, comments; CR, LF or CRLF line ends, in any chunking). The dashboard has
// its own (control-plane/dashboard/src/sse-parser.ts): it is browser code the CLI cannot import.
import { createBackoff, RolloutSummarySchema, sleep, type RolloutSummary } from '@outpost/shared';
import type { ApiClient } from './api-client.js';
import { CliError, CliExitCode } from './exit-codes.js';

export interface SseMessage {
  /** The `event:` field; "message" when the server sent none. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
}

/** A parser for one connection: feed it decoded text as it arrives. Pure. */
export function createSseParser(): { push(chunk: string): SseMessage[] } {
  let buffer = '';
  let event = '';
  let data: string[] = [];
  // A chunk ending in "\r" may be the first half of "\r\n".
  let skipLeadingLf = false;

  const takeLine = (line: string, out: SseMessage[]): void => {
    if (line === '') {
      if (data.length > 0) out.push({ event: event === '' ? 'message' : event, data: data.join('\n') });
      event = '';
      data = [];
      return;
    }
    if (line.startsWith(':')) return; // a comment: the server's keep-alive
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  };

  return {
    push(chunk) {
      const out: SseMessage[] = [];
      let text = chunk;
      if (skipLeadingLf && text.startsWith('\n')) text = text.slice(1);
      skipLeadingLf = false;
      buffer += text;
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer[i];
        if (c !== '\n' && c !== '\r') continue;
        takeLine(buffer.slice(start, i), out);
        if (c === '\r') {
          if (i + 1 === buffer.length) skipLeadingLf = true;
          else if (buffer[i + 1] === '\n') i++;
        }
        start = i + 1;
      }
      buffer = buffer.slice(start);
      return out;
    },
  };
}

function parseSummary(data: string): RolloutSummary | undefined {
  try {
    const parsed = RolloutSummarySchema.safeParse(JSON.parse(data));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** What a rollout follower hears: a rollout changed, or the stream's state (for the status line). */
export type RolloutStreamEvent =
  | { type: 'rollout'; summary: RolloutSummary }
  | { type: 'stream-open' }
  | { type: 'stream-down'; reason: string; retryInMs: number };

export const DEFAULT_STREAM_RETRY_MIN_MS = 500;
export const DEFAULT_STREAM_RETRY_MAX_MS = 10_000;

/**
 * Follows `rollout` events of `GET /api/events` until `signal` aborts, reopening the stream
 * with backoff (500 ms doubling to 10 s, equal jitter) whenever it fails or ends. An
 * authentication failure is not retried: it rejects with its CliError. Resolves when `signal` aborts.
 */
export async function followRolloutEvents(api: ApiClient, signal: AbortSignal, onEvent: (event: RolloutStreamEvent) => void): Promise<void> {
  const backoff = createBackoff({ initialMs: DEFAULT_STREAM_RETRY_MIN_MS, maxMs: DEFAULT_STREAM_RETRY_MAX_MS, jitter: 'equal' });
  while (!signal.aborted) {
    let reason: string;
    // One signal per connection, so nothing of a closed connection stays on `signal`.
    const connection = new AbortController();
    const onStop = (): void => connection.abort(signal.reason);
    signal.addEventListener('abort', onStop, { once: true });
    try {
      // Only rollout events: a watch does not need the fleet's telemetry.
      const body = await api.stream('/api/events?types=rollout', connection.signal);
      onEvent({ type: 'stream-open' });
      backoff.reset();
      const parser = createSseParser();
      // A TextDecoder in stream mode keeps a UTF-8 sequence split between two chunks whole.
      const decoder = new TextDecoder();
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          for (const message of parser.push(decoder.decode(value, { stream: true }))) {
            if (message.event !== 'rollout') continue;
            const summary = parseSummary(message.data);
            // One frame of another shape must not end the feed; the periodic re-read covers it.
            if (summary !== undefined) onEvent({ type: 'rollout', summary });
          }
        }
        reason = 'the control plane ended the stream';
      } finally {
        reader.releaseLock();
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof CliError && (error.exitCode === CliExitCode.auth || error.exitCode === CliExitCode.interrupted)) throw error;
      reason = error instanceof CliError ? error.message : `the stream broke: ${(error as Error).message}`;
    } finally {
      signal.removeEventListener('abort', onStop);
      connection.abort();
    }
    if (signal.aborted) return;
    const retryInMs = Math.round(backoff.next());
    onEvent({ type: 'stream-down', reason, retryInMs });
    await sleep(retryInMs, signal);
  }
}
