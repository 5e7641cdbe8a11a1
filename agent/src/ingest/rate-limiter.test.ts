import { describe, expect, it } from 'vitest';
import { createRateLimiter } from './rate-limiter.js';

describe('createRateLimiter', () => {
  it('allows a burst, then refuses until tokens refill at the rate', () => {
    const limiter = createRateLimiter(10, 5);
    const t0 = 1_000;
    const taken = Array.from({ length: 8 }, () => limiter.tryTake('a', t0));
    expect(taken.filter(Boolean)).toHaveLength(5);
    expect(limiter.tryTake('a', t0 + 50)).toBe(false); // half a token
    expect(limiter.tryTake('a', t0 + 100)).toBe(true); // one token after 100 ms at 10/s
  });

  it('keeps keys apart and forgets them', () => {
    const limiter = createRateLimiter(1, 1);
    expect(limiter.tryTake('a', 0)).toBe(true);
    expect(limiter.tryTake('a', 0)).toBe(false);
    expect(limiter.tryTake('b', 0)).toBe(true);
    limiter.forget('a');
    expect(limiter.tryTake('a', 0)).toBe(true);
  });

  it('rate 0 turns limiting off', () => {
    const limiter = createRateLimiter(0);
    expect(Array.from({ length: 1000 }, () => limiter.tryTake('a', 0)).every(Boolean)).toBe(true);
  });
});
