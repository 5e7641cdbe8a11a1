import { describe, expect, it } from 'vitest';
import { decideRestart, DEFAULT_RESTART_LIMIT, formatRestartLimit } from './restart-policy.js';

describe("the demo's restart limit", () => {
  it('restarts up to the burst within the interval, then gives up', () => {
    let history: number[] = [];
    const limit = { burst: 3, intervalMs: 10_000 };
    for (const atMs of [1_000, 2_000, 3_000]) {
      const decision = decideRestart(history, atMs, limit);
      expect(decision.type).toBe('restart');
      if (decision.type === 'restart') history = decision.historyMs;
    }
    expect(history).toEqual([1_000, 2_000, 3_000]);
    expect(decideRestart(history, 4_000, limit)).toEqual({ type: 'give-up', recent: 3 });
  });

  it('forgets restarts older than the interval, so a crash now and then is always restarted', () => {
    const limit = { burst: 2, intervalMs: 10_000 };
    // Restarts at 0 and 5 s: at 9.999 s both count, at 10 s the first has left the window.
    expect(decideRestart([0, 5_000], 9_999, limit)).toEqual({ type: 'give-up', recent: 2 });
    expect(decideRestart([0, 5_000], 10_000, limit)).toEqual({ type: 'restart', historyMs: [5_000, 10_000] });
    let history: number[] = [];
    for (let i = 0; i < 50; i++) {
      const decision = decideRestart(history, i * 6_000, limit);
      expect(decision.type, `crash ${i}`).toBe('restart');
      if (decision.type === 'restart') history = decision.historyMs;
    }
    expect(history.length).toBeLessThanOrEqual(limit.burst);
  });

  it('defaults to 5 restarts in 60 s', () => {
    expect(DEFAULT_RESTART_LIMIT).toEqual({ burst: 5, intervalMs: 60_000 });
    const five = [1, 2, 3, 4, 5].map((s) => s * 1_000);
    expect(decideRestart(five.slice(0, 4), 6_000).type).toBe('restart');
    expect(decideRestart(five, 6_000)).toEqual({ type: 'give-up', recent: 5 });
    expect(formatRestartLimit(DEFAULT_RESTART_LIMIT)).toBe('5 restarts in 60 s');
  });
});
