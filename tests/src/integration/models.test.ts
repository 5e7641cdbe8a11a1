import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { featureLength, generateSigningKey, ModelManifestSchema, verifyModelArtifact, verifySignedManifest, type ModelManifest } from '@outpost/shared';
import { artifactFiles, DEFAULT_MODEL_NAME, DETECTOR_MODEL_VERSION, DEVICE_KINDS, FLAG_ALL_MODEL_NAME } from '@outpost/models';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';

// The models CLI as `npm run -w models build | sign | evaluate` runs it: the built JavaScript
// (models/dist/main.js), the real simulator (outpost-sim --record) and real onnxruntime-node.

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MODELS_MAIN = join(REPO_ROOT, 'models/dist/main.js');
const SHIPPED_DIR = join(REPO_ROOT, 'models/artifacts');
const EVALUATE_SCENARIO = join(REPO_ROOT, 'simulators/scenarios/evaluate.yaml');
const EXIT_INVALID_INPUT = 2;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();

function runModelsCli(args: string[]): Promise<CliRun> {
  const child = spawn(process.execPath, [MODELS_MAIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

function parseJson<T>(run: CliRun): T {
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout.trim()) as T;
}

async function readManifest(file: string): Promise<ModelManifest> {
  return ModelManifestSchema.parse(JSON.parse(await readFile(file, 'utf8')));
}

/** Normal traffic small enough to train in a moment: 4 machines, 5 minutes at 1 Hz. */
const SMALL_TRAIN_SCENARIO = `
name: small-train
seed: 11
startTs: 2026-01-01T00:00:00Z
durationS: 300
ratePerS: 1
devices:
  - count: 4
    prefix: dev-
    profile: machine
`;

let dir: TempDir;
beforeEach(async () => {
  dir = await createTempDir('outpost-models-');
});
afterEach(async () => {
  await dir.remove();
});
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
});

interface DetectionJson {
  episodes: number;
  detected: number;
  detectionRate: number;
  delayP50S: number | null;
}

interface EvaluationJson {
  messages: number;
  models: {
    model: { name: string; version: string };
    devices: number;
    seenInTraining: number | null;
    alarmEvents: number;
    falseAlarmsPerDeviceDay: number;
    flaggedNormalShare: number;
    perType: Record<string, DetectionJson>;
    all: DetectionJson;
    curve: unknown[];
  }[];
  unroutedDevices: string[];
}

const SHIPPED_DETECTORS = DEVICE_KINDS.map((kind) => artifactFiles(SHIPPED_DIR, kind.model, DETECTOR_MODEL_VERSION));

/** Environment sensors only, briefly: traffic without the machine model's metrics. */
const ENV_ONLY_SCENARIO = `
name: env-only
seed: 5
durationS: 120
devices:
  - count: 2
    prefix: eval-e-
    profile: env-sensor
`;

