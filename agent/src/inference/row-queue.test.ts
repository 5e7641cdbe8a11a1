import { describe, expect, it } from 'vitest';
import { createRowQueue } from './row-queue.js';

describe('row queue', () => {
  it('refuses past its capacity and keeps FIFO order', () => {
    const q = createRowQueue<number>(3);
    expect([1, 2, 3, 4].map((n) => q.push(n))).toEqual([true, true, true, false]);
    expect(q.length).toBe(3);
    expect(q.take(2, () => true)).toEqual([1, 2]);
    expect(q.push(5)).toBe(true);
    expect(q.clear()).toEqual([3, 5]);
    expect(q.length).toBe(0);
    expect(q.peek()).toBeUndefined();
  });

  it('takes only the run of rows the predicate accepts (one model per batch)', () => {
    const q = createRowQueue<{ model: string; n: number }>(10);
    for (const [model, n] of [['a', 1], ['a', 2], ['b', 3], ['a', 4]] as const) q.push({ model, n });
    const head = q.peek()!.model;
    expect(q.take(10, (r) => r.model === head).map((r) => r.n)).toEqual([1, 2]);
    expect(q.take(10, (r) => r.model === 'a')).toEqual([]);
    expect(q.take(1, () => true).map((r) => r.n)).toEqual([3]);
    expect(q.length).toBe(1);
  });

  it('puts retried rows back in front, even past capacity', () => {
    const q = createRowQueue<number>(2);
    q.push(1);
    q.push(2);
    const batch = q.take(2, () => true);
    q.push(3);
    q.push(4);
    q.requeueFront(batch);
    expect(q.length).toBe(4);
    expect(q.push(5)).toBe(false);
    expect(q.dropFrontWhile((n) => n < 3)).toEqual([1, 2]);
    const seen: number[] = [];
    q.forEach((n) => seen.push(n));
    expect(seen).toEqual([3, 4]);
  });

  it('stays correct across many takes (compaction)', () => {
    const q = createRowQueue<number>(100_000);
    let next = 0;
    let expected = 0;
    let outOfOrder = 0;
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 300; i++) q.push(next++);
      for (const n of q.take(250, () => true)) if (n !== expected++) outOfOrder++;
    }
    expect(outOfOrder).toBe(0);
    expect(q.length).toBe(200 * 50);
    expect(q.peek()).toBe(expected);
  });

  it('rejects a capacity below one', () => {
    expect(() => createRowQueue(0)).toThrow(RangeError);
  });
});
