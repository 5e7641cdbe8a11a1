// `rollout status ID --watch`: follows one rollout until it ends. The rollout is read again
// (GET /api/rollouts/{id}) whenever the event stream says it changed and at least every
// second, since wave progress moves with the agents' heartbeats, which write no rollout event.
// On a terminal one frame is redrawn in place per change; otherwise lines are appended (or,
// with --json, one view per line). The exit code tells scripts how the rollout ended.
import { RolloutViewSchema, TERMINAL_STATUSES, type RolloutStatus, type RolloutView } from '@outpost/shared';
import type { ApiClient } from './api-client.js';
import { followRolloutEvents } from './event-stream.js';
import { CliError, CliExitCode } from './exit-codes.js';
import { describeStatus } from './rollout-format.js';
import type { Style } from './style.js';
import { createLiveRegion, type TerminalSize } from './terminal.js';
import { createLogState, logLines, renderWatchFrame, type StreamState } from './watch-frame.js';

/** Longest time between two reads of the rollout. */
export const DEFAULT_WATCH_POLL_MS = 1_000;

/** The exit code for a rollout that ended with `status`. */
export function exitCodeForStatus(status: RolloutStatus): CliExitCode {
  switch (status) {
    case 'failed':
      return CliExitCode.rolloutFailed;
    case 'rolled-back':
      return CliExitCode.rolloutRolledBack;
    case 'aborted':
      return CliExitCode.rolloutAborted;
    default:
      return CliExitCode.ok;
  }
}

export interface WatchOptions {
  api: ApiClient;
  id: string;
  out: { write(text: string): void; readonly isTTY: boolean; size(): TerminalSize };
  /** Notes about the watch itself (a dropped event stream) when stdout is a log. */
  err: { write(text: string): void };
  style: Style;
  /** One compact JSON view per line instead of text. */
  json: boolean;
  now(): number;
  /** Ctrl-C: stop watching. */
  signal: AbortSignal;
  /** Default DEFAULT_WATCH_POLL_MS. */
  pollMs?: number;
}

/** Failures worth waiting out while watching: the control plane restarting, a proxy hiccup. */
const isTransient = (error: unknown): error is CliError =>
  error instanceof CliError && (error.exitCode === CliExitCode.unreachable || error.exitCode === CliExitCode.apiError);

/**
 * Watches until the rollout reaches a final status (returns its exit code: 0 succeeded, 10
 * failed, 11 rolled back, 12 aborted) or `signal` aborts (returns 130).
 *
 * @throws CliError when the first read fails, or a later one fails for good (not found, auth).
 */
export async function watchRollout(options: WatchOptions): Promise<CliExitCode> {
  const { api, id, out, style } = options;
  const pollMs = options.pollMs ?? DEFAULT_WATCH_POLL_MS;
  /** The rollout now: the API's body (what --json prints) and its parsed view. */
  const read = async (): Promise<{ body: unknown; view: RolloutView }> => {
    const body = await api.get(`/api/rollouts/${encodeURIComponent(id)}`);
    const parsed = RolloutViewSchema.safeParse(body);
    if (!parsed.success) throw new CliError(CliExitCode.apiError, `unexpected answer for rollout ${id} (another version of the control plane?): ${parsed.error.issues[0]?.message ?? ''}`);
    return { body, view: parsed.data };
  };

  const tty = out.isTTY && !options.json;
  const region = tty ? createLiveRegion((text) => out.write(text), out.size) : undefined;
  const log = createLogState();
  let stream: StreamState = { state: 'connecting' };
  let problem: string | undefined;
  let lastJson: string | undefined;

  const show = (view: RolloutView, body: unknown): void => {
    if (options.json) {
      // The API's body as it is, one per line, when it changed.
      const line = JSON.stringify(body);
      if (line !== lastJson) out.write(`${line}\n`);
      lastJson = line;
    } else if (region !== undefined) {
      region.draw(renderWatchFrame(view, options.now(), style, stream, problem));
    } else {
      for (const line of logLines(log, view, options.now(), style)) out.write(`${line}\n`);
    }
  };

  let { view, body } = await read();
  show(view, body);

  const stop = new AbortController();
  const onInterrupt = (): void => stop.abort();
  options.signal.addEventListener('abort', onInterrupt, { once: true });
  // A rollout event wakes the loop for a read now; one that comes during a read makes the next read start at once.
  let wake: (() => void) | undefined;
  let kicked = false;
  const kick = (): void => {
    if (wake !== undefined) wake();
    else kicked = true;
  };
  let streamFailure: CliError | undefined;
  const following = TERMINAL_STATUSES.has(view.status)
    ? Promise.resolve()
    : followRolloutEvents(api, stop.signal, (event) => {
        if (event.type === 'rollout') {
          if (event.summary.id === id) kick();
          return;
        }
        if (event.type === 'stream-open') stream = { state: 'live' };
        else {
          stream = { state: 'down', reason: event.reason, retryInMs: event.retryInMs };
          if (!tty && !options.json) options.err.write(`outpostctl: event stream down (${event.reason}); again in ${Math.ceil(event.retryInMs / 1000)}s, re-reading the rollout every second meanwhile\n`);
        }
        if (tty) region!.draw(renderWatchFrame(view, options.now(), style, stream, problem));
      }).catch((error: unknown) => {
        streamFailure = error instanceof CliError ? error : new CliError(CliExitCode.apiError, `event stream: ${(error as Error).message}`, { cause: error });
        stop.abort();
      });

  try {
    while (!TERMINAL_STATUSES.has(view.status) && !stop.signal.aborted) {
      if (!kicked) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            stop.signal.removeEventListener('abort', done);
            resolve();
          };
          const timer = setTimeout(done, pollMs);
          wake = done;
          stop.signal.addEventListener('abort', done, { once: true });
        });
      }
      wake = undefined;
      kicked = false;
      if (stop.signal.aborted) break;
      try {
        ({ view, body } = await read());
        problem = undefined;
      } catch (error) {
        if (stop.signal.aborted) break;
        if (!isTransient(error)) throw error;
        // Said once per new problem in a log; a terminal shows it in the frame.
        if (!tty && !options.json && error.message !== problem) options.err.write(`outpostctl: ${error.message}; trying again\n`);
        problem = error.message;
      }
      show(view, body);
    }
  } catch (error) {
    // The rollout went away (404) or the token did: the cursor must not stay hidden.
    region?.finish();
    throw error;
  } finally {
    stop.abort();
    options.signal.removeEventListener('abort', onInterrupt);
    await following;
  }
  if (streamFailure !== undefined) {
    region?.finish();
    throw streamFailure;
  }

  if (!TERMINAL_STATUSES.has(view.status)) {
    // Interrupted: leave the screen tidy and say where the rollout stands; it goes on without us.
    const note = `stopped watching; rollout ${view.id} is ${describeStatus(view)} and goes on\n`;
    if (region !== undefined) region.finish(note);
    else if (!options.json) out.write(note);
    return CliExitCode.interrupted;
  }
  const code = exitCodeForStatus(view.status);
  const final = `rollout ${view.id} ${view.status}${view.reason === undefined ? '' : `: ${view.reason}`}\n`;
  if (region !== undefined) region.finish(final);
  else if (!options.json) out.write(final);
  return code;
}
