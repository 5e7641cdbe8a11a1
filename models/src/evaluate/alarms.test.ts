import { describe, expect, it } from 'vitest';
import { EPISODE_CLOSE_AFTER_CLEAN_WINDOWS } from '@outpost/shared';
import {
  assessTrace,
  assessTraces,
  episodesByDevice,
  flaggedRuns,
  quantile,
  statsByType,
  thresholdForFalseAlarmRate,
  type DeviceTrace,
  type ScoredWindow,
  type TruthEpisode,
} from './alarms.js';

// Hand-made traces where the answer is known: windows of 4 samples every 2 (stride 2), 1 sample
// per second, ts = seq * 1000. `scores[i]` is the score of the window ending at seq 3 + 2i.
const WINDOW = 4;
const STRIDE = 2;

function trace(deviceId: string, scores: number[], lastSeq = 3 + 2 * (scores.length - 1)): DeviceTrace {
  const windows: ScoredWindow[] = scores.map((score, i) => {
    const end = WINDOW - 1 + STRIDE * i;
    return { firstSeq: end - WINDOW + 1, lastSeq: end, firstTs: (end - WINDOW + 1) * 1000, lastTs: end * 1000, score };
  });
  return { deviceId, windows, lastSeq, intervalMs: 1000 };
}

function episode(deviceId: string, type: string, startSeq: number, endSeq: number): TruthEpisode {
  return { deviceId, type, metric: 'x', startTs: startSeq * 1000, endTs: endSeq * 1000, startSeq, endSeq };
}

describe('alarm events', () => {
  it(`merge flagged windows until ${EPISODE_CLOSE_AFTER_CLEAN_WINDOWS} clean windows in a row end them, as the agent's episodes do`, () => {
    const scores = (list: number[]) => list.map((score) => ({ score }));
    // Gaps of 1 and 2 clean windows merge; a gap of 3 ends the event.
    expect(EPISODE_CLOSE_AFTER_CLEAN_WINDOWS).toBe(3);
    expect(flaggedRuns(scores([0, 2, 2, 0, 2, 0, 0, 2, 0, 0, 0, 2, 2, 0]), 1)).toEqual([
      [1, 7],
      [11, 12],
    ]);
    // With 1, only consecutive flagged windows merge.
    expect(flaggedRuns(scores([0, 2, 2, 0, 2, 0, 0, 2, 2, 2]), 1, 1)).toEqual([
      [1, 2],
      [4, 4],
      [7, 9],
    ]);
    expect(flaggedRuns([{ score: 1 }], 1)).toEqual([]);
  });

  it('are false alarms when none of their windows holds a sample of an episode of the device', () => {
    // Windows end at 3, 5, 7, ... 23: [0-3] [2-5] [4-7] [6-9] [8-11] [10-13] [12-15] [14-17] [16-19] [18-21] [20-23].
    const t = trace('a', [0, 5, 5, 0, 0, 0, 5, 0, 0, 0, 5]);
    // The episode (seq 9-10) lies in no flagged window: windows [2-5] [4-7] are one false alarm, [12-15] another, [20-23] a third.
    const result = assessTrace(t, [episode('a', 'spike', 9, 10)], 1, STRIDE);
    expect(result.events.map((e) => [e.first, e.last, e.falseAlarm])).toEqual([
      [1, 2, true],
      [6, 6, true],
      [10, 10, true],
    ]);
    // An episode of another device explains nothing; one at seq 14 explains the event [12-15].
    expect(assessTrace(t, [episode('a', 'spike', 14, 14)], 1, STRIDE).events.map((e) => e.falseAlarm)).toEqual([true, false, true]);
    // One long event touching an episode at its end is one explained event.
    expect(assessTrace(trace('b', [5, 5, 5, 5, 5]), [episode('b', 'drift', 11, 11)], 1, STRIDE).events.map((e) => [e.first, e.last, e.falseAlarm])).toEqual([[0, 4, false]]);
  });

  it('count device-days of scored time and the share of normal windows flagged; an always-on alarm flags all of them in one event', () => {
    const always = trace('a', new Array<number>(50).fill(9));
    const outcome = assessTraces([always, trace('b', new Array<number>(50).fill(0))], episodesByDevice([episode('a', 'stuck', 40, 60)]), 1, STRIDE);
    // Each device: first window's first sample (seq 0) to the last one's last (seq 101), plus one interval: 102 s.
    expect(outcome.deviceDays).toBeCloseTo((2 * 102) / 86_400, 12);
    expect(outcome.alarmEvents).toBe(1);
    expect(outcome.falseAlarmEvents).toBe(0);
    // Device a: the 12 windows ending at 41..63 hold episode samples, its other 38 do not (all flagged); b: 50, none flagged.
    expect(outcome.flaggedNormalShare).toBeCloseTo(38 / (38 + 50), 12);
  });
});

