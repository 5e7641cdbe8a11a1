import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { featureLength, type ModelManifest } from '@outpost/shared';
import { readTruthFile, type ModelUnderTest } from '../evaluate/evaluate.js';
import { createManifest, DEFAULT_VALIDITY_MS } from '../manifest/create-manifest.js';
import { buildMaxScoreModel } from '../onnx/max-score-model.js';
import { createScoringSession, type ScoringSession } from '../onnx/onnx-session.js';
import { calibrateThresholds, DEFAULT_FALSE_ALARM_TARGET, type Calibration } from '../train/calibrate.js';
import { collectSeries, DEVICE_KINDS, trainDetector, type DeviceKind, type TrainedDetector } from '../train/detector.js';
import { createRecordStats, readRecordFile, type RecordStats } from '../train/records.js';
import { artifactFiles, DETECTOR_MODEL_VERSION } from './build-artifacts.js';
import { renderCurveSvg } from './curve-svg.js';
import { recordWithSimulator } from './simulator.js';

export interface BuildDetectorsOptions {
  /** Normal traffic of every kind (simulators/scenarios/train.yaml). */
  trainScenarioFile: string;
  /** Held-out labelled traffic of other devices (simulators/scenarios/validate.yaml): thresholds and curves. */
  validateScenarioFile: string;
  /** Where the recordings go (generated data, git-ignored: models/data). */
  dataDir: string;
  outDir: string;
  /** Default DETECTOR_MODEL_VERSION. */
  version?: string;
  /** Fixed by the build so a rebuild is byte-identical (ISO time). */
  createdAt: string;
  validityMs?: number;
  /** False alarms per device-day the thresholds are chosen for; default DEFAULT_FALSE_ALARM_TARGET. */
  falseAlarmTarget?: number;
  kinds?: readonly DeviceKind[];
}

export interface BuiltDetector {
  kind: DeviceKind;
  manifest: ModelManifest;
  files: { onnx: string; manifest: string; training: string; curve: string };
  detector: TrainedDetector;
  calibration: Calibration;
}

export interface BuildDetectorsResult {
  detectors: BuiltDetector[];
  records: { train: RecordStats; validate: RecordStats };
}

function toFileJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function describe(detector: TrainedDetector, calibration: Calibration): string {
  const lagged = detector.laggedMetrics.length === 0 ? '' : `; ${detector.laggedMetrics.join(', ')} predicted with a lag`;
  return (
    `${detector.kind.kind} devices: per-device baselines and detectors (jump, noise, run, trend, levels over 2 min / 30 min / 2 h, residual against the device's own regression on its other metrics${lagged}), ` +
    `trained on ${detector.trainingWindows} windows of ${detector.trainingDevices.length} devices; threshold for ${calibration.targetFalseAlarmsPerDeviceDay} false alarms per device-day ` +
    `on ${calibration.deviceDays.toFixed(1)} held-out device-days of ${calibration.devices} other devices`
  );
}

/**
 * Builds one model per device kind: records the training and held-out scenarios with outpost-sim,
 * trains each kind's detector on the normal traffic of its devices (trainDetector), writes its
 * graph (buildMaxScoreModel), replays the held-out traffic through every model in onnxruntime
 * to choose the thresholds (calibrateThresholds), and writes per model `<name>-<version>.onnx`,
 * the unsigned `.manifest.json`, the `.training.json` report (training devices, what was learnt,
 * held-out detection and false alarms, the curve) and the `.curve.svg` trade-off chart. Same
 * scenarios and options give byte-identical files.
 */
