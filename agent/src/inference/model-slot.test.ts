// The model slot supervises an inference process it is handed; here the processes are fakes
// whose exit the test chooses (a crash, an exit code, a requested close), and time is vitest's
// fake clock (setTimeout and performance.now), so every restart delay is pinned to the ms. The
// real child process is exercised by tests/src/integration/inference.test.ts.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createAgentMetrics } from '../metrics.js';
import { createModelSlot, restartDelayMs, type ModelSlot } from './model-slot.js';
import type { ModelProcess, ModelProcessExit, ScoreOutcome } from './model-process.js';
import type { VerifiedModel } from './model-source.js';

const logger = pino({ level: 'silent' });
const BACKOFF = { initialDelayMs: 100, maxDelayMs: 1_000 };
/** STABLE_AFTER_MAX_DELAYS (3) times maxDelayMs: up this long, a process counts as healthy again. */
const STABLE_MS = 3 * BACKOFF.maxDelayMs;

// The slot reads only the model's ref (for its logs); the bytes never leave the fake.
const model = { ref: { name: 'pca', version: '1.0.0' }, bytes: new Uint8Array(), rowLength: 1 } as unknown as VerifiedModel;

/** A live inference process, as ModelProcess promises: `exited` settles once, whoever ended it. */
class FakeProcess implements ModelProcess {
  readonly model = model;
  readonly pid: number;
  readonly exited: Promise<ModelProcessExit>;
  closes = 0;
  #exit!: (exit: ModelProcessExit) => void;
  #gone = false;

  constructor(pid: number) {
    this.pid = pid;
    this.exited = new Promise((resolve) => (this.#exit = resolve));
  }

  /** Dies unasked: a signal (kill -9, the OOM killer) or an exit code. */
  die(how: { signal: NodeJS.Signals } | { code: number }): void {
    this.#end({ code: 'code' in how ? how.code : null, signal: 'signal' in how ? how.signal : null, requested: false });
  }

  rssBytes(): number {
    return 0;
  }

  score(): Promise<ScoreOutcome> {
    return Promise.resolve({ type: 'process-lost', reason: 'exited' });
  }

  async close(): Promise<void> {
    this.closes++;
    this.#end({ code: 0, signal: null, requested: true });
    await this.exited;
  }

  #end(exit: ModelProcessExit): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#exit(exit);
  }
}

/** Starts fake processes for the slot's restarts; each start can be made to fail or to wait for the test. */
class Starter {
  readonly processes: FakeProcess[] = [new FakeProcess(1)];
  /** performance.now() of each call of `restart`. */
  readonly startedAtMs: number[] = [];
  failNext = 0;
  hold = false;
  #held: (() => void)[] = [];

  restart = async (): Promise<ModelProcess> => {
    this.startedAtMs.push(performance.now());
    if (this.hold) await new Promise<void>((resolve) => this.#held.push(resolve));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('self-test failed');
    }
    const proc = new FakeProcess(this.processes.length + 1);
    this.processes.push(proc);
    return proc;
  };

