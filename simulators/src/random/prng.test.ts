import { describe, expect, it } from 'vitest';
import { createRng, selectIndices } from './prng.js';

describe('seeded randomness', () => {
  it('repeats a stream for the same name and differs for another', () => {
    const draw = (...parts: string[]) => {
      const rng = createRng(...parts);
      return Array.from({ length: 5 }, () => rng.next());
    };
    expect(draw('1', 'signal', 'dev-0001')).toEqual(draw('1', 'signal', 'dev-0001'));
    expect(draw('1', 'signal', 'dev-0001')).not.toEqual(draw('1', 'signal', 'dev-0002'));
    expect(draw('1', 'signal', 'dev-0001')).not.toEqual(draw('2', 'signal', 'dev-0001'));
  });

  it('has roughly the moments it promises', () => {
    const rng = createRng('moments');
    const n = 20_000;
    const uniform = Array.from({ length: n }, () => rng.next());
    const normal = Array.from({ length: n }, () => rng.normal());
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.min(...uniform)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...uniform)).toBeLessThan(1);
    expect(mean(uniform)).toBeCloseTo(0.5, 1);
    expect(mean(normal)).toBeCloseTo(0, 1);
    expect(mean(normal.map((x) => x * x))).toBeCloseTo(1, 1);
  });

  it('selects exactly round(ratio x n) indices, at least one for any ratio above 0', () => {
    expect(selectIndices(10, 0.3, createRng('s')).size).toBe(3);
    expect(selectIndices(10, 0.01, createRng('s')).size).toBe(1);
    expect(selectIndices(10, 0, createRng('s')).size).toBe(0);
    expect([...selectIndices(10, 0.5, createRng('s'))]).toEqual([...selectIndices(10, 0.5, createRng('s'))]);
  });
});
