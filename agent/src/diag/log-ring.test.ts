import { describe, expect, it } from 'vitest';
import { createLogRing, LINE_CUT_MARK, MAX_LOG_LINE_CHARS } from './log-ring.js';

const fill = (n: number, maxLines: number) => {
  const ring = createLogRing(maxLines);
  for (let i = 1; i <= n; i++) ring.push(`line ${i}\n`);
  return ring;
};

describe('createLogRing', () => {
  it('keeps lines without their newline, numbered from 1, oldest first', () => {
    const ring = fill(3, 10);
    expect(ring.read(0, 10)).toEqual({ lines: [{ seq: 1, text: 'line 1' }, { seq: 2, text: 'line 2' }, { seq: 3, text: 'line 3' }], lastSeq: 3, missed: 0, more: false });
    expect(ring.read(2, 10).lines).toEqual([{ seq: 3, text: 'line 3' }]);
    expect(ring.read(3, 10)).toEqual({ lines: [], lastSeq: 3, missed: 0, more: false });
    expect([ring.size(), ring.lastSeq()]).toEqual([3, 3]);
  });

  it('is bounded: keeps the last maxLines lines and counts those a reader missed', () => {
    const ring = fill(25, 10);
    expect([ring.size(), ring.lastSeq()]).toEqual([10, 25]);
    const all = ring.read(0, 100);
    expect(all.lines.map((l) => l.seq)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
    expect(all.missed).toBe(15);
    expect(ring.read(12, 100).missed).toBe(3);
    expect(ring.read(20, 100)).toMatchObject({ missed: 0, lines: [{ seq: 21 }, { seq: 22 }, { seq: 23 }, { seq: 24 }, { seq: 25 }] });
  });

  it('answers at most `limit` lines and at most maxBytes of text, saying there is more', () => {
    const ring = fill(25, 10);
    expect(ring.read(0, 3)).toMatchObject({ lines: [{ seq: 16 }, { seq: 17 }, { seq: 18 }], more: true });
    // Each line counts its UTF-8 bytes and 16 for its framing: two fit in 50 bytes, not three.
    expect(ring.read(0, 100, 50)).toMatchObject({ lines: [{ seq: 16 }, { seq: 17 }], more: true });
    // One line always comes back, however large, so a reader moves on.
    expect(ring.read(0, 100, 1)).toMatchObject({ lines: [{ seq: 16 }], more: true });
  });

  it('cuts a huge line to MAX_LOG_LINE_CHARS and marks it', () => {
    const ring = createLogRing(2);
    ring.push('x'.repeat(MAX_LOG_LINE_CHARS * 4));
    const [line] = ring.read(0, 1).lines;
    expect(line!.text).toBe(`${'x'.repeat(MAX_LOG_LINE_CHARS)}${LINE_CUT_MARK}`);
  });

  it('refuses a size that is not a positive integer', () => {
    expect(() => createLogRing(0)).toThrow(RangeError);
    expect(() => createLogRing(1.5)).toThrow(RangeError);
  });
});
