import { EPISODE_CLOSE_AFTER_CLEAN_WINDOWS, type GroundTruthEpisode } from '@outpost/shared';

/**
 * What an operator lives with, as numbers: the definitions of the evaluation, pure functions of
 * scored windows and ground truth (evaluate.ts replays traffic into them, train/ calibrates the
 * threshold with them, the tests check them against hand-made answers).
 *
 * - An **alarm event** is a run of flagged windows (score > threshold) of one device, ended by
 *   EPISODE_CLOSE_AFTER_CLEAN_WINDOWS clean windows in a row: the agent reports it as one
 *   episode by that same rule, so it counts once however long it lasts, and a score flickering
 *   around the threshold inside that gap does not count again.
 * - A **false alarm** is an alarm event none of whose windows holds a sample of a labelled
 *   episode of that device. False alarms are counted per device-day of scored traffic.
 * - Since events merge, a model that alarms all the time raises few events: the **share of
 *   normal windows flagged** (windows holding no episode sample) says how much of the normal
 *   time a device spends in alarm, and keeps that model honest.
 * - An episode is **detected while active** when a flagged window ends on one of its samples or
 *   at most one stride (the spec's hopSize, in samples) after its last: the window an agent scores
 *   next after the fault ended may still report it, a later one may not (a drift "detected" by
 *   the step back to normal long after it began is a miss). The **delay** is the time from the
 *   episode's first sample to the last sample of that first flagged window.
 * - An episode still running when the device's recording ends is **cut off**: it is reported
 *   apart, since the recording, not the model, decided how long it had.
 */

export type TruthEpisode = GroundTruthEpisode;

/** One window as the agent would score it. */
export interface ScoredWindow {
  /** Device seq of the first and last sample in the window. */
  firstSeq: number;
  lastSeq: number;
  /** Payload ts (epoch ms) of the first and last sample. */
  firstTs: number;
  lastTs: number;
  score: number;
}

/** One device's scored windows in order, and what its recording held. */
export interface DeviceTrace {
  deviceId: string;
  windows: readonly ScoredWindow[];
  /** Seq of the last sample the device sent in the recording. */
  lastSeq: number;
  /** Mean time between two of its samples (ms). */
  intervalMs: number;
}

export interface AlarmEvent {
  deviceId: string;
  /** Indexes of the first and last window of the run. */
  first: number;
  last: number;
  startTs: number;
  endTs: number;
  peakScore: number;
  /** No window of the event holds a sample of a labelled episode. */
  falseAlarm: boolean;
}

export interface EpisodeOutcome {
  episode: TruthEpisode;
  /** Episode length in seconds (first to last sample, plus one sample interval). */
  durationS: number;
  cutOff: boolean;
  /** No window of the device ends on or after the episode's first sample (the recording ended first, or the device had too few samples). */
  unscored: boolean;
  detected: boolean;
  /**
   * A flagged window ended on one of its samples, the stride after it not counted: stricter,
   * since a window ending after a fault that steps back to normal may be flagged for the step.
   */
  detectedBeforeEnd: boolean;
  /** First sample to the end of the first flagged window while active, ms; undefined when missed. */
  delayMs: number | undefined;
  /** Highest score of the windows that could have detected it; undefined when there were none. */
  maxScore: number | undefined;
}

