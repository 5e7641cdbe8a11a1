// The demo's service manager for one process: a process that dies on its own is started again
// (same command, so the same config, data dir and ports) within the restart limit, and every
// restart is reported; once the demo shuts down, nothing is restarted any more.
import { setTimeout as delay } from 'node:timers/promises';
import { describeExit, type ChildExit, type DemoProcess } from './processes.js';
import { decideRestart, DEFAULT_RESTART_DELAY_MS, DEFAULT_RESTART_LIMIT, type RestartLimit } from './restart-policy.js';

/** What a supervisor reports; the demo's main prints each one. */
export type SupervisorEvent =
  /** `name` died on its own (`exit`), was started again and is ready: `downMs` from the exit to ready. */
  | { type: 'restarted'; name: string; exit: ChildExit; downMs: number; restarts: number; pid: number }
  /** A restart of `name` failed (exited or timed out while starting); it is tried again within the limit. */
  | { type: 'restart-failed'; name: string; error: string }
  /**
   * `name` keeps dying: it was restarted `recent` times within `limit.intervalMs` (`restarts`
   * in all) and died again, so it stays down. `why` says how it ended last.
   */
  | { type: 'gave-up'; name: string; why: string; recent: number; restarts: number; limit: RestartLimit; tail: string }
  /** A process that is not restarted (a simulator with a set duration) ended. */
  | { type: 'ended'; name: string; exit: ChildExit; tail: string };

export interface SuperviseOptions {
  /** The process, already started and ready. */
  first: DemoProcess;
  /**
   * Starts the process again and resolves once it is ready; when `signal` aborts (the demo
   * shuts down), stops what it started and rejects. Undefined: never restarted (`ended` is
   * reported instead).
   */
  restart: ((signal: AbortSignal) => Promise<DemoProcess>) | undefined;
  onEvent(event: SupervisorEvent): void;
  /** Default DEFAULT_RESTART_LIMIT. */
  limit?: RestartLimit;
  /** Default DEFAULT_RESTART_DELAY_MS. */
  restartDelayMs?: number;
  now?: () => number;
}

/** One supervised process of the demo; the stack holds these in its layers. */
export interface SupervisedProcess {
  readonly name: string;
  /** The process running now (the newest start). */
  current(): DemoProcess;
  restarts(): number;
  /**
   * Ends supervision: nothing is restarted from now on, and a restart under way is abandoned
   * (what it started is stopped). Called on every process before the demo stops any, so a
   * restart never races the shutdown.
   */
  retire(): void;
  /** retire(), then stops the process (SIGTERM, SIGKILL after `graceMs`) and waits for a restart under way to wind up. Idempotent. */
  stop(graceMs?: number): Promise<void>;
  /** retire() and SIGKILL now (a second Ctrl-C). */
  kill(): void;
}

/** Supervises `options.first` until retired or given up. */
export function superviseProcess(options: SuperviseOptions): SupervisedProcess {
  const now = options.now ?? Date.now;
  const limit = options.limit ?? DEFAULT_RESTART_LIMIT;
  const restartDelayMs = options.restartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
  const { name } = options.first;
  const shutdown = new AbortController();
  let current = options.first;
  let restarts = 0;
  let historyMs: number[] = [];
  const retired = (): boolean => shutdown.signal.aborted;

  const watch = async (): Promise<void> => {
    let exit = await current.exited;
    // How the process ended last: its exit, or why its restart failed (with that start's output).
    let why = describeExit(exit);
    let failedOutput: string | undefined;
    for (;;) {
      if (retired()) return;
      if (options.restart === undefined) {
        options.onEvent({ type: 'ended', name, exit, tail: current.tail() });
        return;
      }
      const downSinceMs = now();
      const decision = decideRestart(historyMs, downSinceMs, limit);
      if (decision.type === 'give-up') {
        options.onEvent({ type: 'gave-up', name, why, recent: decision.recent, restarts, limit, tail: failedOutput ?? current.tail() });
        return;
      }
      historyMs = decision.historyMs;
      let next: DemoProcess;
      try {
        await delay(restartDelayMs, undefined, { signal: shutdown.signal });
        next = await options.restart(shutdown.signal);
      } catch (error) {
        if (retired()) return;
        const message = (error as Error).message;
        why = `its restart failed: ${message.split('\n')[0]}`;
        failedOutput = message;
        options.onEvent({ type: 'restart-failed', name, error: message });
        continue;
      }
      if (retired()) {
        // Ready just as the shutdown began: this one is stopped like the rest.
        await next.stop();
        return;
      }
      current = next;
      restarts += 1;
      failedOutput = undefined;
      options.onEvent({ type: 'restarted', name, exit, downMs: now() - downSinceMs, restarts, pid: next.pid });
      exit = await current.exited;
      why = describeExit(exit);
    }
  };
  const watching = watch();

  const retire = (): void => {
    if (!retired()) shutdown.abort();
  };
  let stopping: Promise<void> | undefined;
  return {
    name,
    current: () => current,
    restarts: () => restarts,
    retire,
    stop(graceMs) {
      retire();
      stopping ??= Promise.all([current.stop(graceMs), watching]).then(() => undefined);
      return stopping;
    },
    kill() {
      retire();
      current.kill();
    },
  };
}
