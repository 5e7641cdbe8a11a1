import { describe, expect, it } from 'vitest';
import { createRateLimiter, MIN_SWEEP_KEYS } from './rate-limiter.js';

describe('createRateLimiter', () => {
  it('allows a burst, then refuses until tokens refill at the rate', () => {
    const limiter = createRateLimiter(10, 5);
    const t0 = 1_000;
    const taken = Array.from({ length: 8 }, () => limiter.tryTake('a', t0));
    expect(taken.filter(Boolean)).toHaveLength(5);
    expect(limiter.tryTake('a', t0 + 50)).toBe(false); // half a token
    expect(limiter.tryTake('a', t0 + 100)).toBe(true); // one token after 100 ms at 10/s
  });

  it('says how long to wait for the next token, and a wait of that long finds it', () => {
    const limiter = createRateLimiter(4, 1);
    expect(limiter.takeOrWait('a', 0)).toBe(0);
    const waitMs = limiter.takeOrWait('a', 0);
    expect(waitMs).toBe(250);
    expect(limiter.takeOrWait('a', 100)).toBe(150); // waiting took nothing
    expect(limiter.takeOrWait('a', waitMs)).toBe(0);
    // Paced by its waits, a key gets exactly its rate: 4 tokens per second after the burst.
    let now = 1_000;
    let taken = 0;
    limiter.takeOrWait('b', now);
    while (now <= 11_000) {
      const wait = limiter.takeOrWait('b', now);
      if (wait === 0) taken++;
      else now += wait;
    }
    expect(taken).toBe(40);
  });

  it('keeps keys apart', () => {
    const limiter = createRateLimiter(1, 1);
    expect(limiter.tryTake('a', 0)).toBe(true);
    expect(limiter.tryTake('a', 0)).toBe(false);
    expect(limiter.tryTake('b', 0)).toBe(true);
  });

  it('drops the state of keys whose bucket has refilled, so fresh ClientIds cannot grow it without bound', () => {
    const limiter = createRateLimiter(10, 10);
    let now = 0;
    for (let i = 0; i < 50_000; i++) {
      limiter.tryTake(`anonymous-${i}`, now);
      now += 1; // each key is full again a second after its one message
    }
    expect(limiter.size()).toBeLessThanOrEqual(2 * MIN_SWEEP_KEYS);
    // A key still short of tokens is kept: sweeping never hands out a fresh burst.
    for (let i = 0; i < 10; i++) limiter.tryTake('busy', now);
    for (let i = 0; i < 5_000; i++) limiter.tryTake(`late-${i}`, now + i * 0.01);
    expect(limiter.tryTake('busy', now + 50)).toBe(false);
  });

  it('rate 0 turns limiting off', () => {
    const limiter = createRateLimiter(0);
    expect(Array.from({ length: 1000 }, () => limiter.tryTake('a', 0)).every(Boolean)).toBe(true);
    expect(limiter.takeOrWait('a', 0)).toBe(0);
  });
});
