import { describe, expect, it } from 'vitest';
import { restartDelayMs } from './model-slot.js';

describe('restart backoff', () => {
  it('doubles per consecutive crash up to the maximum', () => {
    const backoff = { initialDelayMs: 100, maxDelayMs: 1_000 };
    expect([0, 1, 2, 3, 4, 5, 100].map((attempt) => restartDelayMs(backoff, attempt))).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
  });
});
