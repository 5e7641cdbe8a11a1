// Public surface of @outpost/models: the ONNX builders and their JavaScript reference, manifest
// creation, training and evaluation on recordings, the shipped artifacts' paths, and a small
// test model for other packages' tests. Nothing here loads onnxruntime-node or spawns a process.
export {
  buildConstantScoreModel,
  buildExternalDataModel,
  buildPcaModel,
  scorePcaReference,
  DEFAULT_INPUT_NAME,
  DEFAULT_OPSET,
  DEFAULT_OUTPUT_NAME,
  EXTERNAL_DATA_LOCATION,
  type PcaModelOptions,
} from './onnx/pca-model.js';
export { readOnnxModelSummary, type OnnxModelSummary } from './onnx/onnx-writer.js';
export { createManifest, DEFAULT_TEST_TOLERANCE, DEFAULT_VALIDITY_MS, type CreateManifestInput } from './manifest/create-manifest.js';
export { readManifestFile } from './manifest/manifest-file.js';
export { defaultSignedFile, DEV_KEY_FILE_NAME, loadOrCreateSigningKey, signManifestFile, type SigningKeyFile } from './manifest/sign-file.js';
export { makeTestModel, TEST_COMPONENTS, TEST_FEATURE_SPEC, type TestModel, type TestModelOptions } from './manifest/test-model.js';
export { chooseComponentCount, covarianceMatrix, jacobiEigen, scoringComponents, ComponentWeighting, type EigenDecomposition } from './train/pca.js';
export { createRecordStats, parseRecordLine, readRecordFile, SkipReason, type RecordStats, type TelemetryRecord } from './train/records.js';
export {
  DEFAULT_FEATURE_CHOICE,
  DEFAULT_THRESHOLD_MARGIN,
  DEFAULT_THRESHOLD_QUANTILE,
  DEFAULT_VARIANCE_RATIO,
  trainFromRecords,
  type FeatureChoice,
  type TrainedModel,
  type TrainOptions,
} from './train/train.js';
export {
  curveThresholds,
  evaluateRecords,
  readTruthFile,
  replayRecords,
  routeDevice,
  type BatchScorer,
  type EvaluationReport,
  type ModelReport,
  type ModelUnderTest,
  type TruthEpisode,
} from './evaluate/evaluate.js';
export {
  assessTrace,
  assessTraces,
  detectionStats,
  flaggedRuns,
  statsByType,
  thresholdForFalseAlarmRate,
  tradeOffCurve,
  SHORT_EPISODE_S,
  type AlarmEvent,
  type CurvePoint,
  type DetectionStats,
  type DeviceTrace,
  type EpisodeOutcome,
  type ScoredWindow,
} from './evaluate/alarms.js';
export { buildMaxScoreModel, scoreMaxReference, EVIDENCE_OUTPUT_NAME, type MaxScoreModelOptions } from './onnx/max-score-model.js';
export {
  collectSeries,
  trainDetector,
  DEFAULT_BASELINE,
  DETECTOR_FEATURES,
  DEVICE_KINDS,
  ONE_SIDED_FEATURES,
  type DeviceKind,
  type DeviceSeries,
  type TrainedDetector,
} from './train/detector.js';
export { calibrateThresholds, DEFAULT_FALSE_ALARM_TARGET, type Calibration } from './train/calibrate.js';
export { ARTIFACTS_DIR, artifactFiles, DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION, DETECTOR_MODEL_VERSION, FLAG_ALL_MODEL_NAME } from './build/build-artifacts.js';
