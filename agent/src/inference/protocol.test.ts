import { describe, expect, it } from 'vitest';
import { checkSelfTest, isChildMessage, isParentMessage } from './protocol.js';

describe('self-test check', () => {
  it('passes within tolerance and reports the largest error', () => {
    expect(checkSelfTest(Float32Array.of(1, 2.00005), [1, 2], 1e-4)).toEqual({ ok: true, maxError: expect.closeTo(0.00005, 6) });
  });

  it('names the first vector outside the tolerance', () => {
    expect(checkSelfTest([1, 2.5, 9], [1, 2, 3], 1e-4)).toEqual({ ok: false, index: 1, score: 2.5, expected: 2 });
  });

  it('fails on NaN and on a missing score', () => {
    expect(checkSelfTest([Number.NaN], [0], 1)).toMatchObject({ ok: false, index: 0 });
    expect(checkSelfTest([1], [1, 2], 1)).toMatchObject({ ok: false, index: 1 });
  });
});

describe('message guards', () => {
  it('accepts only the protocol message types', () => {
    expect(isChildMessage({ type: 'scored', batchId: 1, scores: new Float32Array(1), rssBytes: 1 })).toBe(true);
    expect(isChildMessage({ type: 'load' })).toBe(false);
    expect(isChildMessage(null)).toBe(false);
    expect(isParentMessage({ type: 'score', batchId: 1, rows: new Float32Array(1), count: 1 })).toBe(true);
    expect(isParentMessage({ type: 'scored' })).toBe(false);
    expect(isParentMessage('load')).toBe(false);
  });
});
