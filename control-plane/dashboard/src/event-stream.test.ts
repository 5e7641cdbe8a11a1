import { describe, expect, it } from 'vitest';
import { createReconnectPolicy, reconnectDelayMs } from './event-stream.js';

// random() = 1 takes the top of the jitter range, so the delays are exact.
const OPTIONS = { minMs: 500, maxMs: 15_000, stableMs: 30_000, random: () => 1 };

describe('reconnectDelayMs', () => {
  it('doubles from the minimum up to the maximum, jittered between half and all of it', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((a) => reconnectDelayMs(a, 500, 15_000, () => 1))).toEqual([500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
    expect(reconnectDelayMs(3, 500, 15_000, () => 0)).toBe(2_000);
  });
});

describe('createReconnectPolicy', () => {
  it('keeps backing off while the server accepts the stream and hangs up at once', () => {
    const policy = createReconnectPolicy(OPTIONS);
    let nowMs = 0;
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      policy.opened(nowMs);
      nowMs += 20;
      const delayMs = policy.nextDelayMs(nowMs);
      delays.push(delayMs);
      nowMs += delayMs;
    }
    expect(delays).toEqual([500, 1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
  });

  it('backs off while the stream cannot open, and starts over after a stream that stayed up', () => {
    const policy = createReconnectPolicy(OPTIONS);
    expect([policy.nextDelayMs(0), policy.nextDelayMs(1_000), policy.nextDelayMs(3_000)]).toEqual([500, 1_000, 2_000]);
    policy.opened(10_000);
    expect(policy.nextDelayMs(10_000 + OPTIONS.stableMs)).toBe(500);
    // A failed attempt after that one continues from there, it does not start over again.
    expect(policy.nextDelayMs(50_000)).toBe(1_000);
  });

  it("waits at least the server's retry", () => {
    const policy = createReconnectPolicy(OPTIONS);
    expect(policy.nextDelayMs(0, 7_000)).toBe(7_000);
    expect(policy.nextDelayMs(0, 10)).toBe(1_000);
  });
});