  release(): void {
    for (const resolve of this.#held.splice(0)) resolve();
  }

  get latest(): FakeProcess {
    return this.processes.at(-1)!;
  }
}

function supervise(starter: Starter) {
  const metrics = createAgentMetrics({ agentId: 'gw-1' });
  const events: string[] = [];
  const slot: ModelSlot = createModelSlot({
    model,
    initial: starter.processes[0]!,
    restart: starter.restart,
    backoff: BACKOFF,
    metrics,
    logger,
    onUp: (s) => events.push(`up ${s.process()?.pid}`),
    onDown: (_s, exit) => events.push(`down ${exit.signal ?? exit.code}`),
  });
  return { slot, metrics, events };
}

async function restartsByReason(metrics: ReturnType<typeof createAgentMetrics>): Promise<Record<string, number>> {
  return Object.fromEntries((await metrics.inferenceRestarts.get()).values.map((v) => [String(v.labels.reason), v.value]));
}

describe('restart backoff', () => {
  it('doubles per consecutive crash up to the maximum', () => {
    const backoff = { initialDelayMs: 100, maxDelayMs: 1_000 };
    expect([0, 1, 2, 3, 4, 5, 100].map((attempt) => restartDelayMs(backoff, attempt))).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
  });
});

describe('createModelSlot', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('restarts a process that died unasked after the backoff delay, doubling per crash up to the maximum', async () => {
    const starter = new Starter();
    const { slot, events } = supervise(starter);
    const delays: number[] = [];
    for (let crash = 0; crash < 6; crash++) {
      const proc = starter.latest;
      expect(slot.process()).toBe(proc);
      const diedAtMs = performance.now();
      proc.die({ signal: 'SIGKILL' });
      const expected = restartDelayMs(BACKOFF, crash);
      await vi.advanceTimersByTimeAsync(expected - 1);
      // Not a millisecond early, and no process to score with meanwhile.
      expect(starter.startedAtMs).toHaveLength(crash);
      expect(slot.process()).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      expect(starter.startedAtMs).toHaveLength(crash + 1);
      delays.push(starter.startedAtMs.at(-1)! - diedAtMs);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(slot.process()).toBe(starter.latest);
    expect(events.slice(0, 4)).toEqual(['down SIGKILL', 'up 2', 'down SIGKILL', 'up 3']);
    await slot.retire();
  });

  it('a failed restart is tried again after the next delay', async () => {
    const starter = new Starter();
    const { slot, events } = supervise(starter);
    starter.failNext = 2;
    const diedAtMs = performance.now();
    starter.processes[0]!.die({ code: 1 });
    await vi.advanceTimersByTimeAsync(100 + 200 + 400);
    // Each failed start counts as an attempt: 100, then 200 and 400 ms after the failures.
    expect(starter.startedAtMs.map((ms) => ms - diedAtMs)).toEqual([100, 300, 700]);
    expect(slot.process()).toBe(starter.latest);
    expect(events).toEqual(['down 1', 'up 2']);
    await slot.retire();
  });

  it('starts again from the initial delay once a process stayed up 3 x maxDelayMs', async () => {
    const starter = new Starter();
    const { slot } = supervise(starter);
    // Three quick crashes: the next delay would be 800 ms.
    for (const delayMs of [100, 200, 400]) {
      starter.latest.die({ signal: 'SIGSEGV' });
      await vi.advanceTimersByTimeAsync(delayMs);
    }
    expect(starter.processes).toHaveLength(4);
    // Up one millisecond short of stable: still counted as crashing in a row.
    await vi.advanceTimersByTimeAsync(STABLE_MS - 1);
    let diedAtMs = performance.now();
    starter.latest.die({ signal: 'SIGSEGV' });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(starter.startedAtMs.at(-1)! - diedAtMs).toBe(800);
    // Up exactly long enough: the next crash restarts after the initial delay again.
    await vi.advanceTimersByTimeAsync(STABLE_MS - (1_000 - 800));
    diedAtMs = performance.now();
    starter.latest.die({ signal: 'SIGSEGV' });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(starter.startedAtMs.at(-1)! - diedAtMs).toBe(100);
    await slot.retire();
  });

  it('restarts nothing once retired: not the process it closed, not a crash waiting for its delay, not a start in progress', async () => {
    const starter = new Starter();
    const { slot, metrics } = supervise(starter);
    // A requested exit is no crash.
    await slot.retire();
    expect(starter.processes[0]!.closes).toBe(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(starter.startedAtMs).toEqual([]);
    expect(slot.retired).toBe(true);
    expect(slot.process()).toBeUndefined();
    expect(await restartsByReason(metrics)).toEqual({});

    // Retired while a crash waits for its restart delay.
    const waiting = new Starter();
    const second = supervise(waiting);
    waiting.processes[0]!.die({ signal: 'SIGKILL' });
    await vi.advanceTimersByTimeAsync(50);
    await second.slot.retire();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(waiting.startedAtMs).toEqual([]);

    // Retired while a restart is forking: the process it yields is closed, not served.
    const forking = new Starter();
    const third = supervise(forking);
    forking.hold = true;
    forking.processes[0]!.die({ signal: 'SIGKILL' });
    await vi.advanceTimersByTimeAsync(100);
    expect(forking.startedAtMs).toHaveLength(1);
    const retiring = third.slot.retire();
    forking.release();
    await retiring;
    expect(forking.processes).toHaveLength(2);
    expect(forking.latest.closes).toBe(1);
    expect(third.slot.process()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(forking.startedAtMs).toHaveLength(1);
    expect(third.events).toEqual(['down SIGKILL']);
  });

  it('counts each unasked exit in outpost_inference_process_restarts_total by how it ended, and no requested one', async () => {
    const starter = new Starter();
    const { slot, metrics } = supervise(starter);
    starter.latest.die({ signal: 'SIGKILL' });
    await vi.advanceTimersByTimeAsync(100);
    starter.latest.die({ code: 1 });
    await vi.advanceTimersByTimeAsync(200);
    starter.latest.die({ signal: 'SIGKILL' });
    await vi.advanceTimersByTimeAsync(400);
    await slot.retire();
    expect(starter.processes).toHaveLength(4);
    expect(starter.latest.closes).toBe(1);
    expect(await restartsByReason(metrics)).toEqual({ SIGKILL: 2, 'exit-1': 1 });
  });
});
