import { describe, expect, it } from 'vitest';
import { DEFAULT_CLOCK_FAIL_MS, DEFAULT_CLOCK_WARN_MS, judgeClockSkew, leastSkewMs, measureClockSkew } from './clock-check.js';

const TEN_MINUTES_MS = 10 * 60_000;

describe('measureClockSkew', () => {
  it("is the agent's clock at the round trip's midpoint minus the reference's answer, known to within half the round trip", () => {
    // Sent at 1000 by the agent's clock, 40 ms round trip, the reference stamped 1020: in step.
    expect(measureClockSkew(1_000, 40, 1_020)).toEqual({ skewMs: 0, uncertaintyMs: 20 });
    // The agent 10 minutes ahead / behind.
    expect(measureClockSkew(1_000 + TEN_MINUTES_MS, 40, 1_020).skewMs).toBe(TEN_MINUTES_MS);
    expect(measureClockSkew(1_000 - TEN_MINUTES_MS, 40, 1_020).skewMs).toBe(-TEN_MINUTES_MS);
  });
});

describe('judgeClockSkew', () => {
  it('never blames network delay on the clock: the least skew the measurement allows is judged', () => {
    // 3 s apart as measured, but a 4 s round trip: the clocks may be in step.
    const slow = measureClockSkew(0, 4_000, -1_000);
    expect(slow).toEqual({ skewMs: 3_000, uncertaintyMs: 2_000 });
    expect(leastSkewMs(slow)).toBe(1_000);
    expect(judgeClockSkew(slow)).toBe('ok');
    expect(judgeClockSkew({ skewMs: 500, uncertaintyMs: 2_000 })).toBe('ok');
    expect(leastSkewMs({ skewMs: -500, uncertaintyMs: 2_000 })).toBe(0);
  });

  it('warns from DEFAULT_CLOCK_WARN_MS, fails from DEFAULT_CLOCK_FAIL_MS, ahead or behind', () => {
    expect(judgeClockSkew({ skewMs: DEFAULT_CLOCK_WARN_MS - 1, uncertaintyMs: 0 })).toBe('ok');
    expect(judgeClockSkew({ skewMs: DEFAULT_CLOCK_WARN_MS, uncertaintyMs: 0 })).toBe('warn');
    expect(judgeClockSkew({ skewMs: -DEFAULT_CLOCK_WARN_MS, uncertaintyMs: 0 })).toBe('warn');
    expect(judgeClockSkew({ skewMs: DEFAULT_CLOCK_FAIL_MS - 1, uncertaintyMs: 0 })).toBe('warn');
    expect(judgeClockSkew({ skewMs: DEFAULT_CLOCK_FAIL_MS, uncertaintyMs: 0 })).toBe('fail');
    expect(judgeClockSkew({ skewMs: -TEN_MINUTES_MS, uncertaintyMs: 50 })).toBe('fail');
    // Thresholds can be given.
    expect(judgeClockSkew({ skewMs: 150, uncertaintyMs: 0 }, 100, 200)).toBe('warn');
  });
});