describe('models build', () => {
  it('trains from a recorded scenario into byte-identical artifacts whose self-test vectors pass in onnxruntime', async () => {
    const scenario = join(dir.path, 'small-train.yaml');
    await writeFile(scenario, SMALL_TRAIN_SCENARIO);
    const outs = [join(dir.path, 'out-1'), join(dir.path, 'out-2')];
    for (const out of outs) {
      const summary = parseJson<{ trainingRows: number; devices: number; k: number }>(
        await runModelsCli(['build', '--only', 'pca', '--scenario', scenario, '--data', join(dir.path, 'data'), '--out', out, '--created-at', '2026-11-25T00:00:00Z', '--json']),
      );
      expect(summary.devices).toBe(4);
      expect(summary.trainingRows).toBe(4 * (300 - 32 + 1));
    }
    for (const name of [DEFAULT_MODEL_NAME, FLAG_ALL_MODEL_NAME]) {
      const [a, b] = outs.map((out) => artifactFiles(out, name));
      expect(await readFile(b!.onnx)).toEqual(await readFile(a!.onnx));
      expect(await readFile(b!.manifest, 'utf8')).toBe(await readFile(a!.manifest, 'utf8'));

      const manifest = await readManifest(a!.manifest);
      const bytes = await readFile(a!.onnx);
      verifyModelArtifact(bytes, manifest);
      expect(manifest).toMatchObject({ name, version: '1.0.0', createdAt: '2026-11-25T00:00:00.000Z', expiresAt: '2027-11-25T00:00:00.000Z', opset: 17 });
      expect(manifest.testVectors).toHaveLength(16);
      const session = await InferenceSession.create(bytes, { intraOpNumThreads: 1 });
      try {
        const rows = Float32Array.from(manifest.testVectors.flatMap((v) => v.input));
        const outputs = await session.run({ [manifest.input.name]: new Tensor('float32', rows, [manifest.testVectors.length, featureLength(manifest.featureSpec)]) });
        const scores = outputs[manifest.output.name]!.data as Float32Array;
        manifest.testVectors.forEach((v, i) => expect(Math.abs(scores[i]! - v.expectedScore)).toBeLessThanOrEqual(manifest.testTolerance));
      } finally {
        await session.release();
      }
    }
  });

  it('reproduces the shipped artifacts byte for byte with the default scenarios and options: the PCA models and one model per device kind with its report and curve', async () => {
    const out = join(dir.path, 'out');
    const summary = parseJson<{ detectors: { model: { name: string }; threshold: number; heldOut: { falseAlarmsPerDeviceDay: number } }[] }>(
      await runModelsCli(['build', '--data', join(dir.path, 'data'), '--out', out, '--json']),
    );
    expect(summary.detectors.map((d) => d.model.name)).toEqual(DEVICE_KINDS.map((k) => k.model));
    for (const d of summary.detectors) expect(d.heldOut.falseAlarmsPerDeviceDay).toBeLessThanOrEqual(0.25);
    for (const name of [DEFAULT_MODEL_NAME, FLAG_ALL_MODEL_NAME]) {
      const [built, shipped] = [artifactFiles(out, name), artifactFiles(SHIPPED_DIR, name)];
      expect(await readFile(built.onnx), `${name}.onnx`).toEqual(await readFile(shipped.onnx));
      expect(await readFile(built.manifest, 'utf8'), `${name} manifest`).toBe(await readFile(shipped.manifest, 'utf8'));
    }
    const training = artifactFiles(out, DEFAULT_MODEL_NAME).training;
    expect(await readFile(training, 'utf8')).toBe(await readFile(artifactFiles(SHIPPED_DIR, DEFAULT_MODEL_NAME).training, 'utf8'));
    for (const kind of DEVICE_KINDS) {
      const [built, shipped] = [artifactFiles(out, kind.model, DETECTOR_MODEL_VERSION), artifactFiles(SHIPPED_DIR, kind.model, DETECTOR_MODEL_VERSION)];
      expect(await readFile(built.onnx), `${kind.model}.onnx`).toEqual(await readFile(shipped.onnx));
      for (const file of ['manifest', 'training', 'curve'] as const) expect(await readFile(built[file], 'utf8'), `${kind.model} ${file}`).toBe(await readFile(shipped[file], 'utf8'));
    }
  }, 600_000);

  it('writes per-kind manifests today agents read: the shared schema, self-test vectors that pass in onnxruntime, a threshold calibration, training devices apart from evaluation devices', async () => {
    for (const files of SHIPPED_DETECTORS) {
      const manifest = await readManifest(files.manifest);
      const bytes = await readFile(files.onnx);
      verifyModelArtifact(bytes, manifest);
      expect(manifest.featureSpec.baseline).toBeDefined();
      expect(manifest.thresholdCalibration?.targetFalseAlarmsPerDeviceDay).toBe(0.25);
      const session = await InferenceSession.create(bytes, { intraOpNumThreads: 1 });
      try {
        const rows = Float32Array.from(manifest.testVectors.flatMap((v) => v.input));
        const outputs = await session.run({ [manifest.input.name]: new Tensor('float32', rows, [manifest.testVectors.length, featureLength(manifest.featureSpec)]) });
        const scores = outputs[manifest.output.name]!.data as Float32Array;
        manifest.testVectors.forEach((v, i) => expect(Math.abs(scores[i]! - v.expectedScore)).toBeLessThanOrEqual(manifest.testTolerance));
      } finally {
        await session.release();
      }
      const report = JSON.parse(await readFile(files.training, 'utf8')) as { trainingDevices: string[] };
      expect(report.trainingDevices.length).toBeGreaterThan(0);
      expect(report.trainingDevices.every((d) => d.startsWith('train-'))).toBe(true);
      expect(await readFile(files.curve, 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
    }
  });

  it('refuses a scenario the simulator rejects, with its reason and exit code 2', async () => {
    const scenario = join(dir.path, 'bad.yaml');
    await writeFile(scenario, 'name: bad\ndurationS: -5\ndevices: []\n');
    const run = await runModelsCli(['build', '--scenario', scenario, '--data', join(dir.path, 'data'), '--out', join(dir.path, 'out')]);
    expect(run.code).toBe(EXIT_INVALID_INPUT);
    expect(run.stderr).toMatch(/outpost-sim could not record .*durationS/s);
  });
});

describe('models sign', () => {
  it('signs the shipped manifest with a given key; agents verify it with the printed trusted key', async () => {
    const key = generateSigningKey('ops-1');
    const keyFile = join(dir.path, 'ops.pem');
    await writeFile(keyFile, key.privateKeyPem, { mode: 0o600 });
    const out = join(dir.path, 'signed.json');
    const shipped = artifactFiles(SHIPPED_DIR, DEFAULT_MODEL_NAME);
    const result = parseJson<{ signedManifest: string; trustedKey: { keyId: string; publicKey: string }; keyGenerated: boolean }>(
      await runModelsCli(['sign', '--key', keyFile, '--key-id', 'ops-1', '--manifest', shipped.manifest, '--out', out, '--json']),
    );
    expect(result).toMatchObject({ signedManifest: out, keyGenerated: false, trustedKey: { keyId: 'ops-1', publicKey: key.publicKeyPem } });
    const manifest = verifySignedManifest(JSON.parse(await readFile(out, 'utf8')), [key.trustedKey], Date.parse('2027-01-01T00:00:00Z'));
    verifyModelArtifact(await readFile(shipped.onnx), manifest);
  });

  it('refuses a key file that does not exist instead of creating one at a mistyped path', async () => {
    const run = await runModelsCli(['sign', '--key', join(dir.path, 'missing.pem'), '--manifest', artifactFiles(SHIPPED_DIR, DEFAULT_MODEL_NAME).manifest]);
    expect(run.code).toBe(EXIT_INVALID_INPUT);
    expect(run.stderr).toMatch(/cannot read signing key .*missing\.pem/);
  });
});

describe('models evaluate', () => {
  it('on the shipped scenario, with devices never seen in training: every fault type detected while active, short delays, under one false alarm per device-day, for each kind with its own model', async () => {
    const result = parseJson<EvaluationJson>(await runModelsCli(['evaluate', '--json']));
    expect(result.messages).toBe(864_000);
    expect(result.unroutedDevices).toEqual([]);
    expect(result.models.map((m) => m.model.name)).toEqual(DEVICE_KINDS.map((k) => k.model));
    for (const m of result.models) {
      expect(m.devices).toBe(20);
      expect(m.seenInTraining).toBe(0);
      for (const [type, stats] of Object.entries(m.perType)) {
        // Stuck spells shorter than 10 s are reported apart and not held to the target.
        if (type.includes('< 10 s')) continue;
        expect(stats.episodes, `${m.model.name} ${type}`).toBeGreaterThanOrEqual(25);
        expect(stats.detectionRate, `${m.model.name} ${type}`).toBeGreaterThanOrEqual(0.95);
      }
      for (const type of ['spike', 'stuck (>= 10 s)', 'noise-burst', 'dropout']) expect(m.perType[type]!.delayP50S, `${m.model.name} ${type}`).toBeLessThanOrEqual(10);
      expect(m.perType['drift']!.delayP50S).toBeLessThanOrEqual(60);
      expect(m.falseAlarmsPerDeviceDay).toBeLessThanOrEqual(1);
      expect(m.curve.length).toBeGreaterThan(40);
    }
  }, 600_000);

  it('shows a model that flags everything for what it is: one endless alarm per device, every normal window flagged', async () => {
    const flagAll = artifactFiles(SHIPPED_DIR, FLAG_ALL_MODEL_NAME);
    const result = parseJson<EvaluationJson>(await runModelsCli(['evaluate', '--scenario', EVALUATE_SCENARIO, '--model', flagAll.onnx, '--manifest', flagAll.manifest, '--json']));
    const [m] = result.models;
    expect(m!.all.detectionRate).toBe(1);
    expect(m!.alarmEvents).toBe(m!.devices);
    expect(m!.flaggedNormalShare).toBe(1);
    // The environment sensors send none of the machine metrics the model reads.
    expect(result.unroutedDevices).toHaveLength(20);
  }, 600_000);

  it('refuses a seed that is not an integer', async () => {
    for (const seed of ['12.5', 'abc']) {
      const run = await runModelsCli(['evaluate', '--seed', seed]);
      expect(run.code).toBe(EXIT_INVALID_INPUT);
      expect(run.stderr).toContain(`option '--seed <integer>' argument '${seed}' is invalid. must be an integer`);
    }
  });

  it('refuses a model whose metrics the traffic lacks, naming them', async () => {
    const scenario = join(dir.path, 'env-only.yaml');
    await writeFile(scenario, ENV_ONLY_SCENARIO);
    const run = await runModelsCli(['evaluate', '--scenario', scenario]);
    expect(run.code).toBe(EXIT_INVALID_INPUT);
    expect(run.stderr).toContain('model anomaly-machine@2.0.0 reads the metrics temperature, vibration, pressure, current; the traffic has no vibration, pressure, current (it has humidity, temperature)');
  });

  it('refuses to evaluate on the devices a model was trained on, unless told to', async () => {
    const scenario = join(dir.path, 'seen.yaml');
    await writeFile(scenario, ENV_ONLY_SCENARIO.replace('prefix: eval-e-', 'prefix: train-e-'));
    const run = await runModelsCli(['evaluate', '--scenario', scenario]);
    expect(run.code).toBe(EXIT_INVALID_INPUT);
    expect(run.stderr).toMatch(/device train-e-0001 of the traffic is one model anomaly-env-sensor@2.0.0 was trained on: .* --allow-training-devices/);
  });

  it('refuses a manifest that does not describe the model bytes, and a model without its manifest', async () => {
    const run = await runModelsCli([
      'evaluate',
      '--scenario',
      EVALUATE_SCENARIO,
      '--model',
      artifactFiles(SHIPPED_DIR, FLAG_ALL_MODEL_NAME).onnx,
      '--manifest',
      artifactFiles(SHIPPED_DIR, DEFAULT_MODEL_NAME).manifest,
    ]);
    expect(run.code).toBe(EXIT_INVALID_INPUT);
    expect(run.stderr).toMatch(/artifact is \d+ bytes, the manifest says \d+/);
    const alone = await runModelsCli(['evaluate', '--model', artifactFiles(SHIPPED_DIR, FLAG_ALL_MODEL_NAME).onnx]);
    expect(alone.code).toBe(EXIT_INVALID_INPUT);
    expect(alone.stderr).toContain('give one --manifest per --model (got 1 --model and 0 --manifest)');
  });
});
