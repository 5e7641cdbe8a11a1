/**
 * A set of integers kept as sorted, disjoint, non-adjacent inclusive ranges `[first, last]`:
 * the received agent seqs of one (agent, epoch, lane) are a handful of ranges however many
 * millions of records arrived, so the whole set fits in one KV value.
 *
 * Stored flat (`[f0, l0, f1, l1, ...]`); appending right after the highest range, the common
 * case for an agent draining its outbox in seq order, is O(1), any other add O(log n + k).
 */

/** An inclusive range `[first, last]`, first <= last. */
export type Range = readonly [first: number, last: number];

function assertRange(first: number, last: number): void {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first > last) {
    throw new RangeError(`invalid range [${first}, ${last}]`);
  }
}

/** How many integers [a1, b1] and [a2, b2] share. */
function overlap(a1: number, b1: number, a2: number, b2: number): number {
  return Math.max(0, Math.min(b1, b2) - Math.max(a1, a2) + 1);
}

export class IntervalSet {
  /** Flat sorted bounds: first of range i at 2i, last at 2i + 1. */
  #bounds: number[] = [];
  #count = 0;

  /** A set holding every integer of `ranges` (any order, overlaps allowed). */
  static from(ranges: Iterable<Range>): IntervalSet {
    const set = new IntervalSet();
    for (const [first, last] of ranges) set.add(first, last);
    return set;
  }

  /** Number of integers in the set. */
  count(): number {
    return this.#count;
  }

  /** Number of disjoint ranges. */
  rangeCount(): number {
    return this.#bounds.length / 2;
  }

  isEmpty(): boolean {
    return this.#bounds.length === 0;
  }

  min(): number | undefined {
    return this.#bounds[0];
  }

  max(): number | undefined {
    return this.#bounds[this.#bounds.length - 1];
  }

  /**
   * Adds every integer of `[first, last]` and returns how many were not in the set before
   * (0: all were duplicates).
   */
  add(first: number, last: number = first): number {
    assertRange(first, last);
    const b = this.#bounds;
    const n = b.length / 2;
    const width = last - first + 1;
    // Fast paths: after the highest range, or extending it.
    if (n === 0 || first > b[2 * n - 1]! + 1) {
      b.push(first, last);
      this.#count += width;
      return width;
    }
    // i: first range that ends at or after first - 1 (could touch or overlap).
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[2 * mid + 1]! < first - 1) lo = mid + 1;
      else hi = mid;
    }
    const i = lo;
    // j: first range that starts after last + 1 (neither touches nor overlaps).
    hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[2 * mid]! <= last + 1) lo = mid + 1;
      else hi = mid;
    }
    const j = lo;
    if (i === j) {
      b.splice(2 * i, 0, first, last);
      this.#count += width;
      return width;
    }
    let present = 0;
    for (let k = i; k < j; k++) present += overlap(b[2 * k]!, b[2 * k + 1]!, first, last);
    const mergedFirst = Math.min(first, b[2 * i]!);
    const mergedLast = Math.max(last, b[2 * (j - 1) + 1]!);
    b.splice(2 * i, 2 * (j - i), mergedFirst, mergedLast);
    const added = width - present;
    this.#count += added;
    return added;
  }

  /** Adds every integer of `other`; returns how many were new. */
  addAll(other: IntervalSet): number {
    let added = 0;
    for (const [first, last] of other.ranges()) added += this.add(first, last);
    return added;
  }

  contains(value: number): boolean {
    const b = this.#bounds;
    let lo = 0;
    let hi = b.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (b[2 * mid + 1]! < value) lo = mid + 1;
      else hi = mid;
    }
    return lo < b.length / 2 && b[2 * lo]! <= value;
  }

  /** How many integers of `[first, last]` are in the set. */
  countIn(first: number, last: number): number {
    assertRange(first, last);
    let total = 0;
    for (const [f, l] of this.ranges()) {
      if (f > last) break;
      total += overlap(f, l, first, last);
    }
    return total;
  }

  /** How many integers both sets hold. */
  countIntersection(other: IntervalSet): number {
    const a = this.#bounds;
    const b = other.#bounds;
    let i = 0;
    let j = 0;
    let total = 0;
    while (i < a.length && j < b.length) {
      total += overlap(a[i]!, a[i + 1]!, b[j]!, b[j + 1]!);
      if (a[i + 1]! < b[j + 1]!) i += 2;
      else j += 2;
    }
    return total;
  }

  /**
   * The holes between `from` and the highest member, as ranges, lowest first; at most
   * `limit` of them. Empty when the set is empty or `from` is above its maximum.
   */
  gaps(from: number = this.min() ?? 0, limit = Number.POSITIVE_INFINITY): Range[] {
    const out: Range[] = [];
    let cursor = from;
    for (const [first, last] of this.ranges()) {
      if (out.length >= limit) break;
      if (last < cursor) continue;
      if (first > cursor) out.push([cursor, first - 1]);
      cursor = last + 1;
    }
    return out;
  }

  /** Number of integers in the holes between `from` and the highest member. */
  countGaps(from: number = this.min() ?? 0): number {
    const max = this.max();
    if (max === undefined || from > max) return 0;
    return max - from + 1 - this.countIn(from, max);
  }

  /** Merges the two lowest ranges (fills the lowest hole); returns the hole's size, 0 if none. */
  fillLowestGap(): number {
    const b = this.#bounds;
    if (b.length < 4) return 0;
    const hole = b[2]! - b[1]! - 1;
    b.splice(1, 2);
    this.#count += hole;
    return hole;
  }

  /** A new set holding the members of both. */
  union(other: IntervalSet): IntervalSet {
    const copy = this.clone();
    copy.addAll(other);
    return copy;
  }

  clone(): IntervalSet {
    const copy = new IntervalSet();
    copy.#bounds = this.#bounds.slice();
    copy.#count = this.#count;
    return copy;
  }

  *ranges(): IterableIterator<Range> {
    const b = this.#bounds;
    for (let k = 0; k < b.length; k += 2) yield [b[k]!, b[k + 1]!];
  }

  /** `[[first, last], ...]`, the layout stored in KV. */
  toJSON(): [number, number][] {
    const out: [number, number][] = [];
    const b = this.#bounds;
    for (let k = 0; k < b.length; k += 2) out.push([b[k]!, b[k + 1]!]);
    return out;
  }
}
