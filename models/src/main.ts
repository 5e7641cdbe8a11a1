#!/usr/bin/env node
// Composition root of the models CLI (npm run -w models build | sign | evaluate): the only
// file that reads argv and the environment, writes to stdout/stderr and sets the exit code.
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ExitCode, isOutpostError } from '@outpost/shared';
import { artifactFiles, buildArtifacts, DEFAULT_MODEL_VERSION, DETECTOR_MODEL_VERSION } from './build/build-artifacts.js';
import { REPO_ROOT, simulatorScenario } from './build/simulator.js';
import { DEFAULT_VALIDITY_MS } from './manifest/create-manifest.js';
import { formatCurve, formatEvaluation } from './evaluate/format.js';
import { DEFAULT_FALSE_ALARM_TARGET } from './train/calibrate.js';
import { DEVICE_KINDS } from './train/detector.js';
import { DEV_KEY_FILE_NAME, loadOrCreateSigningKey, signManifestFile } from './manifest/sign-file.js';

/**
 * createdAt of the shipped artifacts: fixed, so `npm run -w models build` is byte-identical
 * every time; move it (with --created-at) when the shipped model is retrained or renewed.
 */
const DEFAULT_CREATED_AT = '2026-11-25T00:00:00.000Z';
const DAY_MS = 24 * 60 * 60 * 1000;

// npm runs workspace scripts in the workspace folder; paths a user types are relative to
// where they typed them (INIT_CWD), so `--scenario simulators/...` works from the repo root.
const userCwd = process.env['INIT_CWD'] ?? process.cwd();
const userPath = (p: string): string => resolve(userCwd, p);
const repoPath = (p: string): string => resolve(REPO_ROOT, p);

function isoTimeArg(text: string): string {
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new InvalidArgumentError('must be an ISO 8601 time such as 2026-11-25T00:00:00Z');
  return new Date(ms).toISOString();
}

function positiveArg(text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new InvalidArgumentError('must be a positive number');
  return value;
}

function print(json: boolean | undefined, value: unknown, text: string): void {
  process.stdout.write(json === true ? `${JSON.stringify(value)}\n` : text);
}

const program = new Command().name('outpost-models').description('Outpost models: build the shipped anomaly models, sign manifests, evaluate models on simulated scenarios');

