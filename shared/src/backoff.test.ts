import { describe, expect, it } from 'vitest';
import { backoffDelayMs, createBackoff, sleep } from './backoff.js';

const top = (): number => 0.999999;
const bottom = (): number => 0;

describe('backoffDelayMs', () => {
  const policy = { initialMs: 100, maxMs: 1_000 };

  it('grows from the initial delay to the cap, doubling (no jitter)', () => {
    expect([0, 1, 2, 3, 4, 10, 1_000].map((n) => backoffDelayMs({ ...policy, jitter: 'none' }, n))).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
  });

  it('equal jitter stays within half and all of the ceiling, full jitter within none and all of it', () => {
    for (const n of [0, 2, 9]) {
      const ceiling = backoffDelayMs({ ...policy, jitter: 'none' }, n);
      expect(backoffDelayMs({ ...policy, jitter: 'equal' }, n, bottom)).toBe(ceiling / 2);
      expect(backoffDelayMs({ ...policy, jitter: 'equal' }, n, top)).toBeCloseTo(ceiling, 1);
      expect(backoffDelayMs({ ...policy, jitter: 'full' }, n, bottom)).toBe(0);
      expect(backoffDelayMs({ ...policy, jitter: 'full' }, n, top)).toBeCloseTo(ceiling, 1);
    }
  });

  it('decorrelated jitter draws between the initial delay and three times the previous one, capped', () => {
    expect(backoffDelayMs({ ...policy, jitter: 'decorrelated' }, 0, bottom)).toBe(100);
    expect(backoffDelayMs({ ...policy, jitter: 'decorrelated' }, 1, top, 200)).toBeCloseTo(600, 2);
    expect(backoffDelayMs({ ...policy, jitter: 'decorrelated' }, 5, top, 900)).toBe(1_000);
  });

  it('a seeded sequence of delays never leaves [0, maxMs], whatever the jitter', () => {
    let state = 42;
    const random = (): number => ((state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (const jitter of ['none', 'equal', 'full', 'decorrelated'] as const) {
      const backoff = createBackoff({ ...policy, jitter }, random);
      for (let i = 0; i < 200; i++) {
        const delay = backoff.next();
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(policy.maxMs);
      }
      expect(backoff.attempts()).toBe(200);
      backoff.reset();
      expect(backoff.attempts()).toBe(0);
    }
  });
});

describe('sleep', () => {
  it('resolves false when the time runs out and true when woken early', async () => {
    expect(await sleep(1)).toBe(false);
    const wake = new AbortController();
    const sleeping = sleep(60_000, wake.signal);
    wake.abort();
    expect(await sleeping).toBe(true);
    expect(await sleep(60_000, wake.signal)).toBe(true); // already woken
  });
});
