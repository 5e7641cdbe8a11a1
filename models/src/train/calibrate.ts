import { ErrorCode, OutpostError } from '@outpost/shared';
import {
  detectionStats,
  episodesByDevice,
  statsByType,
  thresholdForFalseAlarmRate,
  tradeOffCurve,
  type CurvePoint,
  type DetectionStats,
  type TruthEpisode,
} from '../evaluate/alarms.js';
import { curveThresholds, replayRecords, type ModelUnderTest } from '../evaluate/evaluate.js';
import type { TelemetryRecord } from './records.js';

/**
 * The threshold of a model, chosen for a target rate of false alarms per device-day on held-out
 * traffic (devices seen neither in training nor in evaluation), with the evaluation's own
 * definitions (alarms.ts): the lowest threshold at which alarm events touching no labelled fault
 * stay at or under the target.
 */

/**
 * Default target: a quarter of the one false alarm per device-day an operator accepts. Headroom:
 * the held-out traffic is a sample (a few false alarms decide the threshold), and other devices
 * and seeds scatter around it.
 */
export const DEFAULT_FALSE_ALARM_TARGET = 0.25;
/** Bounds of the threshold search, in the detector's tail units (1 = where a detector's normal training traffic ends). */
const SEARCH_LOW = 0.25;
const SEARCH_HIGH = 1_000;

export interface Calibration {
  threshold: number;
  targetFalseAlarmsPerDeviceDay: number;
  falseAlarmsPerDeviceDay: number;
  falseAlarmEvents: number;
  /** Share of the normal windows flagged at the threshold. */
  flaggedNormalShare: number;
  deviceDays: number;
  devices: number;
  /** Detection while active on the held-out traffic at the threshold, per type and all (complete episodes). */
  perType: Record<string, DetectionStats>;
  all: DetectionStats;
  curve: CurvePoint[];
}

/**
 * Replays held-out `records` through `models` at once (each device to the model of its kind;
 * their thresholds are ignored) and picks each model's threshold.
 *
 * @throws OutpostError MODEL_INVALID when even the highest threshold searched alarms more often
 *   than the target, or a model fits no device of the traffic.
 */
export async function calibrateThresholds(
  models: readonly ModelUnderTest[],
  records: Iterable<TelemetryRecord> | AsyncIterable<TelemetryRecord>,
  truth: readonly TruthEpisode[],
  target: number = DEFAULT_FALSE_ALARM_TARGET,
): Promise<Calibration[]> {
  const replay = await replayRecords(records, { models });
  const byDevice = episodesByDevice(truth);
  return models.map((model) => {
    const traces = replay.traces.get(model)!;
    const stride = model.featureSpec.hopSize;
    let found: ReturnType<typeof thresholdForFalseAlarmRate>;
    try {
      found = thresholdForFalseAlarmRate(traces, byDevice, target, stride, SEARCH_LOW, SEARCH_HIGH);
    } catch (cause) {
      throw new OutpostError(ErrorCode.MODEL_INVALID, `cannot calibrate ${model.ref.name}: ${(cause as Error).message}`, { cause });
    }
    const { threshold, outcome } = found;
    return {
      threshold,
      targetFalseAlarmsPerDeviceDay: target,
      falseAlarmsPerDeviceDay: outcome.falseAlarmsPerDeviceDay,
      falseAlarmEvents: outcome.falseAlarmEvents,
      flaggedNormalShare: outcome.flaggedNormalShare,
      deviceDays: outcome.deviceDays,
      devices: traces.length,
      perType: statsByType(outcome.complete),
      all: detectionStats(outcome.complete),
      curve: tradeOffCurve(traces, byDevice, curveThresholds(threshold), stride),
    };
  });
}
