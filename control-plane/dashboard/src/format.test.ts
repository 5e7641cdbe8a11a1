import { describe, expect, it } from 'vitest';
import { agentCompleteness, completeness, formatAgo, formatBytes, formatDuration, formatPercent, formatRate, formatShare, formatValue } from './format.js';

describe('format', () => {
  it('never rounds a loss away', () => {
    expect(formatPercent(0.99999)).toBe('99.9 %');
    expect(formatPercent(1)).toBe('100.0 %');
    expect(formatPercent(undefined)).toBe('–');
  });

  it('reads completeness of telemetry when counts by kind are there', () => {
    expect(completeness({ received: 0, gaps: 0, evicted: 0 })).toBeUndefined();
    expect(completeness({ received: 90, gaps: 10, evicted: 0 })).toBe(0.9);
    // Ten evicted records of a device that sends seqs are ten seq holes too: lost once, not twice.
    expect(completeness({ received: 90, gaps: 10, evicted: 10 })).toBe(0.9);
    // A device without seqs: only the evictions tell.
    expect(completeness({ received: 90, gaps: 0, evicted: 10 })).toBe(0.9);
    // 10 inference results do not make up for lost telemetry.
    expect(completeness({ received: 100, kinds: { telemetry: 90, inference: 10 }, gaps: 10, evicted: 0 })).toBe(0.9);
    expect(completeness({ received: 10, kinds: { inference: 10 }, gaps: 0, evicted: 0 })).toBe(1);
  });

  it('counts an agent eviction once whether or not it already shows as a gap', () => {
    expect(agentCompleteness({ received: 90, gaps: 10, evicted: 10, explainedByEviction: 10 })).toBe(0.9);
    expect(agentCompleteness({ received: 90, gaps: 0, evicted: 10, explainedByEviction: 0 })).toBe(0.9);
  });

  it('reads sizes, rates, times and values', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(200 * 1024 * 1024)).toBe('200 MiB');
    expect(formatRate(undefined)).toBe('–');
    expect(formatRate(2.25)).toBe('2.3/s');
    expect(formatRate(2500)).toBe('2.5k/s');
    expect(formatAgo(null, 0)).toBe('never');
    expect(formatAgo(0, 65_000)).toBe('1 min ago');
    expect(formatValue(21.56789)).toBe('21.57');
    expect(formatValue(1013)).toBe('1013');
    expect(formatValue(0.00001234)).toBe('1.23e-5');
  });

  it('reads small rates with their significant digits, and durations in whole seconds', () => {
    expect(formatShare(0.002)).toBe('0.2 %');
    expect(formatShare(0.000412)).toBe('0.0412 %');
    expect(formatShare(0.03)).toBe('3 %');
    expect(formatShare(0)).toBe('0 %');
    expect(formatShare(0.99999)).toBe('99.9 %');
    expect(formatShare(1)).toBe('100 %');
    expect(formatShare(null)).toBe('–');
    expect(formatDuration(4_000)).toBe('4 s');
    expect(formatDuration(3_200)).toBe('4 s');
    expect(formatDuration(-5)).toBe('0 s');
    expect(formatDuration(65_000)).toBe('1 min 5 s');
    expect(formatDuration(600_000)).toBe('10 min');
    expect(formatDuration(7_380_000)).toBe('2 h 3 min');
  });
});
