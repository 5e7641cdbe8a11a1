import { readFile } from 'node:fs/promises';
import { createFeatureWindow, ErrorCode, featureLength, GroundTruthEpisodeSchema, OutpostError, routeDevice, type FeatureSpec, type FeatureWindow, type ModelRef } from '@outpost/shared';
import type { TelemetryRecord } from '../train/records.js';
import {
  assessTraces,
  detectionStats,
  episodesByDevice,
  statsByType,
  tradeOffCurve,
  type AlarmEvent,
  type CurvePoint,
  type DetectionStats,
  type DeviceTrace,
  type EpisodeOutcome,
  type ScoredWindow,
  type TruthEpisode,
} from './alarms.js';

/**
 * Evaluation of models on recorded traffic with ground truth, as the agent would run them:
 * each device is routed to the model of its kind (routeDevice), its telemetry goes through the
 * shared feature windows of that model's spec (baselines included), the model scores every
 * window, and the manifest's threshold flags them. The definitions of what counts are in
 * alarms.ts.
 */

export type { TruthEpisode } from './alarms.js';

/** Reads a ground-truth file; a bad line is MODEL_INVALID naming the line and field. */
export async function readTruthFile(file: string): Promise<TruthEpisode[]> {
  const text = await readFile(file, 'utf8');
  const episodes: TruthEpisode[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (cause) {
      throw new OutpostError(ErrorCode.MODEL_INVALID, `${file}:${i + 1}: not JSON: ${(cause as Error).message}`, { cause });
    }
    const parsed = GroundTruthEpisodeSchema.safeParse(value);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
      throw new OutpostError(ErrorCode.MODEL_INVALID, `${file}:${i + 1}: ${issues}`);
    }
    episodes.push(parsed.data);
  });
  return episodes;
}

/** Scores whole rows (row-major float32, `featureLength` per row); one score per row. */
export type BatchScorer = (rows: Float32Array) => Promise<Float32Array>;

/** A model as the evaluation runs it. */
export interface ModelUnderTest {
  ref: ModelRef;
  featureSpec: FeatureSpec;
  threshold: number;
  score: BatchScorer;
  /** Devices the model was trained on, when known: they must not be evaluated on (unless allowed). */
  trainingDevices?: ReadonlySet<string>;
}

/** Which model a device goes to (shared: the agent routes by the same rule). */
export { routeDevice };

export interface EvaluateOptions {
  models: readonly ModelUnderTest[];
  /** Rows per model call; default 1024. */
  batchSize?: number;
  /** Evaluate devices a model was trained on too (default false: MODEL_INVALID naming them). */
  allowTrainingDevices?: boolean;
  /** Thresholds of the trade-off curve, per model; default curveThresholds(model threshold). */
  curveThresholds?: (model: ModelUnderTest) => number[];
}

/** One model's results. */
export interface ModelReport {
  model: ModelRef;
  threshold: number;
  strideSamples: number;
  devices: number;
  windows: number;
  deviceDays: number;
  alarmEvents: number;
  falseAlarmEvents: number;
  falseAlarmsPerDeviceDay: number;
  /** Share of the windows holding no episode sample that were flagged (time in alarm when all is well). */
  flaggedNormalShare: number;
  /** Complete episodes (not cut off by the end of the recording), per anomaly type. */
  perType: Record<string, DetectionStats>;
  all: DetectionStats;
  /** Episodes cut off by the end of the recording, per type, reported apart. */
  cutOff: Record<string, DetectionStats>;
  /** Episodes no window of their device could see (too few samples after them). */
  unscored: number;
  /** Training devices among the evaluated ones (only with allowTrainingDevices); undefined when the training devices are unknown. */
  seenInTraining: number | undefined;
  curve: CurvePoint[];
  /** Missed complete episodes (at most 30), for diagnosis. */
  missed: (TruthEpisode & { durationS: number; maxScore: number | undefined })[];
  /** False alarms (at most 30), for diagnosis. */
  falseAlarms: AlarmEvent[];
}

export interface EvaluationReport {
  models: ModelReport[];
  /** Devices no model fits, and their episodes (not evaluated). */
  unroutedDevices: string[];
  unroutedEpisodes: number;
}

/** Default curve: 61 thresholds from an eighth to eight times the model's, evenly on a log scale, plus the model's own. */
export function curveThresholds(threshold: number): number[] {
  const base = threshold > 0 ? threshold : 1;
  const points = Array.from({ length: 61 }, (_, i) => base * 2 ** (-3 + i / 10));
  return [...new Set([...points, threshold])].sort((a, b) => a - b);
}

