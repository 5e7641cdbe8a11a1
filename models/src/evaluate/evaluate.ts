import { readFile } from 'node:fs/promises';
import { createFeatureWindow, ErrorCode, featureLength, GroundTruthEpisodeSchema, OutpostError, type FeatureSpec, type GroundTruthEpisode } from '@outpost/shared';
import type { TelemetryRecord } from '../train/records.js';
import { quantileOfSorted } from '../train/train.js';

/**
 * Evaluation of a model on recorded traffic with ground truth: the agent's per-device windows
 * (the shared feature code, the manifest's spec and hop), the model's scores, the manifest's
 * threshold, then per anomaly type how many episodes were caught and how many windows without
 * any anomalous sample were flagged.
 */

export type TruthEpisode = GroundTruthEpisode;

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

/** One window the agent would score: its device, the seqs of its first and last samples, its row. */
interface ScoredWindow {
  deviceId: string;
  firstSeq: number;
  lastSeq: number;
  row: Float32Array;
  score: number;
}

export interface TypeResult {
  episodes: number;
  detected: number;
  /** detected / episodes; NaN when there were none. */
  detectionRate: number;
}

export interface EvaluationReport {
  windows: number;
  /** Windows holding no anomalous sample. */
  normalWindows: number;
  falseAlarms: number;
  falseAlarmRate: number;
  /** Windows holding at least one anomalous sample, and how many of them were flagged. */
  anomalousWindows: number;
  flaggedAnomalousWindows: number;
  episodes: number;
  detected: number;
  detectionRate: number;
  perType: Record<string, TypeResult>;
  threshold: number;
  /** Episodes no flagged window overlapped (at most 20), for diagnosis. */
  missed: (TruthEpisode & { maxScore: number | undefined })[];
  /** Normal-window scores: median, 99th percentile, highest. */
  normalScores: { p50: number; p99: number; max: number };
}

export interface EvaluateOptions {
  featureSpec: FeatureSpec;
  threshold: number;
  score: BatchScorer;
  /** Rows per model call; default 512. */
  batchSize?: number;
}

/**
 * Replays `records` (file order) through per-device feature windows and the model.
 * A window counts for an episode of its device when it holds at least one of the episode's
 * samples (its seq range overlaps [startSeq, endSeq]): the windows that end up to one window
 * length after the episode's last sample. An episode is detected when one of those is
 * flagged (score > threshold). Windows overlapping no episode are the normal windows; the
 * false-alarm rate is the share of them flagged. A record without seq is numbered by its
 * position in the device's stream.
 */
export async function evaluateRecords(
  records: Iterable<TelemetryRecord> | AsyncIterable<TelemetryRecord>,
  truth: readonly TruthEpisode[],
  options: EvaluateOptions,
): Promise<EvaluationReport> {
  const { featureSpec, threshold } = options;
  const n = featureLength(featureSpec);
  const batchSize = options.batchSize ?? 512;
  const devices = new Map<string, { window: ReturnType<typeof createFeatureWindow>; seqs: number[]; position: number }>();
  const windows: ScoredWindow[] = [];
  let pending: ScoredWindow[] = [];

  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const batch = new Float32Array(pending.length * n);
    pending.forEach((w, i) => batch.set(w.row, i * n));
    const scores = await options.score(batch);
    if (scores.length !== pending.length) throw new OutpostError(ErrorCode.MODEL_INVALID, `model returned ${scores.length} scores for ${pending.length} rows`);
    pending.forEach((w, i) => (w.score = scores[i]!));
    pending = [];
  };

  for await (const record of records) {
    let device = devices.get(record.deviceId);
    if (device === undefined) {
      device = { window: createFeatureWindow(featureSpec), seqs: [], position: 0 };
      devices.set(record.deviceId, device);
    }
    const seq = record.seq ?? device.position;
    device.position++;
    const before = device.window.sampleCount;
    const due = device.window.add(record.metrics);
    if (device.window.sampleCount === before) continue;
    device.seqs.push(seq);
    if (device.seqs.length > featureSpec.windowSize) device.seqs.shift();
    if (!due) continue;
    const scored: ScoredWindow = { deviceId: record.deviceId, firstSeq: device.seqs[0]!, lastSeq: seq, row: device.window.row(), score: Number.NaN };
    windows.push(scored);
    pending.push(scored);
    if (pending.length >= batchSize) await flush();
  }
  await flush();

  const byDevice = new Map<string, { episode: TruthEpisode; detected: boolean; maxScore: number | undefined }[]>();
  for (const episode of truth) {
    const list = byDevice.get(episode.deviceId) ?? [];
    list.push({ episode, detected: false, maxScore: undefined });
    byDevice.set(episode.deviceId, list);
  }
  let normalWindows = 0;
  let falseAlarms = 0;
  let anomalousWindows = 0;
  let flaggedAnomalousWindows = 0;
  const normalScores: number[] = [];
  for (const w of windows) {
    const flagged = w.score > threshold;
    let anomalous = false;
    for (const entry of byDevice.get(w.deviceId) ?? []) {
      if (w.lastSeq < entry.episode.startSeq || w.firstSeq > entry.episode.endSeq) continue;
      anomalous = true;
      entry.maxScore = Math.max(entry.maxScore ?? -Infinity, w.score);
      if (flagged) entry.detected = true;
    }
    if (anomalous) {
      anomalousWindows++;
      if (flagged) flaggedAnomalousWindows++;
    } else {
      normalWindows++;
      normalScores.push(w.score);
      if (flagged) falseAlarms++;
    }
  }

  const perType: Record<string, TypeResult> = {};
  const entries = [...byDevice.values()].flat();
  for (const { episode, detected } of entries) {
    const result = (perType[episode.type] ??= { episodes: 0, detected: 0, detectionRate: Number.NaN });
    result.episodes++;
    if (detected) result.detected++;
  }
  for (const result of Object.values(perType)) result.detectionRate = result.detected / result.episodes;
  const detected = entries.filter((e) => e.detected).length;
  const sortedNormal = Float64Array.from(normalScores).sort();
  return {
    windows: windows.length,
    normalWindows,
    falseAlarms,
    falseAlarmRate: normalWindows === 0 ? Number.NaN : falseAlarms / normalWindows,
    anomalousWindows,
    flaggedAnomalousWindows,
    episodes: entries.length,
    detected,
    detectionRate: entries.length === 0 ? Number.NaN : detected / entries.length,
    perType,
    threshold,
    missed: entries
      .filter((e) => !e.detected)
      .slice(0, 20)
      .map((e) => ({ ...e.episode, maxScore: e.maxScore })),
    normalScores: { p50: quantileOfSorted(sortedNormal, 0.5), p99: quantileOfSorted(sortedNormal, 0.99), max: sortedNormal[sortedNormal.length - 1] ?? Number.NaN },
  };
}
