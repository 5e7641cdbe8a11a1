// The one restart loop of the adapter's long-lived reads (the durable pull consumers and the
// ordered tails): run until stopped, with a pause between runs that stop() cuts short. It
// imports no SDK, so it is tested without a server (restart-loop.test.ts).
import { sleep, type Logger } from '@outpost/shared';
import type { Consumption } from '../types.js';

/** What stop() ends at once: the iterator of the run in progress. */
export interface Stoppable {
  stop(): void;
}

/**
 * Hands a run's iterator to the loop, so that stop() ends it. Returns false when stop() came
 * first: the iterator is stopped already and the run must return without reading it.
 */
export type AttachIterator = (iterator: Stoppable) => boolean;

export interface RestartLoopOptions {
  /** One run: it returns (or throws) when its iterator ends, and the loop decides what next. */
  runOnce: (attach: AttachIterator) => Promise<void>;
  /** Gets the loop's own lines; the caller's child logger (stream, consumer or tail). */
  logger: Logger;
  /** Logged (warn, with the error) when a run throws before stop(). */
  failedMessage: string;
  /** The connection is closed for good: running again cannot succeed, so the loop ends. */
  isClosed: () => boolean;
  /** Pause between the end of one run and the next, ms; stop() ends it early. */
  pauseMs: number;
  /** Called when a run ended without stop(), before the pause (to log where it will resume). */
  onRunEnded?: () => void;
  /** Called after the pause, before the next run: declares again what the server may have lost. A failure is logged and the next run goes ahead. */
  redeclare?: () => Promise<void>;
}

/**
 * Starts `runOnce` at once and again after every end, until stop() or a closed connection.
 * stop() ends the pause and the attached iterator, then waits for the loop to finish.
 */
export function runUntilStopped(options: RestartLoopOptions): Consumption {
  const { logger } = options;
  let stopped = false;
  let current: Stoppable | undefined;
  const stopSignal = new AbortController();

  const attach: AttachIterator = (iterator) => {
    current = iterator;
    if (!stopped) return true;
    iterator.stop();
    return false;
  };

  const loop = (async () => {
    while (!stopped) {
      try {
        await options.runOnce(attach);
      } catch (err) {
        if (!stopped) logger.warn({ err }, options.failedMessage);
      }
      if (stopped || options.isClosed()) break;
      options.onRunEnded?.();
      await sleep(options.pauseMs, stopSignal.signal);
      if (stopped) break;
      await options.redeclare?.().catch((err: unknown) => logger.warn({ err }, 're-declaring the consumer failed'));
    }
  })();

  return {
    async stop() {
      stopped = true;
      // Ends the pause at once, and the for-await of the run in progress (or the run sees
      // `stopped` when it attaches its iterator).
      stopSignal.abort();
      current?.stop();
      await loop;
    },
  };
}