interface DeviceState {
  model: ModelUnderTest | undefined;
  window: FeatureWindow | undefined;
  /** Seq and ts of the samples in the window, oldest first (a ring of windowSize). */
  seqs: number[];
  tss: number[];
  position: number;
  windows: ScoredWindow[];
  firstTs: number;
  lastTs: number;
  lastSeq: number;
  samples: number;
}

/** What replaying traffic through models gives: every routed device's scored windows. */
export interface Replay {
  traces: Map<ModelUnderTest, DeviceTrace[]>;
  /** Devices no model fits. */
  unroutedDevices: string[];
}

/**
 * Replays `records` (file order) through the models as the agent would: routing, feature
 * windows (with baselines), batched scoring. A record without seq is numbered by its position in
 * the device's stream.
 *
 * @throws OutpostError MODEL_INVALID when a model fits no device of the traffic (naming the
 *   metrics the traffic lacks), when a device is one its model was trained on (unless
 *   `allowTrainingDevices`), or when a model returns the wrong number of scores.
 */
export async function replayRecords(
  records: Iterable<TelemetryRecord> | AsyncIterable<TelemetryRecord>,
  options: Pick<EvaluateOptions, 'models' | 'batchSize' | 'allowTrainingDevices'>,
): Promise<Replay> {
  const { models } = options;
  if (models.length === 0) throw new OutpostError(ErrorCode.MODEL_INVALID, 'no model to evaluate');
  // Two models of one kind would compete for the same devices: the second would see none.
  const kinds = new Map<string, ModelUnderTest>();
  for (const model of models) {
    const key = [...model.featureSpec.metrics].sort().join(',');
    const other = kinds.get(key);
    if (other !== undefined) {
      throw new OutpostError(
        ErrorCode.MODEL_INVALID,
        `models ${other.ref.name}@${other.ref.version} and ${model.ref.name}@${model.ref.version} read the same metrics (${model.featureSpec.metrics.join(', ')}), so every device would go to the first: evaluate them one at a time`,
      );
    }
    kinds.set(key, model);
  }
  const batchSize = options.batchSize ?? 1024;
  const devices = new Map<string, DeviceState>();
  const seenMetrics = new Set<string>();
  const pending = new Map<ModelUnderTest, { rows: Float32Array[]; windows: ScoredWindow[] }>(models.map((m) => [m, { rows: [], windows: [] }]));

  const flush = async (model: ModelUnderTest): Promise<void> => {
    const batch = pending.get(model)!;
    if (batch.rows.length === 0) return;
    const n = featureLength(model.featureSpec);
    const input = new Float32Array(batch.rows.length * n);
    batch.rows.forEach((row, i) => input.set(row, i * n));
    const scores = await model.score(input);
    if (scores.length !== batch.rows.length) {
      throw new OutpostError(ErrorCode.MODEL_INVALID, `model ${model.ref.name}@${model.ref.version} returned ${scores.length} scores for ${batch.rows.length} rows`);
    }
    batch.windows.forEach((w, i) => (w.score = scores[i]!));
    batch.rows = [];
    batch.windows = [];
  };
  for await (const record of records) {
    let device = devices.get(record.deviceId);
    if (device === undefined) {
      const metricNames = Object.keys(record.metrics);
      for (const name of metricNames) seenMetrics.add(name);
      const model = routeDevice(metricNames, models);
      if (model !== undefined && options.allowTrainingDevices !== true && model.trainingDevices?.has(record.deviceId) === true) {
        throw new OutpostError(
          ErrorCode.MODEL_INVALID,
          `device ${record.deviceId} of the traffic is one model ${model.ref.name}@${model.ref.version} was trained on: evaluate on devices it never saw (another scenario or device prefix), or pass --allow-training-devices to include them knowingly`,
          { details: { deviceId: record.deviceId, model: model.ref } },
        );
      }
      device = {
        model,
        window: model === undefined ? undefined : createFeatureWindow(model.featureSpec),
        seqs: [],
        tss: [],
        position: 0,
        windows: [],
        firstTs: record.ts,
        lastTs: record.ts,
        lastSeq: 0,
        samples: 0,
      };
      devices.set(record.deviceId, device);
    } else if (device.samples < 8) {
      for (const name of Object.keys(record.metrics)) seenMetrics.add(name);
    }
    const seq = record.seq ?? device.position;
    device.position++;
    device.samples++;
    device.lastTs = record.ts;
    device.lastSeq = seq;
    const { model, window } = device;
    if (model === undefined || window === undefined) continue;
    const before = window.sampleCount;
    const due = window.add(record.metrics);
    if (window.sampleCount === before) continue;
    const size = model.featureSpec.windowSize;
    device.seqs.push(seq);
    device.tss.push(record.ts);
    if (device.seqs.length > size) {
      device.seqs.shift();
      device.tss.shift();
    }
    if (!due) continue;
    const scored: ScoredWindow = { firstSeq: device.seqs[0]!, lastSeq: seq, firstTs: device.tss[0]!, lastTs: record.ts, score: Number.NaN };
    device.windows.push(scored);
    const batch = pending.get(model)!;
    batch.rows.push(window.row());
    batch.windows.push(scored);
    if (batch.rows.length >= batchSize) await flush(model);
  }
  for (const model of models) await flush(model);

  for (const model of models) {
    const routed = [...devices.values()].some((d) => d.model === model);
    if (routed) continue;
    const lacking = model.featureSpec.metrics.filter((m) => !seenMetrics.has(m));
    const ref = `${model.ref.name}@${model.ref.version}`;
    throw new OutpostError(
      ErrorCode.MODEL_INVALID,
      lacking.length > 0
        ? `model ${ref} reads the metrics ${model.featureSpec.metrics.join(', ')}; the traffic has no ${lacking.join(', ')} (it has ${[...seenMetrics].sort().join(', ') || 'no telemetry'})`
        : `model ${ref} reads the metrics ${model.featureSpec.metrics.join(', ')}; no device of the traffic sends all of them`,
      { details: { model: model.ref, metrics: model.featureSpec.metrics, lacking, trafficMetrics: [...seenMetrics].sort() } },
    );
  }


  const traces = new Map<ModelUnderTest, DeviceTrace[]>(
    models.map((model) => [
      model,
      [...devices]
        .filter(([, d]) => d.model === model)
        .map(([deviceId, d]) => ({ deviceId, windows: d.windows, lastSeq: d.lastSeq, intervalMs: d.samples > 1 ? (d.lastTs - d.firstTs) / (d.samples - 1) : 1000 })),
    ]),
  );
  return { traces, unroutedDevices: [...devices].filter(([, d]) => d.model === undefined).map(([id]) => id) };
}

