import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, featureLength, OutpostError, verifyModelArtifact } from '@outpost/shared';
import { readManifestFile } from '../manifest/manifest-file.js';
import { recordWithSimulator } from '../build/simulator.js';
import { createScoringSession } from '../onnx/onnx-session.js';
import { readRecordFile } from '../train/records.js';
import { evaluateRecords, readTruthFile, type EvaluationReport } from './evaluate.js';

export interface EvaluateScenarioOptions {
  scenarioFile: string;
  seed?: string | number;
  modelFile: string;
  manifestFile: string;
  /** Keep the recording here instead of a temporary folder that is removed afterwards. */
  keepDir?: string;
}

export interface ScenarioEvaluation {
  model: { name: string; version: string };
  scenario: string;
  seed: string | number | undefined;
  messages: number;
  report: EvaluationReport;
}

/**
 * Records `scenarioFile` with ground truth (outpost-sim), checks the model bytes against the
 * manifest (size, sha256), and replays the recording through the shared feature windows and
 * the model in onnxruntime (evaluateRecords).
 */
export async function evaluateScenario(options: EvaluateScenarioOptions): Promise<ScenarioEvaluation> {
  const manifest = await readManifestFile(options.manifestFile);
  const bytes = await readFile(options.modelFile).catch((cause: unknown) => {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `cannot read model ${options.modelFile}: ${(cause as Error).message}`, { cause });
  });
  verifyModelArtifact(bytes, manifest);

  if (options.keepDir !== undefined) await mkdir(options.keepDir, { recursive: true });
  const dir = options.keepDir ?? (await mkdtemp(join(tmpdir(), 'outpost-evaluate-')));
  try {
    const recordFile = join(dir, 'evaluate.jsonl');
    const truthFile = join(dir, 'evaluate.truth.jsonl');
    const recording = await recordWithSimulator({ scenarioFile: options.scenarioFile, seed: options.seed, recordFile, truthFile });
    const truth = await readTruthFile(truthFile);
    const session = await createScoringSession(bytes, {
      featureLength: featureLength(manifest.featureSpec),
      inputName: manifest.input.name,
      outputName: manifest.output.name,
    });
    try {
      const report = await evaluateRecords(readRecordFile(recordFile), truth, {
        featureSpec: manifest.featureSpec,
        threshold: manifest.threshold,
        score: (rows) => session.run(rows),
      });
      return { model: { name: manifest.name, version: manifest.version }, scenario: options.scenarioFile, seed: options.seed, messages: recording.messages, report };
    } finally {
      await session.close();
    }
  } finally {
    if (options.keepDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

function percent(x: number, digits = 1): string {
  return Number.isNaN(x) ? 'n/a' : `${(x * 100).toFixed(digits)}%`;
}

/** The human-readable evaluation table. */
export function formatEvaluation(e: ScenarioEvaluation): string {
  const r = e.report;
  const lines = [
    `model ${e.model.name}@${e.model.version} on ${e.scenario}${e.seed === undefined ? '' : ` (seed ${e.seed})`}: ${e.messages} messages, ${r.windows} windows, threshold ${r.threshold}`,
    '',
    'anomaly type      episodes  detected  rate',
    ...Object.entries(r.perType)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([type, t]) => `${type.padEnd(16)}  ${String(t.episodes).padStart(8)}  ${String(t.detected).padStart(8)}  ${percent(t.detectionRate).padStart(6)}`),
    `${'all'.padEnd(16)}  ${String(r.episodes).padStart(8)}  ${String(r.detected).padStart(8)}  ${percent(r.detectionRate).padStart(6)}`,
    '',
    `false alarms: ${r.falseAlarms} of ${r.normalWindows} windows overlapping no episode (${percent(r.falseAlarmRate, 3)})`,
    `normal-window scores: median ${r.normalScores.p50.toPrecision(4)}, p99 ${r.normalScores.p99.toPrecision(4)}, max ${r.normalScores.max.toPrecision(4)}`,
    `anomalous windows flagged: ${r.flaggedAnomalousWindows} of ${r.anomalousWindows}`,
    ...r.missed.map((m) => `missed: ${m.type} on ${m.deviceId} ${m.metric} seq ${m.startSeq}-${m.endSeq} (highest score ${m.maxScore === undefined ? 'n/a' : m.maxScore.toPrecision(4)})`),
  ];
  return `${lines.join('\n')}\n`;
}
