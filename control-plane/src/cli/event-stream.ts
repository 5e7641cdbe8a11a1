// `GET /api/events` for the CLI: read with fetch (so the token goes in the Authorization
// header, as the dashboard does it), parsed as server-sent events, reopened with backoff when it
// drops. The CLI only follows rollouts, so it hands on `rollout` events and nothing else.
// The parser is shared with the dashboard (@outpost/shared's sse-parser).
import { createBackoff, createSseParser, RolloutSummarySchema, sleep, type RolloutSummary } from '@outpost/shared';
import type { ApiClient } from './api-client.js';
import { CliError, CliExitCode } from './exit-codes.js';

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