/**
 * Replays `records` through the models (replayRecords) and assesses them against `truth` at
 * each model's threshold: per model, alarm events and false alarms per device-day, detection
 * while active and delay per anomaly type, cut-off episodes apart, and the trade-off curve.
 */
export async function evaluateRecords(records: Iterable<TelemetryRecord> | AsyncIterable<TelemetryRecord>, truth: readonly TruthEpisode[], options: EvaluateOptions): Promise<EvaluationReport> {
  const { models } = options;
  const replay = await replayRecords(records, options);
  const truthByDevice = episodesByDevice(truth);
  const { unroutedDevices } = replay;
  const reports = models.map((model): ModelReport => {
    const traces = replay.traces.get(model)!;
    const stride = model.featureSpec.hopSize;
    const outcome = assessTraces(traces, truthByDevice, model.threshold, stride);
    const byTypeCut = statsByType(outcome.cutOff);
    const missed = outcome.complete.filter((o: EpisodeOutcome) => !o.detected);
    return {
      model: model.ref,
      threshold: model.threshold,
      strideSamples: stride,
      devices: traces.length,
      windows: traces.reduce((n, t) => n + t.windows.length, 0),
      deviceDays: outcome.deviceDays,
      alarmEvents: outcome.alarmEvents,
      falseAlarmEvents: outcome.falseAlarmEvents,
      falseAlarmsPerDeviceDay: outcome.falseAlarmsPerDeviceDay,
      flaggedNormalShare: outcome.flaggedNormalShare,
      perType: statsByType(outcome.complete),
      all: detectionStats(outcome.complete),
      cutOff: byTypeCut,
      unscored: outcome.unscored.length,
      seenInTraining: model.trainingDevices === undefined ? undefined : traces.filter((t) => model.trainingDevices!.has(t.deviceId)).length,
      curve: tradeOffCurve(traces, truthByDevice, (options.curveThresholds ?? ((m) => curveThresholds(m.threshold)))(model), stride),
      missed: missed.slice(0, 30).map((o) => ({ ...o.episode, durationS: o.durationS, maxScore: o.maxScore })),
      falseAlarms: outcome.events.filter((e) => e.falseAlarm).slice(0, 30),
    };
  });
  const unroutedSet = new Set(unroutedDevices);
  return { models: reports, unroutedDevices, unroutedEpisodes: truth.filter((t) => unroutedSet.has(t.deviceId)).length };
}