export interface TraceAssessment {
  events: AlarmEvent[];
  episodes: EpisodeOutcome[];
  /** Windows holding no sample of an episode, and how many of them were flagged. */
  normalWindows: number;
  flaggedNormalWindows: number;
  /** Scored device time: first window's first sample to last window's last sample, plus one interval (ms). */
  scoredMs: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Alarm events: runs of windows scoring above `threshold`, as [first, last] flagged window
 * indexes, a run ending once `closeAfterCleanWindows` windows in a row score at or under it (the
 * agent's episode rule; 1 merges consecutive flagged windows only).
 */
export function flaggedRuns(windows: readonly Pick<ScoredWindow, 'score'>[], threshold: number, closeAfterCleanWindows = EPISODE_CLOSE_AFTER_CLEAN_WINDOWS): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  let last = -1;
  windows.forEach((w, i) => {
    if (w.score > threshold) {
      if (start < 0) start = i;
      last = i;
    } else if (start >= 0 && i - last >= closeAfterCleanWindows) {
      runs.push([start, last]);
      start = -1;
    }
  });
  if (start >= 0) runs.push([start, last]);
  return runs;
}

function overlaps(window: Pick<ScoredWindow, 'firstSeq' | 'lastSeq'>, episode: Pick<TruthEpisode, 'startSeq' | 'endSeq'>): boolean {
  return window.firstSeq <= episode.endSeq && window.lastSeq >= episode.startSeq;
}

/**
 * Alarm events, detection while active and delays of one device at `threshold`; `strideSamples`
 * is the slack after an episode's last sample (the spec's hopSize).
 */
export function assessTrace(trace: DeviceTrace, episodes: readonly TruthEpisode[], threshold: number, strideSamples: number): TraceAssessment {
  const { windows } = trace;
  const events: AlarmEvent[] = flaggedRuns(windows, threshold).map(([first, last]) => {
    let peakScore = -Infinity;
    let explained = false;
    for (let i = first; i <= last; i++) {
      const w = windows[i]!;
      if (w.score > peakScore) peakScore = w.score;
      if (!explained && episodes.some((e) => overlaps(w, e))) explained = true;
    }
    return { deviceId: trace.deviceId, first, last, startTs: windows[first]!.lastTs, endTs: windows[last]!.lastTs, peakScore, falseAlarm: !explained };
  });
  const outcomes = episodes.map((episode): EpisodeOutcome => {
    const durationS = (episode.endTs - episode.startTs + trace.intervalMs) / 1000;
    const cutOff = episode.endSeq >= trace.lastSeq;
    let detected = false;
    let detectedBeforeEnd = false;
    let delayMs: number | undefined;
    let maxScore: number | undefined;
    let seen = false;
    for (const w of windows) {
      if (w.lastSeq < episode.startSeq) continue;
      if (w.lastSeq > episode.endSeq + strideSamples) break;
      seen = true;
      if (maxScore === undefined || w.score > maxScore) maxScore = w.score;
      if (w.score > threshold) {
        if (!detected) delayMs = w.lastTs - episode.startTs;
        detected = true;
        if (w.lastSeq <= episode.endSeq) detectedBeforeEnd = true;
      }
    }
    return { episode, durationS, cutOff, unscored: !seen, detected, detectedBeforeEnd, delayMs, maxScore };
  });
  let normalWindows = 0;
  let flaggedNormalWindows = 0;
  for (const w of windows) {
    if (episodes.some((e) => overlaps(w, e))) continue;
    normalWindows++;
    if (w.score > threshold) flaggedNormalWindows++;
  }
  const scoredMs = windows.length === 0 ? 0 : windows[windows.length - 1]!.lastTs - windows[0]!.firstTs + trace.intervalMs;
  return { events, episodes: outcomes, normalWindows, flaggedNormalWindows, scoredMs };
}

/** Nearest-rank q-quantile of values (NaN when empty). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Detection and delay of a group of episodes (one anomaly type, or all). */
export interface DetectionStats {
  episodes: number;
  detected: number;
  /** detected / episodes; NaN when there were none. */
  detectionRate: number;
  /** Detected by a window ending before the episode's last sample (no stride after it). */
  detectedBeforeEnd: number;
  beforeEndRate: number;
  delayP50S: number;
  delayP95S: number;
}

export function detectionStats(outcomes: readonly EpisodeOutcome[]): DetectionStats {
  const detected = outcomes.filter((o) => o.detected);
  const delaysS = detected.map((o) => o.delayMs! / 1000);
  return {
    episodes: outcomes.length,
    detected: detected.length,
    detectionRate: outcomes.length === 0 ? Number.NaN : detected.length / outcomes.length,
    detectedBeforeEnd: outcomes.filter((o) => o.detectedBeforeEnd).length,
    beforeEndRate: outcomes.length === 0 ? Number.NaN : outcomes.filter((o) => o.detectedBeforeEnd).length / outcomes.length,
    delayP50S: quantile(delaysS, 0.5),
    delayP95S: quantile(delaysS, 0.95),
  };
}

/** Episodes shorter than this and at least this long are reported apart when a type has both (stuck spells from 5 s). */
export const SHORT_EPISODE_S = 10;

/**
 * Detection per anomaly type, keyed by type; a type with episodes on both sides of
 * SHORT_EPISODE_S also gets `<type> (< 10 s)` and `<type> (>= 10 s)` rows.
 */
export function statsByType(outcomes: readonly EpisodeOutcome[]): Record<string, DetectionStats> {
  const groups = new Map<string, EpisodeOutcome[]>();
  const add = (key: string, o: EpisodeOutcome): void => {
    const list = groups.get(key) ?? [];
    list.push(o);
    groups.set(key, list);
  };
  for (const o of outcomes) add(o.episode.type, o);
  for (const [type, list] of [...groups]) {
    const short = list.filter((o) => o.durationS < SHORT_EPISODE_S);
    if (short.length === 0 || short.length === list.length) continue;
    for (const o of short) add(`${type} (< ${SHORT_EPISODE_S} s)`, o);
    for (const o of list) if (o.durationS >= SHORT_EPISODE_S) add(`${type} (>= ${SHORT_EPISODE_S} s)`, o);
  }
  return Object.fromEntries([...groups.keys()].sort().map((key) => [key, detectionStats(groups.get(key)!)]));
}

/** What a threshold gives over many devices. */
export interface ThresholdOutcome {
  threshold: number;
  deviceDays: number;
  alarmEvents: number;
  falseAlarmEvents: number;
  /** falseAlarmEvents / deviceDays; NaN without scored time. */
  falseAlarmsPerDeviceDay: number;
  /** Share of the windows holding no episode sample that were flagged; NaN without any. */
  flaggedNormalShare: number;
  /** Episodes that are neither cut off nor unscored. */
  complete: EpisodeOutcome[];
  cutOff: EpisodeOutcome[];
  unscored: EpisodeOutcome[];
  events: AlarmEvent[];
}

/** Groups episodes by device. */
export function episodesByDevice(truth: readonly TruthEpisode[]): Map<string, TruthEpisode[]> {
  const map = new Map<string, TruthEpisode[]>();
  for (const episode of truth) {
    const list = map.get(episode.deviceId) ?? [];
    list.push(episode);
    map.set(episode.deviceId, list);
  }
  return map;
}

/** Every device's assessment at one threshold, pooled. */
export function assessTraces(traces: readonly DeviceTrace[], truth: ReadonlyMap<string, readonly TruthEpisode[]>, threshold: number, strideSamples: number): ThresholdOutcome {
  let scoredMs = 0;
  let normalWindows = 0;
  let flaggedNormalWindows = 0;
  const events: AlarmEvent[] = [];
  const complete: EpisodeOutcome[] = [];
  const cutOff: EpisodeOutcome[] = [];
  const unscored: EpisodeOutcome[] = [];
  for (const trace of traces) {
    const result = assessTrace(trace, truth.get(trace.deviceId) ?? [], threshold, strideSamples);
    scoredMs += result.scoredMs;
    normalWindows += result.normalWindows;
    flaggedNormalWindows += result.flaggedNormalWindows;
    events.push(...result.events);
    for (const o of result.episodes) (o.unscored ? unscored : o.cutOff ? cutOff : complete).push(o);
  }
  const deviceDays = scoredMs / DAY_MS;
  const falseAlarmEvents = events.filter((e) => e.falseAlarm).length;
  return {
    threshold,
    deviceDays,
    alarmEvents: events.length,
    falseAlarmEvents,
    falseAlarmsPerDeviceDay: deviceDays > 0 ? falseAlarmEvents / deviceDays : Number.NaN,
    flaggedNormalShare: normalWindows > 0 ? flaggedNormalWindows / normalWindows : Number.NaN,
    complete,
    cutOff,
    unscored,
    events,
  };
}

/** One point of the detection vs false-alarm trade-off. */
export interface CurvePoint {
  threshold: number;
  /** Complete episodes detected while active, all types pooled. */
  detectionRate: number;
  /** The lowest detection rate of any anomaly type (the type an operator would miss first). */
  worstTypeDetectionRate: number;
  falseAlarmsPerDeviceDay: number;
  flaggedNormalShare: number;
}

/** The trade-off curve over `thresholds` (in the order given). */
export function tradeOffCurve(traces: readonly DeviceTrace[], truth: ReadonlyMap<string, readonly TruthEpisode[]>, thresholds: readonly number[], strideSamples: number): CurvePoint[] {
  return thresholds.map((threshold) => {
    const outcome = assessTraces(traces, truth, threshold, strideSamples);
    const byType = Object.entries(statsByType(outcome.complete)).filter(([key]) => !key.includes('('));
    return {
      threshold,
      detectionRate: detectionStats(outcome.complete).detectionRate,
      worstTypeDetectionRate: byType.length === 0 ? Number.NaN : Math.min(...byType.map(([, s]) => s.detectionRate)),
      falseAlarmsPerDeviceDay: outcome.falseAlarmsPerDeviceDay,
      flaggedNormalShare: outcome.flaggedNormalShare,
    };
  });
}

/**
 * The lowest threshold whose false alarms per device-day stay at or under `target`, found by
 * coming down from `high` (where the rate must already be within the target: RangeError
 * otherwise) in steps of 2 % until the rate first exceeds the target, then bisecting that step to
 * a relative precision of 1e-4; `low` if the rate never exceeds the target above it. Coming down
 * matters: at very low thresholds alarm events merge into a few endless ones and their count falls
 * again, a regime a plain bisection could land in. Raising the threshold can also split an event
 * in two, so the rate is not strictly monotone: the result is the first crossing seen from above.
 */
export function thresholdForFalseAlarmRate(
  traces: readonly DeviceTrace[],
  truth: ReadonlyMap<string, readonly TruthEpisode[]>,
  target: number,
  strideSamples: number,
  low: number,
  high: number,
): { threshold: number; outcome: ThresholdOutcome } {
  if (!(low > 0 && high > low)) throw new RangeError(`need 0 < low < high, got ${low} and ${high}`);
  const acceptable = (o: ThresholdOutcome): boolean => o.falseAlarmsPerDeviceDay <= target;
  let hi = high;
  let hiOutcome = assessTraces(traces, truth, hi, strideSamples);
  if (!acceptable(hiOutcome)) throw new RangeError(`even threshold ${high} gives ${hiOutcome.falseAlarmsPerDeviceDay} false alarms per device-day, over the target ${target}`);
  let lo: number | undefined;
  while (lo === undefined) {
    const next = Math.max(low, hi / 1.02);
    const outcome = assessTraces(traces, truth, next, strideSamples);
    if (!acceptable(outcome)) {
      lo = next;
    } else {
      hi = next;
      hiOutcome = outcome;
      if (next === low) return { threshold: hi, outcome: hiOutcome };
    }
  }
  while (hi / lo > 1 + 1e-4) {
    const mid = Math.sqrt(lo * hi);
    const outcome = assessTraces(traces, truth, mid, strideSamples);
    if (acceptable(outcome)) {
      hi = mid;
      hiOutcome = outcome;
    } else {
      lo = mid;
    }
  }
  return { threshold: hi, outcome: hiOutcome };
}
