import { describe, expect, it } from 'vitest';
import type { ChildExit, DemoProcess } from './processes.js';
import { superviseProcess, type SupervisorEvent } from './supervisor.js';

/** A stand-in for a child process: exits when the test says, or when stopped. */
interface FakeProcess extends DemoProcess {
  die(exit: ChildExit): void;
  stops: number;
}

function fakeProcess(pid: number): FakeProcess {
  let resolveExit: (exit: ChildExit) => void = () => {};
  const exited = new Promise<ChildExit>((resolve) => (resolveExit = resolve));
  let running = true;
  const end = (exit: ChildExit): void => {
    if (!running) return;
    running = false;
    resolveExit(exit);
  };
  const fake: FakeProcess = {
    name: 'agent demo-agent-1',
    pid,
    exited,
    stops: 0,
    isRunning: () => running,
    tail: () => `output of ${pid}`,
    stop: async () => {
      fake.stops += 1;
      end({ code: 0, signal: null });
      return exited;
    },
    kill: () => end({ code: null, signal: 'SIGKILL' }),
    die: end,
  };
  return fake;
}

/** Resolves with the next event of `type` the supervisor reports. */
function nextEvent<T extends SupervisorEvent['type']>(events: SupervisorEvent[], waiters: (() => void)[], type: T): Promise<Extract<SupervisorEvent, { type: T }>> {
  const seen = events.length;
  return new Promise((resolve) => {
    const check = (): void => {
      const found = events.slice(seen).find((e) => e.type === type);
      if (found !== undefined) resolve(found as Extract<SupervisorEvent, { type: T }>);
      else waiters.push(check);
    };
    check();
  });
}

function harness() {
  const events: SupervisorEvent[] = [];
  const waiters: (() => void)[] = [];
  const onEvent = (event: SupervisorEvent): void => {
    events.push(event);
    for (const waiter of waiters.splice(0)) waiter();
  };
  return { events, onEvent, next: <T extends SupervisorEvent['type']>(type: T) => nextEvent(events, waiters, type) };
}

const SIGKILLED: ChildExit = { code: null, signal: 'SIGKILL' };

describe('demo process supervisor', () => {
  it('restarts a process that died on its own and reports how it died and how often', async () => {
    const h = harness();
    const first = fakeProcess(100);
    const second = fakeProcess(101);
    let clock = 1_000;
    const supervised = superviseProcess({
      first,
      restart: async () => {
        clock += 400;
        return second;
      },
      onEvent: h.onEvent,
      restartDelayMs: 0,
      now: () => clock,
    });
    const restarted = h.next('restarted');
    first.die(SIGKILLED);
    expect(await restarted).toEqual({ type: 'restarted', name: 'agent demo-agent-1', exit: SIGKILLED, downMs: 400, restarts: 1, pid: 101 });
    expect(supervised.current()).toBe(second);
    expect(supervised.restarts()).toBe(1);
    await supervised.stop();
    expect(second.stops).toBe(1);
    expect(h.events.map((e) => e.type)).toEqual(['restarted']);
  });

  it('gives up once the restart limit is reached, naming how the process ended last', async () => {
    const h = harness();
    const first = fakeProcess(1);
    let pid = 1;
    const supervised = superviseProcess({
      first,
      // Each new start dies at once.
      restart: async () => {
        const p = fakeProcess(++pid);
        queueMicrotask(() => p.die({ code: 3, signal: null }));
        return p;
      },
      onEvent: h.onEvent,
      limit: { burst: 3, intervalMs: 60_000 },
      restartDelayMs: 0,
    });
    const gaveUp = h.next('gave-up');
    first.die(SIGKILLED);
    expect(await gaveUp).toMatchObject({ type: 'gave-up', why: 'exit code 3', recent: 3, restarts: 3, limit: { burst: 3 }, tail: 'output of 4' });
    expect(h.events.map((e) => e.type)).toEqual(['restarted', 'restarted', 'restarted', 'gave-up']);
    await supervised.stop();
  });

  it('tries again after a failed restart, and a limit reached by failed restarts says why', async () => {
    const h = harness();
    const first = fakeProcess(1);
    const supervised = superviseProcess({
      first,
      restart: async () => {
        throw new Error('agent demo-agent-1 exited (exit code 1) while starting; its last output:\nEADDRINUSE');
      },
      onEvent: h.onEvent,
      limit: { burst: 2, intervalMs: 60_000 },
      restartDelayMs: 0,
    });
    const gaveUp = h.next('gave-up');
    first.die(SIGKILLED);
    const event = await gaveUp;
    expect(event.why).toBe('its restart failed: agent demo-agent-1 exited (exit code 1) while starting; its last output:');
    expect(event.tail).toContain('EADDRINUSE');
    expect(event.restarts).toBe(0);
    expect(h.events.map((e) => e.type)).toEqual(['restart-failed', 'restart-failed', 'gave-up']);
    await supervised.stop();
  });

  it('never restarts once retired: an exit during the shutdown is the shutdown', async () => {
    const h = harness();
    const first = fakeProcess(1);
    let restartCalls = 0;
    const supervised = superviseProcess({
      first,
      restart: async () => {
        restartCalls += 1;
        return fakeProcess(2);
      },
      onEvent: h.onEvent,
      restartDelayMs: 0,
    });
    await supervised.stop();
    first.die(SIGKILLED);
    await supervised.stop();
    expect(restartCalls).toBe(0);
    expect(h.events).toEqual([]);
  });

  it('abandons a restart under way when the shutdown begins, and stops what that restart started', async () => {
    const h = harness();
    const first = fakeProcess(1);
    const late = fakeProcess(2);
    let started: () => void = () => {};
    const restarting = new Promise<void>((resolve) => (started = resolve));
    let release: () => void = () => {};
    const supervised = superviseProcess({
      first,
      // A start that ignores the abort and becomes ready only after the shutdown began.
      restart: async () => {
        started();
        await new Promise<void>((resolve) => (release = resolve));
        return late;
      },
      onEvent: h.onEvent,
      restartDelayMs: 0,
    });
    first.die(SIGKILLED);
    await restarting;
    const stopped = supervised.stop();
    release();
    await stopped;
    expect(late.stops).toBe(1);
    expect(late.isRunning()).toBe(false);
    expect(supervised.current()).toBe(first);
    expect(h.events).toEqual([]);
  });

  it('passes the shutdown to the restart as an aborted signal', async () => {
    const h = harness();
    const first = fakeProcess(1);
    let signalSeen: AbortSignal | undefined;
    const supervised = superviseProcess({
      first,
      restart: (signal) => {
        signalSeen = signal;
        return new Promise<DemoProcess>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
      },
      onEvent: h.onEvent,
      restartDelayMs: 0,
    });
    first.die(SIGKILLED);
    await new Promise<void>((resolve) => {
      const poll = (): void => (signalSeen === undefined ? void setImmediate(poll) : resolve());
      poll();
    });
    await supervised.stop();
    expect(signalSeen?.aborted).toBe(true);
    expect(h.events).toEqual([]);
  });

  it('reports the end of a process that is not restarted', async () => {
    const h = harness();
    const first = fakeProcess(7);
    const supervised = superviseProcess({ first, restart: undefined, onEvent: h.onEvent });
    const ended = h.next('ended');
    first.die({ code: 0, signal: null });
    expect(await ended).toEqual({ type: 'ended', name: 'agent demo-agent-1', exit: { code: 0, signal: null }, tail: 'output of 7' });
    await supervised.stop();
  });
});
