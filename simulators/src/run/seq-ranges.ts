/**
 * The seqs one device got acknowledged, kept as sorted, disjoint, non-adjacent inclusive
 * ranges `[first, last]`: a device acknowledged in order is one range however long it runs,
 * so the run summary can list every acknowledged seq of every device in a line.
 */
export type SeqRange = [first: number, last: number];

export interface SeqRanges {
  /** Adds `seq`; false when it was already in the set. */
  add(seq: number): boolean;
  /** How many seqs the set holds. */
  count(): number;
  /** A copy of the ranges, lowest first. */
  toRanges(): SeqRange[];
}

export function createSeqRanges(): SeqRanges {
  const ranges: SeqRange[] = [];
  let count = 0;

  /** Index of the first range whose last >= seq - 1 (the one seq may join or precede). */
  const search = (seq: number): number => {
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ranges[mid] as SeqRange)[1] < seq - 1) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  return {
    add(seq) {
      if (!Number.isSafeInteger(seq)) throw new RangeError(`seq must be a safe integer, got ${seq}`);
      const last = ranges[ranges.length - 1];
      // The common case: the next seq of a device acknowledged in order.
      if (last !== undefined && seq === last[1] + 1) {
        last[1] = seq;
        count += 1;
        return true;
      }
      const i = search(seq);
      const at = ranges[i];
      if (at === undefined || seq < at[0] - 1) {
        ranges.splice(i, 0, [seq, seq]);
      } else if (seq >= at[0] && seq <= at[1]) {
        return false;
      } else if (seq === at[0] - 1) {
        at[0] = seq;
      } else {
        // seq === at[1] + 1: extend, and merge with the next range when they now touch.
        at[1] = seq;
        const next = ranges[i + 1];
        if (next !== undefined && next[0] === seq + 1) {
          at[1] = next[1];
          ranges.splice(i + 1, 1);
        }
      }
      count += 1;
      return true;
    },
    count: () => count,
    toRanges: () => ranges.map(([first, lastSeq]): SeqRange => [first, lastSeq]),
  };
}
