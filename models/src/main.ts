#!/usr/bin/env node
// Composition root of the models CLI (npm run -w models build | sign | evaluate): the only
// file that reads argv and the environment, writes to stdout/stderr and sets the exit code.
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { ExitCode, isOutpostError } from '@outpost/shared';
import { artifactFiles, buildArtifacts, DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION } from './build/build-artifacts.js';
import { REPO_ROOT } from './build/simulator.js';
import { DEFAULT_VALIDITY_MS } from './manifest/create-manifest.js';
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

const program = new Command().name('outpost-models').description('Outpost models: build the shipped anomaly model, sign manifests, evaluate models on simulated scenarios');

program
  .command('build')
  .description('record normal traffic with outpost-sim, train the PCA anomaly model and write its .onnx, unsigned .manifest.json and the flag-everything model')
  .option('--scenario <file>', 'normal-traffic scenario', repoPath('simulators/scenarios/train-normal.yaml'))
  .option('--data <dir>', 'where the recording goes (generated, git-ignored)', repoPath('models/data'))
  .option('--out <dir>', 'where the artifacts go', repoPath('models/artifacts'))
  .option('--model-version <version>', 'model version', DEFAULT_MODEL_VERSION)
  .option('--created-at <time>', 'createdAt of the manifests (fixed for reproducible bytes)', isoTimeArg, DEFAULT_CREATED_AT)
  .option('--valid-days <days>', 'expiresAt = createdAt + this many days', positiveArg, DEFAULT_VALIDITY_MS / DAY_MS)
  .option('--json', 'print a JSON summary')
  .action(async (o: { scenario: string; data: string; out: string; modelVersion: string; createdAt: string; validDays: number; json?: boolean }) => {
    const result = await buildArtifacts({
      scenarioFile: userPath(o.scenario),
      dataDir: userPath(o.data),
      outDir: userPath(o.out),
      version: o.modelVersion,
      createdAt: o.createdAt,
      validityMs: o.validDays * DAY_MS,
    });
    const { trained, model, flagAll } = result;
    const summary = {
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
    print(
      o.json,
      summary,
      `trained ${model.manifest.name}@${model.manifest.version} on ${trained.trainingRows} windows of ${trained.devices} devices: ` +
        `k = ${trained.k} of ${summary.featureLength}, threshold ${trained.threshold.toPrecision(6)}\n` +
        `  ${model.files.onnx}\n  ${model.files.manifest}\n  ${model.training}\n  ${flagAll.files.onnx}\n  ${flagAll.files.manifest}\n`,
    );
  });

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

program
  .command('evaluate')
  .description('record a scenario with ground truth, replay it through the model, print detection rate per anomaly type and the false-alarm rate')
  .option('--scenario <file>', 'scenario with anomalies', repoPath('simulators/scenarios/evaluate.yaml'))
  .option('--seed <seed>', "overrides the scenario's seed")
  .option('--model <file>', '.onnx file (default: the shipped model)')
  .option('--manifest <file>', 'its manifest, unsigned or signed (default: the shipped one)')
  .option('--keep <dir>', 'keep the recording in this folder')
  .option('--json', 'print the result as JSON')
  .action(async (o: { scenario: string; seed?: string; model?: string; manifest?: string; keep?: string; json?: boolean }) => {
    // onnxruntime-node's native library loads only for the command that runs a model.
    const { evaluateScenario, formatEvaluation } = await import('./evaluate/evaluate-scenario.js');
    const shipped = artifactFiles(repoPath('models/artifacts'), DEFAULT_MODEL_NAME, DEFAULT_MODEL_VERSION);
    if ((o.model === undefined) !== (o.manifest === undefined)) program.error('give --model and --manifest together (or neither, for the shipped model)', { exitCode: ExitCode.configInvalid });
    const evaluation = await evaluateScenario({
      scenarioFile: userPath(o.scenario),
      ...(o.seed === undefined ? {} : { seed: /^-?\d+$/.test(o.seed) ? Number(o.seed) : o.seed }),
      modelFile: o.model === undefined ? shipped.onnx : userPath(o.model),
      manifestFile: o.manifest === undefined ? shipped.manifest : userPath(o.manifest),
      ...(o.keep === undefined ? {} : { keepDir: userPath(o.keep) }),
    });
    print(o.json, evaluation, formatEvaluation(evaluation));
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Bad input (a scenario, manifest, key or model file) is a usage error with its reason.
  process.stderr.write(`outpost-models: ${error instanceof Error ? error.message : String(error)}\n`);
  const invalidInput =
    isOutpostError(error) && ['MODEL_INVALID', 'MODEL_KEY_INVALID', 'MODEL_DIGEST_MISMATCH', 'SCENARIO_INVALID', 'CONFIG_INVALID', 'HARNESS_MISSING_BINARY'].includes(error.code);
  process.exitCode = invalidInput ? ExitCode.configInvalid : ExitCode.startFailed;
}
