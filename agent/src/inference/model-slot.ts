import { backoffDelayMs, type Logger } from '@outpost/shared';
import type { AgentMetrics } from '../metrics.js';
import type { ModelProcess, ModelProcessExit } from './model-process.js';
import type { VerifiedModel } from './model-source.js';

/**
 * A process that stayed up this many times the maximum restart delay counts as healthy again:
 * its next crash restarts after the initial delay, not the grown one.
 */
const STABLE_AFTER_MAX_DELAYS = 3;

export interface RestartBackoff {
  initialDelayMs: number;
  maxDelayMs: number;
}

/**
 * Delay before restart number `attempt` (0-based): initial * 2^attempt, capped at max, ms. No
 * jitter: a local child process has no peers to collide with, and tests can rely on the delays.
 */
export function restartDelayMs(backoff: RestartBackoff, attempt: number): number {
  return backoffDelayMs({ initialMs: backoff.initialDelayMs, maxMs: backoff.maxDelayMs, jitter: 'none' }, attempt);
}

/**
 * One model under supervision: its verified bytes and the inference process serving it. When
 * the process dies unasked (kill -9, OOM, an exception) the slot starts a new one with the
 * same bytes after an exponential backoff, for as long as the slot is not retired.
 */
export interface ModelSlot {
  readonly model: VerifiedModel;
  /** The live process, or undefined while it is being restarted or after retirement. */
  process(): ModelProcess | undefined;
  readonly retired: boolean;
  /** Stops restarting and ends the process. Idempotent. */
  retire(): Promise<void>;
}

export interface ModelSlotOptions {
  model: VerifiedModel;
  /** The already loaded and self-tested first process. */
  initial: ModelProcess;
  /** Starts a new process for the same model (fork, load, self-test). */
  restart: (model: VerifiedModel) => Promise<ModelProcess>;
  backoff: RestartBackoff;
  metrics: AgentMetrics;
  logger: Logger;
  /** Called when a (re)started process is ready to score. */
  onUp: (slot: ModelSlot) => void;
  /** Called when the serving process died unasked. */
  onDown: (slot: ModelSlot, exit: ModelProcessExit) => void;
}

/** Supervises `options.initial` and its successors; see {@link ModelSlot}. */
export function createModelSlot(options: ModelSlotOptions): ModelSlot {
  const { model, backoff, metrics, logger } = options;
  const label = `${model.ref.name}@${model.ref.version}`;
  let current: ModelProcess | undefined;
  let retired = false;
  let attempt = 0;
  let upSinceMs = 0;
  let timer: NodeJS.Timeout | undefined;
  let starting: Promise<void> | undefined;

  const adopt = (proc: ModelProcess): void => {
    current = proc;
    upSinceMs = performance.now();
    void proc.exited.then((exit) => {
      if (current === proc) current = undefined;
      if (exit.requested || retired) return;
      const reason = exit.signal ?? `exit-${exit.code ?? 'unknown'}`;
      metrics.inferenceRestarts.inc({ reason });
      if (performance.now() - upSinceMs >= STABLE_AFTER_MAX_DELAYS * backoff.maxDelayMs) attempt = 0;
      const delayMs = restartDelayMs(backoff, attempt);
      logger.warn({ model: label, pid: proc.pid, code: exit.code, signal: exit.signal, restartInMs: delayMs }, 'inference process died; restarting');
      options.onDown(slot, exit);
      scheduleRestart(delayMs);
    });
  };

  const scheduleRestart = (delayMs: number): void => {
    timer = setTimeout(() => {
      timer = undefined;
      starting = restartNow().finally(() => {
        starting = undefined;
      });
    }, delayMs);
  };

  const restartNow = async (): Promise<void> => {
    if (retired) return;
    attempt++;
    let proc: ModelProcess;
    try {
      proc = await options.restart(model);
    } catch (err) {
      const delayMs = restartDelayMs(backoff, attempt);
      logger.error({ err, model: label, restartInMs: delayMs }, 'inference process restart failed');
      if (!retired) scheduleRestart(delayMs);
      return;
    }
    if (retired) {
      await proc.close();
      return;
    }
    logger.info({ model: label, pid: proc.pid }, 'inference process restarted');
    adopt(proc);
    options.onUp(slot);
  };

  let retiring: Promise<void> | undefined;
  const slot: ModelSlot = {
    model,
    process: () => current,
    get retired() {
      return retired;
    },
    retire() {
      retiring ??= (async () => {
        retired = true;
        clearTimeout(timer);
        const proc = current;
        current = undefined;
        await proc?.close();
        // A restart already forking closes its process itself once it sees `retired`.
        await starting;
      })();
      return retiring;
    },
  };
  adopt(options.initial);
  return slot;
}
