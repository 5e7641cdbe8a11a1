// The restart loop of consume and tail, with fake runs: no server. The real consumers are
// exercised by tests/src/integration/control-plane.test.ts (server restarts, deleted consumers).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { runUntilStopped, type RestartLoopOptions, type Stoppable } from './restart-loop.js';

/** A pause no test may wait out: a loop that sleeps through it fails on the test timeout. */
const LONG_PAUSE_MS = 600_000;

function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, messages: () => lines.map((l) => l.msg) };
}

/** Resolves when called: the event a test waits for. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => (fire = resolve));
  return { promise, fire };
}

/** An iterator whose run lasts until stop(). */
function fakeIterator(): Stoppable & { ended: Promise<void>; stops: number } {
  const ended = signal();
  const it = {
    stops: 0,
    ended: ended.promise,
    stop() {
      it.stops++;
      ended.fire();
    },
  };
  return it;
}

function options(overrides: Partial<RestartLoopOptions>): RestartLoopOptions {
  return {
    runOnce: async () => undefined,
    logger: pino({ level: 'silent' }),
    failedMessage: 'consumer stopped; starting again',
    isClosed: () => false,
    pauseMs: LONG_PAUSE_MS,
    ...overrides,
  };
}

describe('runUntilStopped', () => {
  it('ends the pause between runs at once on stop(), without another run or a re-declaration', async () => {
    const inPause = signal();
    let runs = 0;
    let redeclared = 0;
    const loop = runUntilStopped(
      options({
        runOnce: async () => void runs++,
        onRunEnded: inPause.fire,
        redeclare: async () => void redeclared++,
      }),
    );
    await inPause.promise;
    await loop.stop();
    expect({ runs, redeclared }).toEqual({ runs: 1, redeclared: 0 });
  });

  it('runs again after the pause, re-declaring first, and logs a run that failed', async () => {
    const { logger, messages } = capturingLogger();
    const thirdRun = signal();
    const events: string[] = [];
    const loop = runUntilStopped(
      options({
        logger,
        pauseMs: 1,
        runOnce: async () => {
          events.push('run');
          if (events.filter((e) => e === 'run').length === 3) thirdRun.fire();
          throw new Error('iterator failed');
        },
        redeclare: async () => {
          events.push('redeclare');
          throw new Error('no JetStream');
        },
      }),
    );
    await thirdRun.promise;
    await loop.stop();
    expect(events.slice(0, 5)).toEqual(['run', 'redeclare', 'run', 'redeclare', 'run']);
    expect(messages().filter((m) => m === 'consumer stopped; starting again').length).toBeGreaterThanOrEqual(2);
    expect(messages()).toContain('re-declaring the consumer failed');
  });

  it('stops the attached iterator of the run in progress, and logs no failure for it', async () => {
    const { logger, messages } = capturingLogger();
    const attached = signal();
    const iterator = fakeIterator();
    const loop = runUntilStopped(
      options({
        logger,
        runOnce: async (attach) => {
          expect(attach(iterator)).toBe(true);
          attached.fire();
          await iterator.ended;
          throw new Error('iterator stopped');
        },
      }),
    );
    await attached.promise;
    await loop.stop();
    expect(iterator.stops).toBe(1);
    expect(messages()).not.toContain('consumer stopped; starting again');
  });

  it('refuses an iterator attached after stop(), stopping it', async () => {
    const started = signal();
    const release = signal();
    const iterator = fakeIterator();
    let accepted: boolean | undefined;
    const loop = runUntilStopped(
      options({
        runOnce: async (attach) => {
          started.fire();
          await release.promise;
          accepted = attach(iterator);
        },
      }),
    );
    await started.promise;
    const stopping = loop.stop();
    release.fire();
    await stopping;
    expect(accepted).toBe(false);
    expect(iterator.stops).toBe(1);
  });

  it('ends by itself when the connection is closed for good', async () => {
    const closedChecked = signal();
    let runs = 0;
    let ended = 0;
    const loop = runUntilStopped(
      options({
        isClosed: () => {
          closedChecked.fire();
          return true;
        },
        runOnce: async () => void runs++,
        onRunEnded: () => void ended++,
      }),
    );
    // The loop decides right after the check: a loop that ignored it would be in its pause now.
    await closedChecked.promise;
    await loop.stop();
    expect({ runs, ended }).toEqual({ runs: 1, ended: 0 });
  });
});