program
  .command('build')
  .description(
    'record traffic with outpost-sim and build the shipped models: one anomaly model per device kind (per-device baselines and detectors, threshold chosen on held-out traffic, trade-off curve as SVG) and the original PCA model with its flag-everything twin',
  )
  .option('--scenario <file>', 'normal traffic of the PCA model', simulatorScenario('train-normal.yaml'))
  .option('--train <file>', 'normal traffic of every kind, for the per-kind models', simulatorScenario('train.yaml'))
  .option('--validate <file>', 'held-out labelled traffic of other devices: thresholds and curves of the per-kind models', simulatorScenario('validate.yaml'))
  .addOption(new Option('--only <models>', 'build only these').choices(['pca', 'detectors']))
  .option('--data <dir>', 'where the recordings go (generated, git-ignored)', repoPath('models/data'))
  .option('--out <dir>', 'where the artifacts go', repoPath('models/artifacts'))
  .option('--model-version <version>', 'version of the PCA model', DEFAULT_MODEL_VERSION)
  .option('--detector-version <version>', 'version of the per-kind models', DETECTOR_MODEL_VERSION)
  .option('--false-alarms <perDeviceDay>', 'false alarms per device-day the per-kind thresholds are chosen for', positiveArg, DEFAULT_FALSE_ALARM_TARGET)
  .option('--created-at <time>', 'createdAt of the manifests (fixed for reproducible bytes)', isoTimeArg, DEFAULT_CREATED_AT)
  .option('--valid-days <days>', 'expiresAt = createdAt + this many days', positiveArg, DEFAULT_VALIDITY_MS / DAY_MS)
  .option('--json', 'print a JSON summary')
  .action(
    async (o: {
      scenario: string;
      train: string;
      validate: string;
      only?: 'pca' | 'detectors';
      data: string;
      out: string;
      modelVersion: string;
      detectorVersion: string;
      falseAlarms: number;
      createdAt: string;
      validDays: number;
      json?: boolean;
    }) => {
      const lines: string[] = [];
      let summary: Record<string, unknown> = {};
      if (o.only !== 'detectors') {
        const result = await buildArtifacts({
          scenarioFile: userPath(o.scenario),
          dataDir: userPath(o.data),
          outDir: userPath(o.out),
          version: o.modelVersion,
          createdAt: o.createdAt,
          validityMs: o.validDays * DAY_MS,
        });
        const { trained, model, flagAll } = result;
        summary = {
          model: model.files,
          flagAll: flagAll.files,
          training: model.training,
          threshold: trained.threshold,
          k: trained.k,
          featureLength: model.manifest.input.dims[1],
          trainingRows: trained.trainingRows,
          devices: trained.devices,
          skipped: result.records.skipped,
        };
        lines.push(
          `trained ${model.manifest.name}@${model.manifest.version} on ${trained.trainingRows} windows of ${trained.devices} devices: k = ${trained.k} of ${String(summary['featureLength'])}, threshold ${trained.threshold.toPrecision(6)}`,
          `  ${model.files.onnx}\n  ${model.files.manifest}\n  ${model.training}\n  ${flagAll.files.onnx}\n  ${flagAll.files.manifest}`,
        );
      }
      if (o.only !== 'pca') {
        // onnxruntime-node's native library loads only for the commands that run a model.
        const { buildDetectors } = await import('./build/build-detectors.js');
        const result = await buildDetectors({
          trainScenarioFile: userPath(o.train),
          validateScenarioFile: userPath(o.validate),
          dataDir: userPath(o.data),
          outDir: userPath(o.out),
          version: o.detectorVersion,
          createdAt: o.createdAt,
          validityMs: o.validDays * DAY_MS,
          falseAlarmTarget: o.falseAlarms,
        });
        summary['detectors'] = result.detectors.map((d) => ({
          model: { name: d.manifest.name, version: d.manifest.version },
          kind: d.kind.kind,
          metrics: d.kind.metrics,
          files: d.files,
          threshold: d.manifest.threshold,
          featureLength: d.manifest.input.dims[1],
          trainingDevices: d.detector.trainingDevices.length,
          trainingWindows: d.detector.trainingWindows,
          laggedMetrics: d.detector.laggedMetrics,
          heldOut: { devices: d.calibration.devices, deviceDays: d.calibration.deviceDays, falseAlarmsPerDeviceDay: d.calibration.falseAlarmsPerDeviceDay, detectionRate: d.calibration.all.detectionRate },
        }));
        for (const d of result.detectors) {
          lines.push(
            `trained ${d.manifest.name}@${d.manifest.version} (${d.kind.kind}: ${d.kind.metrics.join(', ')}) on ${d.detector.trainingWindows} windows of ${d.detector.trainingDevices.length} devices; ` +
              `threshold ${d.manifest.threshold.toPrecision(6)}: ${d.calibration.falseAlarmsPerDeviceDay.toFixed(2)} false alarms per device-day and ${(d.calibration.all.detectionRate * 100).toFixed(1)}% of episodes detected while active on ${d.calibration.deviceDays.toFixed(1)} held-out device-days`,
            ...formatCurve(d.calibration.curve, d.manifest.threshold, 6),
            `  ${d.files.onnx}\n  ${d.files.manifest}\n  ${d.files.training}\n  ${d.files.curve}`,
          );
        }
      }
      print(o.json, summary, `${lines.join('\n')}\n`);
    },
  );

program
  .command('sign')
  .description(`sign a manifest with an ed25519 key; without --key the dev key .keys/${DEV_KEY_FILE_NAME} (created on first use)`)
  .requiredOption('--manifest <file>', 'unsigned manifest (.manifest.json)')
  .option('--key <file>', 'PKCS#8 PEM private key')
  .option('--key-id <id>', 'key id agents know the public key by (default: the key file name)')
  .option('--out <file>', 'signed manifest (default: <name>.signed.json next to the manifest)')
  .option('--json', 'print a JSON summary')
  .action(async (o: { manifest: string; key?: string; keyId?: string; out?: string; json?: boolean }) => {
    const keyFile = o.key === undefined ? repoPath(`.keys/${DEV_KEY_FILE_NAME}`) : userPath(o.key);
    const { outFile, signed, key } = await signManifestFile({
      manifestFile: userPath(o.manifest),
      key: () => loadOrCreateSigningKey(keyFile, { generate: o.key === undefined, ...(o.keyId === undefined ? {} : { keyId: o.keyId }) }),
      ...(o.out === undefined ? {} : { outFile: userPath(o.out) }),
    });
    print(
      o.json,
      { signedManifest: outFile, keyFile, keyGenerated: key.generated, trustedKey: key.trustedKey, model: { name: signed.manifest.name, version: signed.manifest.version } },
      `${key.generated ? `generated signing key ${keyFile}\n` : ''}signed ${signed.manifest.name}@${signed.manifest.version} with key ${key.keyId}: ${outFile}\n` +
        `agents trust it with (inference.trustedKeys):\n  - keyId: ${key.keyId}\n    publicKey: |\n${key.trustedKey.publicKey
          .trim()
          .split('\n')
          .map((l) => `      ${l}`)
          .join('\n')}\n`,
    );
  });