describe('detection while active', () => {
  it('counts a flagged window ending on the episode or at most one stride after it, with the delay to its end', () => {
    // Episode seq 8-12. Windows ending at 9 and 11 end on it; 13 ends one sample after, 15 three after.
    const cases: [number[], boolean, boolean, number | undefined][] = [
      // scores of the windows ending at 3, 5, 7, 9, 11, 13, 15, 17
      [[0, 0, 0, 5, 0, 0, 0, 0], true, true, 1000], // ends at 9: 1 s after the first sample (seq 8)
      [[0, 0, 0, 0, 5, 0, 0, 0], true, true, 3000],
      [[0, 0, 0, 0, 0, 5, 0, 0], true, false, 5000], // ends at 13, within the stride: detected, not before the end
      [[0, 0, 0, 0, 0, 0, 5, 0], false, false, undefined], // ends at 15: 3 samples after, beyond the stride (the step back)
      [[5, 5, 5, 0, 0, 0, 0, 0], false, false, undefined], // flagged before it began
    ];
    for (const [scores, detected, beforeEnd, delayMs] of cases) {
      const [outcome] = assessTrace(trace('a', scores), [episode('a', 'drift', 8, 12)], 1, STRIDE).episodes;
      expect({ detected: outcome!.detected, beforeEnd: outcome!.detectedBeforeEnd, delayMs: outcome!.delayMs }, scores.join(',')).toEqual({ detected, beforeEnd, delayMs });
    }
  });

  it('reports an episode still running when the recording ends as cut off, and one no window saw as unscored', () => {
    const t = trace('a', [0, 0, 0, 0, 5], 12);
    const outcomes = assessTrace(t, [episode('a', 'drift', 9, 12), episode('a', 'spike', 30, 30)], 1, STRIDE).episodes;
    expect(outcomes.map((o) => [o.episode.type, o.cutOff, o.unscored, o.detected])).toEqual([
      ['drift', true, false, true],
      ['spike', true, true, false],
    ]);
    const pooled = assessTraces([t], episodesByDevice([episode('a', 'drift', 9, 12), episode('a', 'stuck', 4, 6)]), 1, STRIDE);
    expect(pooled.cutOff.map((o) => o.episode.type)).toEqual(['drift']);
    expect(pooled.complete.map((o) => o.episode.type)).toEqual(['stuck']);
  });

  it('sums up per type with nearest-rank p50/p95 delays, and splits a type at 10 s when it has episodes on both sides', () => {
    // Stuck spells of 5, 9, 20 and 40 s (durations: last - first sample + 1 s).
    const scores = new Array<number>(60).fill(0);
    const episodes = [episode('a', 'stuck', 10, 14), episode('a', 'stuck', 30, 38), episode('a', 'stuck', 50, 69), episode('a', 'stuck', 80, 119), episode('a', 'spike', 100, 100)];
    // Flag the windows ending at 13 (delay 3 s), 37 (7 s), 61 (11 s); the 40 s spell and the spike go unseen.
    for (const end of [13, 37, 61]) scores[(end - 3) / 2] = 5;
    const outcome = assessTraces([trace('a', scores, 200)], episodesByDevice(episodes), 1, STRIDE);
    const byType = statsByType(outcome.complete);
    expect(Object.keys(byType)).toEqual(['spike', 'stuck', 'stuck (< 10 s)', 'stuck (>= 10 s)']);
    expect(byType['stuck']).toMatchObject({ episodes: 4, detected: 3, detectionRate: 0.75, delayP50S: 7, delayP95S: 11 });
    expect(byType['stuck (< 10 s)']).toMatchObject({ episodes: 2, detected: 2, detectionRate: 1 });
    expect(byType['stuck (>= 10 s)']).toMatchObject({ episodes: 2, detected: 1, detectionRate: 0.5, delayP50S: 11 });
    expect(byType['spike']).toMatchObject({ episodes: 1, detected: 0, detectionRate: 0 });
    expect(Number.isNaN(byType['spike']!.delayP50S)).toBe(true);
    expect([quantile([3, 1, 2], 0.5), quantile([1, 2, 3, 4], 0.5), quantile([5], 0.95), quantile([], 0.5)]).toEqual([2, 2, 5, Number.NaN]);
  });
});

