// The notifier with a recording Notify and vitest's fake clock: what systemd would receive, in
// order. The real systemd-notify over a real datagram socket is exercised by
// tests/src/e2e/agent-package.test.ts.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { HealthCheck } from '../http/http-server.js';
import { createServiceNotifier } from './service-notifier.js';

const logger = pino({ level: 'silent' });
const WATCHDOG_MS = 10_000;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function setup(health: () => HealthCheck[], watchdogMs: number | undefined) {
  const sent: string[][] = [];
  const notifier = createServiceNotifier({
    notify: async (assignments) => {
      sent.push([...assignments]);
    },
    watchdogMs,
    health: async () => health(),
    logger,
    policy: { restartOnChecks: ['outbox'], restartAfterFailingMs: 3 * WATCHDOG_MS },
  });
  return { notifier, sent };
}

describe('createServiceNotifier', () => {
  it('sends READY=1 with the status, then WATCHDOG=1 every half period, STATUS= only when it changes', async () => {
    const { notifier, sent } = setup(() => [{ name: 'outbox', ok: true }], WATCHDOG_MS);
    await notifier.ready('ready: MQTT 1883, HTTP 9464');
    expect(sent).toEqual([['READY=1', 'STATUS=ready: MQTT 1883, HTTP 9464']]);
    await vi.advanceTimersByTimeAsync(WATCHDOG_MS / 2);
    await vi.advanceTimersByTimeAsync(WATCHDOG_MS / 2);
    expect(sent.slice(1)).toEqual([['WATCHDOG=1', 'STATUS=healthy'], ['WATCHDOG=1']]);
    notifier.close();
  });

  it('stops feeding once the outbox has failed longer than the policy allows, and feeds again when it recovers', async () => {
    let outboxOk = false;
    const { notifier, sent } = setup(() => [{ name: 'outbox', ok: outboxOk, detail: 'the last commit failed' }], WATCHDOG_MS);
    await notifier.ready('ready');
    // Ticks at 5, 10, ..., 40 s: failing since the first, overdue once more than 30 s of it.
    await vi.advanceTimersByTimeAsync(8 * (WATCHDOG_MS / 2));
    const watchdog = sent.slice(1).map((a) => a.includes('WATCHDOG=1'));
    expect(watchdog).toEqual([true, true, true, true, true, true, true, false]);
    expect(sent.at(-1)).toEqual([expect.stringMatching(/^STATUS=watchdog no longer fed \(outbox\)/)]);
    outboxOk = true;
    await vi.advanceTimersByTimeAsync(WATCHDOG_MS / 2);
    expect(sent.at(-1)).toEqual(['WATCHDOG=1', 'STATUS=healthy']);
    notifier.close();
  });

  it('without a watchdog period, only READY=1; close sends STOPPING=1 and ends the ticks', async () => {
    const health = vi.fn(() => [{ name: 'outbox', ok: true }]);
    const { notifier, sent } = setup(health, undefined);
    await notifier.ready('ready');
    await vi.advanceTimersByTimeAsync(10 * WATCHDOG_MS);
    expect(health).not.toHaveBeenCalled();
    notifier.close();
    notifier.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([['READY=1', 'STATUS=ready'], ['STOPPING=1']]);

    const fed = setup(() => [{ name: 'outbox', ok: true }], WATCHDOG_MS);
    await fed.notifier.ready('ready');
    fed.notifier.close();
    await vi.advanceTimersByTimeAsync(10 * WATCHDOG_MS);
    expect(fed.sent).toEqual([['READY=1', 'STATUS=ready'], ['STOPPING=1']]);
  });

  it('a failing systemd-notify is logged, never thrown', async () => {
    const notifier = createServiceNotifier({
      notify: () => Promise.reject(new Error('no socket')),
      watchdogMs: WATCHDOG_MS,
      health: async () => [],
      logger,
    });
    await expect(notifier.ready('ready')).resolves.toBeUndefined();
    await vi.advanceTimersByTimeAsync(WATCHDOG_MS);
    notifier.close();
  });
});
