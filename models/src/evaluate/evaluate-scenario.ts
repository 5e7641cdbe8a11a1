import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ErrorCode, featureLength, OutpostError, verifyModelArtifact, type ModelManifest } from '@outpost/shared';
import { readManifestFile } from '../manifest/manifest-file.js';
import { recordWithSimulator } from '../build/simulator.js';
import { createScoringSession, type ScoringSession } from '../onnx/onnx-session.js';
import { readRecordFile } from '../train/records.js';
import { evaluateRecords, readTruthFile, type ModelReport, type ModelUnderTest } from './evaluate.js';

/** A model's two files. */
export interface ModelFiles {
  modelFile: string;
  manifestFile: string;
}

export interface EvaluateScenarioOptions {
  scenarioFile: string;
  /** Overrides the scenario's seed. */
  seed?: number;
  models: readonly ModelFiles[];
  /** Keep the recording here instead of a temporary folder that is removed afterwards. */
  keepDir?: string;
  /** Evaluate devices a model was trained on too. */
  allowTrainingDevices?: boolean;
}

export interface ScenarioEvaluation {
  scenario: string;
  seed: number | undefined;
  messages: number;
  models: (ModelReport & { trainingDevicesKnown: boolean })[];
  unroutedDevices: string[];
  unroutedEpisodes: number;
}

/**
 * The training report written next to a manifest (`<name>-<version>.training.json`), if there
 * is one: the devices the model was trained on. Undefined when there is no report or it names no devices.
 */
export async function readTrainingDevices(manifestFile: string, manifest: Pick<ModelManifest, 'name' | 'version'>): Promise<Set<string> | undefined> {
  const file = join(dirname(manifestFile), `${manifest.name}-${manifest.version}.training.json`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `training report ${file} is not JSON: ${(cause as Error).message}`, { cause });
  }
  const devices = (value as { trainingDevices?: unknown }).trainingDevices;
  if (devices === undefined) return undefined;
  if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `training report ${file}: trainingDevices must be a list of device ids`);
  }
  return new Set(devices as string[]);
}

/**
 * Records `scenarioFile` with ground truth (outpost-sim), checks every model's bytes against its
 * manifest (size, sha256), and replays the recording through the models in onnxruntime, each
 * device to the model of its kind (evaluateRecords).
 */
export async function evaluateScenario(options: EvaluateScenarioOptions): Promise<ScenarioEvaluation> {
  if (options.models.length === 0) throw new OutpostError(ErrorCode.MODEL_INVALID, 'no model to evaluate');
  const loaded = await Promise.all(
    options.models.map(async (files) => {
      const manifest = await readManifestFile(files.manifestFile);
      const bytes = await readFile(files.modelFile).catch((cause: unknown) => {
        throw new OutpostError(ErrorCode.MODEL_INVALID, `cannot read model ${files.modelFile}: ${(cause as Error).message}`, { cause });
      });
      verifyModelArtifact(bytes, manifest);
      return { files, manifest, bytes, trainingDevices: await readTrainingDevices(files.manifestFile, manifest) };
    }),
  );
  const names = loaded.map((l) => `${l.manifest.name}@${l.manifest.version}`);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate !== undefined) throw new OutpostError(ErrorCode.MODEL_INVALID, `model ${duplicate} is given twice`);

  if (options.keepDir !== undefined) await mkdir(options.keepDir, { recursive: true });
  const dir = options.keepDir ?? (await mkdtemp(join(tmpdir(), 'outpost-evaluate-')));
  const sessions: ScoringSession[] = [];
  try {
    const stem = basename(options.scenarioFile).replace(/\.(ya?ml|json)$/i, '');
    const recordFile = join(dir, `${stem}.jsonl`);
    const truthFile = join(dir, `${stem}.truth.jsonl`);
    const recording = await recordWithSimulator({ scenarioFile: options.scenarioFile, seed: options.seed, recordFile, truthFile });
    const truth = await readTruthFile(truthFile);
    const models: ModelUnderTest[] = [];
    for (const { manifest, bytes, trainingDevices } of loaded) {
      const session = await createScoringSession(bytes, { featureLength: featureLength(manifest.featureSpec), inputName: manifest.input.name, outputName: manifest.output.name });
      sessions.push(session);
      models.push({
        ref: { name: manifest.name, version: manifest.version },
        featureSpec: manifest.featureSpec,
        threshold: manifest.threshold,
        score: (rows) => session.run(rows),
        ...(trainingDevices === undefined ? {} : { trainingDevices }),
      });
    }
    const report = await evaluateRecords(readRecordFile(recordFile), truth, { models, allowTrainingDevices: options.allowTrainingDevices === true });
    return {
      scenario: options.scenarioFile,
      seed: options.seed,
      messages: recording.messages,
      models: report.models.map((m, i) => ({ ...m, trainingDevicesKnown: loaded[i]!.trainingDevices !== undefined })),
      unroutedDevices: report.unroutedDevices,
      unroutedEpisodes: report.unroutedEpisodes,
    };
  } finally {
    for (const session of sessions) await session.close();
    if (options.keepDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}