describe('thresholdForFalseAlarmRate', () => {
  // 10 devices for 1 day each (one window per 2 s would be too many: windows here are 8640 s apart).
  function dayTrace(deviceId: string, peaks: number[]): DeviceTrace {
    const windows: ScoredWindow[] = Array.from({ length: 11 }, (_, i) => ({ firstSeq: i, lastSeq: i, firstTs: i * 8_640_000, lastTs: i * 8_640_000, score: peaks[i] ?? 0 }));
    return { deviceId, windows, lastSeq: 10, intervalMs: 0 };
  }

  it('picks the lowest threshold whose false alarms per device-day meet the target, coming down from above', () => {
    // Four isolated high windows in 10 device-days: 4.0, 3.0, 2.0, 1.5.
    const traces = Array.from({ length: 10 }, (_, d) => dayTrace(`d${d}`, d < 4 ? [0, 0, 0, [4, 3, 2, 1.5][d]!] : []));
    const none = new Map<string, TruthEpisode[]>();
    // Target 0.2 per device-day = 2 events in 10 days: the threshold must sit just above 2.0.
    const { threshold, outcome } = thresholdForFalseAlarmRate(traces, none, 0.2, 1, 0.5, 100);
    expect(outcome.falseAlarmEvents).toBe(2);
    expect(threshold).toBeGreaterThanOrEqual(2);
    expect(threshold).toBeLessThan(2.001);
    expect(() => thresholdForFalseAlarmRate(traces, none, 0.05, 1, 0.5, 3)).toThrow(/even threshold 3 gives 0.1 false alarms per device-day, over the target 0.05/);
  });

  it('does not fall into the low thresholds where every window is flagged and events merge into one per device', () => {
    // Each device-day: two windows at 2 among windows at 1. Above 2: no event; between 1 and 2:
    // two per device-day (over the target 1.5); below 1: one endless event per device-day, which
    // a search from below would accept.
    const traces = Array.from({ length: 10 }, (_, d) => dayTrace(`d${d}`, [1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1]));
    const none = new Map<string, TruthEpisode[]>();
    expect(assessTraces(traces, none, 0.5, 1).falseAlarmsPerDeviceDay).toBe(1);
    const { threshold, outcome } = thresholdForFalseAlarmRate(traces, none, 1.5, 1, 0.001, 100);
    expect(outcome.falseAlarmEvents).toBe(0);
    expect(threshold).toBeGreaterThanOrEqual(2);
    expect(threshold).toBeLessThan(2.001);
  });
});
