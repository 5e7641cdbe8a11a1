import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntervalSet, type Range } from './interval-set.js';

const DOMAIN = 120;

/** Ranges inside [1, DOMAIN], mostly short, some wide, as an agent's batches and resends are. */
const rangeArb: fc.Arbitrary<Range> = fc
  .tuple(fc.integer({ min: 1, max: DOMAIN }), fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 40 })))
  .map(([first, width]) => [first, Math.min(DOMAIN, first + width)] as const);

function naive(ranges: readonly Range[]): Set<number> {
  const set = new Set<number>();
  for (const [first, last] of ranges) for (let v = first; v <= last; v++) set.add(v);
  return set;
}

function naiveGaps(model: Set<number>, from: number): number[] {
  const max = Math.max(...model);
  const out: number[] = [];
  for (let v = from; v <= max; v++) if (!model.has(v)) out.push(v);
  return out;
}

function expand(ranges: readonly Range[]): number[] {
  return ranges.flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, k) => first + k));
}

describe('IntervalSet against a plain Set', () => {
  it('add returns the number of new members; contains and count agree', () => {
    fc.assert(
      fc.property(fc.array(rangeArb, { maxLength: 40 }), (ranges) => {
        const set = new IntervalSet();
        const model = new Set<number>();
        for (const [first, last] of ranges) {
          const before = model.size;
          for (let v = first; v <= last; v++) model.add(v);
          expect(set.add(first, last)).toBe(model.size - before);
        }
        expect(set.count()).toBe(model.size);
        for (let v = 0; v <= DOMAIN + 1; v++) expect(set.contains(v)).toBe(model.has(v));
        expect(set.min()).toBe(model.size === 0 ? undefined : Math.min(...model));
        expect(set.max()).toBe(model.size === 0 ? undefined : Math.max(...model));
      }),
    );
  });

  it('keeps ranges sorted, disjoint and non-adjacent', () => {
    fc.assert(
      fc.property(fc.array(rangeArb, { maxLength: 40 }), (ranges) => {
        const json = IntervalSet.from(ranges).toJSON();
        for (const [first, last] of json) expect(first).toBeLessThanOrEqual(last);
        for (let k = 1; k < json.length; k++) expect(json[k]![0]).toBeGreaterThan(json[k - 1]![1] + 1);
        expect(new Set(expand(json))).toEqual(naive(ranges));
      }),
    );
  });

  it('gaps and countGaps list exactly the missing values between from and the maximum', () => {
    fc.assert(
      fc.property(fc.array(rangeArb, { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: DOMAIN + 2 }), (ranges, from) => {
        const set = IntervalSet.from(ranges);
        const expected = naiveGaps(naive(ranges), from);
        expect(expand(set.gaps(from))).toEqual(expected);
        expect(set.countGaps(from)).toBe(expected.length);
      }),
    );
  });

  it('countIn, countIntersection and union match set algebra', () => {
    fc.assert(
      fc.property(fc.array(rangeArb, { maxLength: 20 }), fc.array(rangeArb, { maxLength: 20 }), rangeArb, (a, b, [first, last]) => {
        const sa = IntervalSet.from(a);
        const sb = IntervalSet.from(b);
        const ma = naive(a);
        const mb = naive(b);
        expect(sa.countIntersection(sb)).toBe([...ma].filter((v) => mb.has(v)).length);
        expect(sa.countIn(first, last)).toBe([...ma].filter((v) => v >= first && v <= last).length);
        const union = sa.union(sb);
        expect(new Set(expand(union.toJSON()))).toEqual(new Set([...ma, ...mb]));
        // union copies: the operands are unchanged
        expect(new Set(expand(sa.toJSON()))).toEqual(ma);
      }),
    );
  });

  it('fillLowestGap merges the two lowest ranges and reports the hole it filled', () => {
    fc.assert(
      fc.property(fc.array(rangeArb, { maxLength: 30 }), (ranges) => {
        const set = IntervalSet.from(ranges);
        const holes = set.gaps();
        const before = set.count();
        const filled = set.fillLowestGap();
        if (holes.length === 0) {
          expect(filled).toBe(0);
        } else {
          const [first, last] = holes[0]!;
          expect(filled).toBe(last - first + 1);
          expect(set.count()).toBe(before + filled);
          expect(set.gaps()).toEqual(holes.slice(1));
        }
      }),
    );
  });

  it('appending in seq order keeps a single range', () => {
    const set = new IntervalSet();
    for (let first = 1; first <= 100_000; first += 500) expect(set.add(first, first + 499)).toBe(500);
    expect(set.toJSON()).toEqual([[1, 100_000]]);
    expect(set.add(7, 9)).toBe(0);
  });

  it('refuses a reversed or non-integer range', () => {
    expect(() => new IntervalSet().add(5, 4)).toThrow(RangeError);
    expect(() => new IntervalSet().add(1.5)).toThrow(RangeError);
  });
});