export async function buildDetectors(options: BuildDetectorsOptions): Promise<BuildDetectorsResult> {
  const version = options.version ?? DETECTOR_MODEL_VERSION;
  const kinds = options.kinds ?? DEVICE_KINDS;
  const target = options.falseAlarmTarget ?? DEFAULT_FALSE_ALARM_TARGET;
  await mkdir(options.dataDir, { recursive: true });
  await mkdir(options.outDir, { recursive: true });
  const trainFile = join(options.dataDir, 'train.jsonl');
  const validateFile = join(options.dataDir, 'validate.jsonl');
  const validateTruth = join(options.dataDir, 'validate.truth.jsonl');
  await recordWithSimulator({ scenarioFile: options.trainScenarioFile, recordFile: trainFile, truthFile: join(options.dataDir, 'train.truth.jsonl') });
  await recordWithSimulator({ scenarioFile: options.validateScenarioFile, recordFile: validateFile, truthFile: validateTruth });

  const trainStats = createRecordStats();
  const series = await collectSeries(readRecordFile(trainFile, trainStats), kinds);
  const trained = kinds.map((kind) => ({ kind, detector: trainDetector(kind, series.get(kind) ?? []) }));

  const createdMs = Date.parse(options.createdAt);
  const createdAt = new Date(createdMs).toISOString();
  const expiresAt = new Date(createdMs + (options.validityMs ?? DEFAULT_VALIDITY_MS)).toISOString();
  const graphs = trained.map(({ kind, detector }) => buildMaxScoreModel({ upper: detector.upper, lower: detector.lower, name: kind.model, metadata: { name: kind.model, version } }));

  const sessions: ScoringSession[] = [];
  let calibrations: Calibration[];
  const validateStats = createRecordStats();
  try {
    const models: ModelUnderTest[] = [];
    for (const [i, { kind, detector }] of trained.entries()) {
      const session = await createScoringSession(graphs[i]!, { featureLength: featureLength(detector.featureSpec) });
      sessions.push(session);
      models.push({ ref: { name: kind.model, version }, featureSpec: detector.featureSpec, threshold: 1, score: (rows) => session.run(rows) });
    }
    calibrations = await calibrateThresholds(models, readRecordFile(validateFile, validateStats), await readTruthFile(validateTruth), target);
  } finally {
    for (const session of sessions) await session.close();
  }

  const detectors: BuiltDetector[] = [];
  for (const [i, { kind, detector }] of trained.entries()) {
    const calibration = calibrations[i]!;
    const onnx = graphs[i]!;
    const manifest = createManifest({
      name: kind.model,
      version,
      description: describe(detector, calibration),
      createdAt,
      expiresAt,
      onnx,
      featureSpec: detector.featureSpec,
      threshold: calibration.threshold,
      thresholdCalibration: {
        targetFalseAlarmsPerDeviceDay: target,
        falseAlarmsPerDeviceDay: calibration.falseAlarmsPerDeviceDay,
        heldOutDeviceDays: calibration.deviceDays,
        heldOutDevices: calibration.devices,
      },
      testVectors: detector.testVectors,
    });
    const files = artifactFiles(options.outDir, kind.model, version);
    await writeFile(files.onnx, onnx);
    await writeFile(files.manifest, toFileJson(manifest));
    await writeFile(
      files.training,
      toFileJson({
        model: `${kind.model}@${version}`,
        kind: kind.kind,
        trainingScenario: basename(options.trainScenarioFile),
        trainingDevices: detector.trainingDevices,
        trainingWindows: detector.trainingWindows,
        laggedMetrics: detector.laggedMetrics,
        lagGains: detector.lagGains,
        tails: detector.tails,
        scoreQuantiles: detector.scoreQuantiles,
        threshold: calibration.threshold,
        heldOut: {
          scenario: basename(options.validateScenarioFile),
          devices: calibration.devices,
          deviceDays: calibration.deviceDays,
          targetFalseAlarmsPerDeviceDay: target,
          falseAlarmEvents: calibration.falseAlarmEvents,
          falseAlarmsPerDeviceDay: calibration.falseAlarmsPerDeviceDay,
          flaggedNormalShare: calibration.flaggedNormalShare,
          perType: calibration.perType,
          all: calibration.all,
          curve: calibration.curve,
        },
      }),
    );
    await writeFile(files.curve, renderCurveSvg(calibration.curve, calibration.threshold, `${kind.model}@${version} on held-out ${basename(options.validateScenarioFile)} (${calibration.devices} devices)`));
    detectors.push({ kind, manifest, files: { onnx: files.onnx, manifest: files.manifest, training: files.training, curve: files.curve }, detector, calibration });
  }
  return { detectors, records: { train: trainStats, validate: validateStats } };
}