/** Collects a repeatable option's values. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function integerArg(text: string): number {
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(Number(text))) throw new InvalidArgumentError(`must be an integer such as 2003, got ${JSON.stringify(text)}`);
  return Number(text);
}

program
  .command('evaluate')
  .description(
    'record a scenario with ground truth and replay it through the models, each device to the model of its kind: detection while active and delay per anomaly type, false alarms per device-day, the trade-off curve',
  )
  .option('--scenario <file>', 'scenario with anomalies', simulatorScenario('evaluate.yaml'))
  .option('--seed <integer>', "overrides the scenario's seed", integerArg)
  .option('--model <file>', '.onnx file, repeatable (default: the shipped model of every kind)', collect)
  .option('--manifest <file>', 'its manifest, unsigned or signed, one per --model in the same order', collect)
  .option('--allow-training-devices', 'evaluate on devices a model was trained on too (by default that is refused)')
  .option('--keep <dir>', 'keep the recording in this folder')
  .option('--json', 'print the result as JSON')
  .action(async (o: { scenario: string; seed?: number; model?: string[]; manifest?: string[]; allowTrainingDevices?: boolean; keep?: string; json?: boolean }) => {
    const [models, manifests] = [o.model ?? [], o.manifest ?? []];
    if (models.length !== manifests.length) {
      program.error(`give one --manifest per --model (got ${models.length} --model and ${manifests.length} --manifest), or neither for the shipped models`, { exitCode: ExitCode.configInvalid });
    }
    // onnxruntime-node's native library loads only for the commands that run a model.
    const { evaluateScenario } = await import('./evaluate/evaluate-scenario.js');
    const files =
      models.length === 0
        ? DEVICE_KINDS.map((kind) => {
            const shipped = artifactFiles(repoPath('models/artifacts'), kind.model, DETECTOR_MODEL_VERSION);
            return { modelFile: shipped.onnx, manifestFile: shipped.manifest };
          })
        : models.map((model, i) => ({ modelFile: userPath(model), manifestFile: userPath(manifests[i]!) }));
    const evaluation = await evaluateScenario({
      scenarioFile: userPath(o.scenario),
      ...(o.seed === undefined ? {} : { seed: o.seed }),
      models: files,
      allowTrainingDevices: o.allowTrainingDevices === true,
      ...(o.keep === undefined ? {} : { keepDir: userPath(o.keep) }),
    });
    print(o.json, evaluation, formatEvaluation(evaluation));
  });

try {
  // Commander throws instead of exiting, so a bad option value (a seed that is no integer) ends
  // with the usage exit code like every other bad input; it has printed its message already.
  program.exitOverride();
  for (const command of program.commands) command.exitOverride();
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? ExitCode.ok : ExitCode.configInvalid;
  } else {
    reportFailure(error);
  }
}

function reportFailure(error: unknown): void {
  // Bad input (a scenario, manifest, key or model file) is a usage error with its reason.
  process.stderr.write(`outpost-models: ${error instanceof Error ? error.message : String(error)}\n`);
  const invalidInput =
    isOutpostError(error) && ['MODEL_INVALID', 'MODEL_KEY_INVALID', 'MODEL_DIGEST_MISMATCH', 'SCENARIO_INVALID', 'CONFIG_INVALID', 'HARNESS_MISSING_BINARY'].includes(error.code);
  process.exitCode = invalidInput ? ExitCode.configInvalid : ExitCode.startFailed;
}
