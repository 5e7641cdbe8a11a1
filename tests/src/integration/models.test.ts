import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { featureLength, generateSigningKey, ModelManifestSchema, verifyModelArtifact, verifySignedManifest, type ModelManifest } from '@outpost/shared';
import { artifactFiles, DEFAULT_MODEL_NAME, FLAG_ALL_MODEL_NAME } from '@outpost/models';
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

interface EvaluationJson {
  model: { name: string; version: string };
  messages: number;
  report: {
    detectionRate: number;
    falseAlarmRate: number;
    episodes: number;
    normalWindows: number;
    perType: Record<string, { episodes: number; detected: number }>;
  };
}

describe('models build', () => {
  it('trains from a recorded scenario into byte-identical artifacts whose self-test vectors pass in onnxruntime', async () => {
    const scenario = join(dir.path, 'small-train.yaml');
    await writeFile(scenario, SMALL_TRAIN_SCENARIO);
    const outs = [join(dir.path, 'out-1'), join(dir.path, 'out-2')];
    for (const out of outs) {
      const summary = parseJson<{ trainingRows: number; devices: number; k: number }>(
        await runModelsCli(['build', '--scenario', scenario, '--data', join(dir.path, 'data'), '--out', out, '--created-at', '2026-11-25T00:00:00Z', '--json']),
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

  it('reproduces the shipped artifacts byte for byte with the default scenario and options', async () => {
    const out = join(dir.path, 'out');
    parseJson<unknown>(await runModelsCli(['build', '--data', join(dir.path, 'data'), '--out', out, '--json']));
    for (const name of [DEFAULT_MODEL_NAME, FLAG_ALL_MODEL_NAME]) {
      const [built, shipped] = [artifactFiles(out, name), artifactFiles(SHIPPED_DIR, name)];
      expect(await readFile(built.onnx), `${name}.onnx`).toEqual(await readFile(shipped.onnx));
      expect(await readFile(built.manifest, 'utf8'), `${name} manifest`).toBe(await readFile(shipped.manifest, 'utf8'));
    }
    const training = artifactFiles(out, DEFAULT_MODEL_NAME).training;
    expect(await readFile(training, 'utf8')).toBe(await readFile(artifactFiles(SHIPPED_DIR, DEFAULT_MODEL_NAME).training, 'utf8'));
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
  it('on the shipped scenario: the shipped model detects >= 95% of episodes at <= 1% false alarms; the flag-all model alarms on every normal window', async () => {
    const shipped = artifactFiles(SHIPPED_DIR, DEFAULT_MODEL_NAME);
    const flagAll = artifactFiles(SHIPPED_DIR, FLAG_ALL_MODEL_NAME);
    const [good, bad] = await Promise.all(
      [shipped, flagAll].map(async (files) =>
        parseJson<EvaluationJson>(await runModelsCli(['evaluate', '--scenario', EVALUATE_SCENARIO, '--seed', '2002', '--model', files.onnx, '--manifest', files.manifest, '--json'])),
      ),
    );
    expect(good!.model.name).toBe(DEFAULT_MODEL_NAME);
    expect(good!.messages).toBe(72_000);
    expect(Object.keys(good!.report.perType).sort()).toEqual(['drift', 'noise-burst', 'spike', 'stuck', 'vibration-rise']);
    expect(good!.report.episodes).toBeGreaterThanOrEqual(50);
    expect(good!.report.detectionRate).toBeGreaterThanOrEqual(0.95);
    expect(good!.report.falseAlarmRate).toBeLessThanOrEqual(0.01);
    expect(bad!.report.falseAlarmRate).toBe(1);
    expect(bad!.report.normalWindows).toBe(good!.report.normalWindows);
  });

  it('refuses a manifest that does not describe the model bytes', async () => {
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
  });
});
