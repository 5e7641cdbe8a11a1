import { describe, expect, it } from 'vitest';
import { createRng } from '../random/prng.js';
import { createSeqRanges } from './seq-ranges.js';

describe('acknowledged seq ranges', () => {
  it('keeps in-order seqs as one range and holes as separate ranges', () => {
    const set = createSeqRanges();
    for (const seq of [0, 1, 2, 3, 5, 6, 9]) expect(set.add(seq)).toBe(true);
    expect(set.toRanges()).toEqual([
      [0, 3],
      [5, 6],
      [9, 9],
    ]);
    expect(set.count()).toBe(7);
  });

  it('merges ranges a late seq joins, and counts a repeated seq once', () => {
    const set = createSeqRanges();
    for (const seq of [10, 12, 8, 11, 9]) set.add(seq);
    expect(set.toRanges()).toEqual([[8, 12]]);
    expect(set.add(10)).toBe(false);
    expect(set.add(8)).toBe(false);
    expect(set.count()).toBe(5);
  });

  it('agrees with a plain set for seqs in random order', () => {
    const rng = createRng('seq-ranges');
    const set = createSeqRanges();
    const plain = new Set<number>();
    for (let i = 0; i < 5_000; i++) {
      const seq = Math.floor(rng.next() * 3_000);
      expect(set.add(seq)).toBe(!plain.has(seq));
      plain.add(seq);
    }
    const expanded = set.toRanges().flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, k) => first + k));
    expect(expanded).toEqual([...plain].sort((a, b) => a - b));
    expect(set.count()).toBe(plain.size);
    // Disjoint and not adjacent: two touching ranges would be one.
    const ranges = set.toRanges();
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThan(ranges[i - 1]![1] + 1);
  });

  it('hands out copies', () => {
    const set = createSeqRanges();
    set.add(1);
    set.toRanges()[0]![1] = 99;
    expect(set.toRanges()).toEqual([[1, 1]]);
  });
});
