import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { featureLength, type ModelManifest } from '@outpost/shared';
import { createManifest, DEFAULT_VALIDITY_MS } from '../manifest/create-manifest.js';
import { buildConstantScoreModel, buildPcaModel } from '../onnx/pca-model.js';
import { createRecordStats, readRecordFile, type RecordStats, type TelemetryRecord } from '../train/records.js';
import { trainFromRecords, type TrainedModel, type TrainOptions } from '../train/train.js';
import { recordWithSimulator } from './simulator.js';

/** The shipped default model. */
export const DEFAULT_MODEL_NAME = 'anomaly-pca';
export const DEFAULT_MODEL_VERSION = '1.0.0';
/** Version of the per-kind models (build-detectors.ts; their names are DEVICE_KINDS' `model`). */
export const DETECTOR_MODEL_VERSION = '2.0.0';
/** The deliberately bad model shipped beside it (flags every window). */
export const FLAG_ALL_MODEL_NAME = 'anomaly-flag-all';
/** The bad model scores every row this many times the good model's threshold. */
const FLAG_ALL_SCORE_FACTOR = 10;

/** models/artifacts: where the shipped models live (from models/src/build or models/dist/build). */
export const ARTIFACTS_DIR = fileURLToPath(new URL('../../artifacts/', import.meta.url));

/**
 * File names of a model's artifacts: `<name>-<version>.onnx`, `.manifest.json` (unsigned),
 * `.signed.json` (what `sign` writes), `.training.json` (the training report), `.curve.svg`
 * (the detection vs false-alarm trade-off, per-kind models only).
 */
export function artifactFiles(dir: string, name: string, version: string = DEFAULT_MODEL_VERSION): { onnx: string; manifest: string; signed: string; training: string; curve: string } {
  const base = join(dir, `${name}-${version}`);
  return { onnx: `${base}.onnx`, manifest: `${base}.manifest.json`, signed: `${base}.signed.json`, training: `${base}.training.json`, curve: `${base}.curve.svg` };
}

export interface BuildArtifactsOptions {
  /** Normal-traffic scenario to record and train on (simulators/scenarios/train-normal.yaml). */
  scenarioFile: string;
  /** Where the recording goes (generated data, git-ignored: models/data). */
  dataDir: string;
  /** Where the artifacts go (models/artifacts). */
  outDir: string;
  /** Default DEFAULT_MODEL_VERSION. */
  version?: string;
  /** Fixed by the build so a rebuild is byte-identical (ISO time). */
  createdAt: string;
  /** Default DEFAULT_VALIDITY_MS (365 days). */
  validityMs?: number;
  train?: TrainOptions;
}

export interface BuiltModel {
  manifest: ModelManifest;
  files: { onnx: string; manifest: string };
}

export interface BuildArtifactsResult {
  model: BuiltModel & { training: string };
  flagAll: BuiltModel;
  trained: TrainedModel;
  records: RecordStats;
}

/** Passes records through, noting every device id seen into `ids`. */
async function* withDeviceIds(records: AsyncIterable<TelemetryRecord>, ids: Set<string>): AsyncGenerator<TelemetryRecord> {
  for await (const record of records) {
    ids.add(record.deviceId);
    yield record;
  }
}

/** Stable JSON for a file: two-space indent, trailing newline. */
function toFileJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/**
 * Reproduces the shipped artifacts: records the scenario with outpost-sim, trains the PCA
 * model (trainFromRecords), writes `<name>-<version>.onnx`, its unsigned `.manifest.json` and a
 * `.training.json` report, plus the flag-everything model (`anomaly-flag-all`) with the same
 * feature spec and threshold. Same scenario and options give byte-identical files.
 */
export async function buildArtifacts(options: BuildArtifactsOptions): Promise<BuildArtifactsResult> {
  const version = options.version ?? DEFAULT_MODEL_VERSION;
  await mkdir(options.dataDir, { recursive: true });
  await mkdir(options.outDir, { recursive: true });
  const recordFile = join(options.dataDir, 'train-normal.jsonl');
  await recordWithSimulator({ scenarioFile: options.scenarioFile, recordFile, truthFile: join(options.dataDir, 'train-normal.truth.jsonl') });
  const records = createRecordStats();
  const trainingDevices = new Set<string>();
  const trained = await trainFromRecords(withDeviceIds(readRecordFile(recordFile, records), trainingDevices), options.train);

  const createdMs = Date.parse(options.createdAt);
  const createdAt = new Date(createdMs).toISOString();
  const expiresAt = new Date(createdMs + (options.validityMs ?? DEFAULT_VALIDITY_MS)).toISOString();

  const onnx = buildPcaModel({ components: trained.components, featureLength: featureLength(trained.featureSpec), metadata: { name: DEFAULT_MODEL_NAME, version } });
  const manifest = createManifest({
    name: DEFAULT_MODEL_NAME,
    version,
    description:
      `PCA anomaly score (${trained.weighting} weighting, k = ${trained.k} of ${featureLength(trained.featureSpec)}, ` +
      `${(trained.explainedVariance * 100).toFixed(1)}% of the variance) trained on ${trained.trainingRows} windows of ${trained.devices} devices of normal traffic`,
    createdAt,
    expiresAt,
    onnx,
    featureSpec: trained.featureSpec,
    threshold: trained.threshold,
    testVectors: trained.testVectors,
  });
  const files = artifactFiles(options.outDir, DEFAULT_MODEL_NAME, version);
  await writeFile(files.onnx, onnx);
  await writeFile(files.manifest, toFileJson(manifest));
  await writeFile(
    files.training,
    toFileJson({
      model: `${DEFAULT_MODEL_NAME}@${version}`,
      records,
      trainingRows: trained.trainingRows,
      devices: trained.devices,
      // evaluate refuses to judge the model on these (a device's physics follows from its id).
      trainingDevices: [...trainingDevices],
      weighting: trained.weighting,
      k: trained.k,
      explainedVariance: trained.explainedVariance,
      eigenvalues: trained.eigenvalues,
      scoreQuantiles: trained.scoreQuantiles,
      threshold: trained.threshold,
    }),
  );

  const flagScore = Math.fround(trained.threshold * FLAG_ALL_SCORE_FACTOR);
  const flagOnnx = buildConstantScoreModel(featureLength(trained.featureSpec), flagScore, { name: FLAG_ALL_MODEL_NAME, version });
  const flagManifest = createManifest({
    name: FLAG_ALL_MODEL_NAME,
    version,
    description: `deliberately bad model for rollout-gate tests: scores every window ${flagScore}, ${FLAG_ALL_SCORE_FACTOR} x the threshold, so it flags everything`,
    createdAt,
    expiresAt,
    onnx: flagOnnx,
    featureSpec: trained.featureSpec,
    threshold: trained.threshold,
    testVectors: trained.testVectors.map((v) => ({ input: v.input, expectedScore: flagScore })),
  });
  const flagFiles = artifactFiles(options.outDir, FLAG_ALL_MODEL_NAME, version);
  await writeFile(flagFiles.onnx, flagOnnx);
  await writeFile(flagFiles.manifest, toFileJson(flagManifest));

  return {
    model: { manifest, files: { onnx: files.onnx, manifest: files.manifest }, training: files.training },
    flagAll: { manifest: flagManifest, files: { onnx: flagFiles.onnx, manifest: flagFiles.manifest } },
    trained,
    records,
  };
}
