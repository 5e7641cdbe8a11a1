import { EVIDENCE_OUTPUT_NAME } from '@outpost/shared';
import { encodeOnnxModel } from './onnx-writer.js';
import { DEFAULT_INPUT_NAME, DEFAULT_OPSET, DEFAULT_OUTPUT_NAME } from './pca-model.js';

/**
 * The per-kind detector's graph: each normalised feature x_j is a detector's evidence, scaled
 * so that 1 is where that detector's normal traffic ends; the score is the strongest evidence.
 *
 *   per [N, n] = Max(features * upper, features * -lower)      (upper, lower: [n], learned)
 *   score [N]  = ReduceMax over axis 1 of per
 *
 * `upper[j]` weighs a deviation above the feature's center, `lower[j]` one below (0 for a
 * one-sided detector such as a jump or a stuck run, whose low values mean nothing). Opset 17:
 * ReduceMax takes `axes` as an attribute up to 17 (as ReduceMean, FACTS).
 *
 * The graph also outputs `evidence` [N, n], each detector's evidence before the max: which
 * metric and detector made a window anomalous (feature j is metric floor(j / features) and
 * feature j % features of the spec). The manifest's contract names `score` only; a runtime that
 * does not ask for `evidence` never computes more than before.
 */

const BATCH_DIM = 'N';
/** The per-detector evidence output (its name is part of the model contract, so it lives in shared). */
export { EVIDENCE_OUTPUT_NAME } from '@outpost/shared';

export interface MaxScoreModelOptions {
  /** Weight of x_j above its center (>= 0). */
  upper: readonly number[];
  /** Weight of x_j below its center (>= 0; 0: the side does not count). */
  lower: readonly number[];
  /** Graph name; default `anomaly-max`. */
  name?: string;
  /** Written to the model's metadata (e.g. model name and version). */
  metadata?: Readonly<Record<string, string>>;
}

function checkWeights(upper: readonly number[], lower: readonly number[]): void {
  if (upper.length === 0 || upper.length !== lower.length) throw new RangeError(`upper and lower must hold the same number (>= 1) of weights, got ${upper.length} and ${lower.length}`);
  [...upper, ...lower].forEach((w, i) => {
    if (!Number.isFinite(w) || w < 0) throw new RangeError(`weight ${i % upper.length} of ${i < upper.length ? 'upper' : 'lower'} must be finite and >= 0, got ${w}`);
  });
}

/** Builds the strongest-evidence model (opset 17): input `features` [N, n], output `score` [N]. Same weights, same bytes. */
export function buildMaxScoreModel(options: MaxScoreModelOptions): Uint8Array {
  const { upper, lower } = options;
  checkWeights(upper, lower);
  const n = upper.length;
  return encodeOnnxModel({
    name: options.name ?? 'anomaly-max',
    opset: DEFAULT_OPSET,
    docString: 'strongest detector evidence: score = max_j max(x_j * upper_j, -x_j * lower_j)',
    inputs: [{ name: DEFAULT_INPUT_NAME, dims: [BATCH_DIM, n] }],
    outputs: [
      { name: DEFAULT_OUTPUT_NAME, dims: [BATCH_DIM] },
      { name: EVIDENCE_OUTPUT_NAME, dims: [BATCH_DIM, n] },
    ],
    initializers: [
      { name: 'upper', dims: [n], values: Float32Array.from(upper) },
      { name: 'lower_negated', dims: [n], values: Float32Array.from(lower, (w) => -w) },
    ],
    nodes: [
      { opType: 'Mul', inputs: [DEFAULT_INPUT_NAME, 'upper'], outputs: ['above'] },
      { opType: 'Mul', inputs: [DEFAULT_INPUT_NAME, 'lower_negated'], outputs: ['below'] },
      { opType: 'Max', inputs: ['above', 'below'], outputs: [EVIDENCE_OUTPUT_NAME] },
      {
        opType: 'ReduceMax',
        inputs: [EVIDENCE_OUTPUT_NAME],
        outputs: [DEFAULT_OUTPUT_NAME],
        attributes: [
          { name: 'axes', type: 'ints', values: [1] },
          { name: 'keepdims', type: 'int', value: 0 },
        ],
      },
    ],
    ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
  });
}

/**
 * The strongest-evidence score of one row in JavaScript, as the graph computes it (inputs and
 * weights rounded to float32 first; float32 products are exact enough that onnxruntime agrees
 * to rounding). Also returns which feature gave it (the metric and detector that contributed most).
 */
export function scoreMaxReference(row: ArrayLike<number>, upper: readonly number[], lower: readonly number[]): { score: number; feature: number } {
  if (row.length !== upper.length || row.length !== lower.length) throw new RangeError(`row holds ${row.length} values, the weights ${upper.length}`);
  let score = -Infinity;
  let feature = 0;
  for (let j = 0; j < row.length; j++) {
    const x = Math.fround(row[j]!);
    const evidence = Math.max(Math.fround(x * Math.fround(upper[j]!)), Math.fround(x * Math.fround(-lower[j]!)));
    if (evidence > score) {
      score = evidence;
      feature = j;
    }
  }
  return { score, feature };
}
