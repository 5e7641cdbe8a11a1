import { describe, expect, it } from 'vitest';
import { createStyle } from './style.js';
import { formatFields, formatTable } from './table.js';
import { formatAge, parseSince } from './time.js';

describe('formatTable', () => {
  it('aligns columns on the plain text, left or right, and styles after padding', () => {
    const style = createStyle(true);
    const out = formatTable(
      [{ header: 'NAME' }, { header: 'COUNT', align: 'right' }, { header: 'NOTE' }],
      [
        ['gw-1', '5', { text: 'online', style: style.green }],
        ['gateway-22', '12345', 'x'],
      ],
    );
    // eslint-disable-next-line no-control-regex
    const plain = out.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain).toBe('NAME        COUNT  NOTE\ngw-1            5  online\ngateway-22  12345  x\n');
    expect(out).toContain(style.green('online'));
    expect(formatFields([['a', '1'], ['long', '2']])).toBe('a     1\nlong  2\n');
  });

  it('writes no escape codes when colour is off', () => {
    const style = createStyle(false);
    expect(style.red('x')).toBe('x');
    expect(formatTable([{ header: 'A' }], [[{ text: 'y', style: style.bold }]])).toBe('A\ny\n');
  });
});

describe('times', () => {
  const NOW = Date.parse('2026-11-24T12:00:00Z');
  it('parses --since as a duration back, epoch ms or ISO time', () => {
    expect(parseSince('1h', NOW)).toBe(NOW - 3_600_000);
    expect(parseSince('90s', NOW)).toBe(NOW - 90_000);
    expect(parseSince('1.5d', NOW)).toBe(NOW - 129_600_000);
    expect(parseSince('1700000000000', NOW)).toBe(1_700_000_000_000);
    expect(parseSince('2026-11-24T10:00:00Z', NOW)).toBe(NOW - 7_200_000);
    for (const bad of ['yesterday', '1y', '-1h', '', 'h']) expect(parseSince(bad, NOW), bad).toBeUndefined();
  });
  it('shows ages', () => {
    expect([formatAge(NOW, NOW), formatAge(NOW - 5_000, NOW), formatAge(NOW - 180_000, NOW), formatAge(NOW - 7_200_000, NOW), formatAge(NOW + 5_000, NOW)]).toEqual([
      'now',
      '5s ago',
      '3m ago',
      '2h ago',
      'in 5s',
    ]);
  });
});
