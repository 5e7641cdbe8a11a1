import { featureLength, type FeatureSpec, type ModelManifest } from '@outpost/shared';
import { buildConstantScoreModel, buildPcaModel, scorePcaReference } from '../onnx/pca-model.js';
import { createManifest } from './create-manifest.js';

/**
 * A small valid model for tests (agent inference, rollouts): two metrics, three features,
 * a short window, so a test reaches rows after a few messages.
 */
export const TEST_FEATURE_SPEC: FeatureSpec = {
  metrics: ['temperature', 'vibration'],
  features: ['mean', 'std', 'slope'],
  windowSize: 8,
  hopSize: 2,
  normalisation: { center: [60, 0.5, 0, 1, 0.2, 0], scale: [5, 0.25, 0.1, 0.5, 0.1, 0.05] },
};

/** W^T of the test model: two orthonormal directions (level of both metrics, spread of both). */
export const TEST_COMPONENTS: readonly (readonly number[])[] = [
  [Math.SQRT1_2, 0, 0, Math.SQRT1_2, 0, 0],
  [0, Math.SQRT1_2, 0, 0, Math.SQRT1_2, 0],
];

export interface TestModelOptions {
  name?: string;
  version?: string;
  /** Default 2026-01-01T00:00:00.000Z. */
  createdAt?: string;
  /** Default 2036-01-01T00:00:00.000Z. */
  expiresAt?: string;
  /** Default 1. */
  threshold?: number;
  /**
   * When set, the model scores every row with this value (buildConstantScoreModel): a score
   * above `threshold` flags everything; distinct values tell which model scored a row.
   */
  constantScore?: number;
}

export interface TestModel {
  onnx: Uint8Array;
  manifest: ModelManifest;
  /** W^T of the PCA model (empty for a constant-score model), for scorePcaReference. */
  components: readonly (readonly number[])[];
}

/** Self-test rows: fixed, mixed in sign and size, so a wrong model cannot pass by luck. */
function testRows(n: number): number[][] {
  return Array.from({ length: 4 }, (_, r) => Array.from({ length: n }, (_, i) => Math.round(Math.sin(r * 7 + i * 3 + 1) * 3000) / 1000));
}

/**
 * An unsigned model and manifest for tests (sign it with a key the test generates):
 * `anomaly-pca@1.0.0-test` by default, the PCA model over TEST_FEATURE_SPEC with
 * TEST_COMPONENTS, or a constant-score model with `constantScore`. Deterministic.
 */
export function makeTestModel(options: TestModelOptions = {}): TestModel {
  const n = featureLength(TEST_FEATURE_SPEC);
  const constant = options.constantScore;
  const components = constant === undefined ? TEST_COMPONENTS : [];
  const onnx = constant === undefined ? buildPcaModel({ components }) : buildConstantScoreModel(n, constant);
  const score = (row: number[]): number => (constant === undefined ? scorePcaReference(row, components) : Math.fround(constant));
  const manifest = createManifest({
    name: options.name ?? 'anomaly-pca',
    version: options.version ?? '1.0.0-test',
    description: constant === undefined ? 'test model: PCA reconstruction error, k = 2' : `test model: constant score ${constant}`,
    createdAt: options.createdAt ?? '2026-01-01T00:00:00.000Z',
    expiresAt: options.expiresAt ?? '2036-01-01T00:00:00.000Z',
    onnx,
    featureSpec: TEST_FEATURE_SPEC,
    threshold: options.threshold ?? 1,
    testVectors: testRows(n).map((input) => ({ input, expectedScore: score(input) })),
  });
  return { onnx, manifest, components };
}
