import { describe, expect, it } from 'vitest';
import { createStyle } from './style.js';
import { createLiveRegion, HIDE_CURSOR, renderLine, SHOW_CURSOR, type Line } from './terminal.js';

// eslint-disable-next-line no-control-regex
const stripSgr = (text: string): string => text.replace(/\u001b\[[0-9;]*m/g, '');

describe('renderLine', () => {
  it('cuts on the visible text and styles what is left', () => {
    const style = createStyle(true);
    const line: Line = [{ text: 'wave 1 ' }, { text: '#####', style: style.green }, { text: '-----' }];
    expect(renderLine(line)).toBe(`wave 1 ${style.green('#####')}-----`);
    const cut = renderLine(line, 10);
    expect(stripSgr(cut)).toBe('wave 1 ##…');
    expect(cut).toBe(`wave 1 ${style.green('##')}…`);
    expect(renderLine(line, 17)).toBe(renderLine(line));
  });
});

describe('createLiveRegion', () => {
  const frame = (...texts: string[]): Line[] => texts.map((text) => [{ text }]);

  it('draws a frame, then goes back up exactly its height to redraw it, once per change', () => {
    let out = '';
    const region = createLiveRegion((t) => (out += t), () => ({ columns: 40, rows: 10 }));
    expect(region.draw(frame('a', 'b', 'c'))).toBe(true);
    expect(out).toBe(`${HIDE_CURSOR}\u001b[2Ka\n\u001b[2Kb\n\u001b[2Kc\n\u001b[J`);
    out = '';
    expect(region.draw(frame('a', 'b', 'c'))).toBe(false);
    expect(out).toBe('');
    expect(region.draw(frame('a', 'B'))).toBe(true);
    // Up 3 (the previous frame), two lines, and the third line cleared below.
    expect(out).toBe('\r\u001b[3A\u001b[2Ka\n\u001b[2KB\n\u001b[J');
    out = '';
    region.draw(frame('x'));
    expect(out.startsWith('\r\u001b[2A')).toBe(true);
    out = '';
    region.finish('done\n');
    expect(out).toBe(`\r\u001b[2Kdone\n${SHOW_CURSOR}`);
    out = '';
    expect(region.draw(frame('y'))).toBe(false);
    region.finish();
    expect(out).toBe('');
  });

  it('keeps lines narrower than the terminal and the frame shorter than it, so cursor-up stays exact', () => {
    let out = '';
    const region = createLiveRegion((t) => (out += t), () => ({ columns: 8, rows: 4 }));
    region.draw(frame('0123456789', '1', '2', '3', '4'));
    const lines = out.split('\n').slice(0, -1).map((l) => l.replace(HIDE_CURSOR, '').replace('\u001b[2K', ''));
    expect(lines).toEqual(['012345…', '1', '… 3 mo…']);
    out = '';
    region.draw(frame('z'));
    expect(out.startsWith('\r\u001b[3A')).toBe(true);
  });

  it('assumes 80 x 24 when the terminal gives no size', () => {
    let out = '';
    const region = createLiveRegion((t) => (out += t), () => ({ columns: 0, rows: undefined }));
    region.draw(frame('x'.repeat(100)));
    expect(out).toContain(`${'x'.repeat(78)}…`);
  });
});
