import { encodeOnnxModel, type OnnxGraph, type OnnxInitializer } from './onnx-writer.js';

/**
 * The anomaly model's graph: a PCA reconstruction error.
 *
 *   features [N, n] --MatMul W [n, k]--> [N, k] --MatMul W^T [k, n]--> reconstruction [N, n]
 *   score [N] = ReduceMean over axis 1 of (features - reconstruction)^2
 *
 * `components` is W^T: k rows of length n. With orthonormal rows this is the classic squared
 * prediction error; training may scale the rows (see train/pca.ts) to also weigh how far a row
 * lies along the principal directions. Either way the graph and `scorePcaReference` compute
 * exactly this.
 */

/** ReduceMean takes `axes` as an attribute up to opset 17 and as an input from 18 (FACTS). */
export const DEFAULT_OPSET = 17;
export const DEFAULT_INPUT_NAME = 'features';
export const DEFAULT_OUTPUT_NAME = 'score';
/** The batch dimension's name in the graph (dynamic). */
const BATCH_DIM = 'N';

export interface PcaModelOptions {
  /** W^T: k rows of n values. An empty list (k = 0) makes score = mean(features^2). */
  components: readonly (readonly number[])[];
  /** n; required when `components` is empty, else checked against it. */
  featureLength?: number;
  /** Graph name; default `anomaly-pca`. */
  name?: string;
  /** Written to the model's metadata (e.g. model name and version). */
  metadata?: Readonly<Record<string, string>>;
}

function resolveLength(components: readonly (readonly number[])[], featureLength: number | undefined): number {
  const n = featureLength ?? components[0]?.length;
  if (n === undefined || !Number.isInteger(n) || n < 1) throw new RangeError('a PCA model needs featureLength >= 1 (or at least one component)');
  components.forEach((row, j) => {
    if (row.length !== n) throw new RangeError(`component ${j} holds ${row.length} values, expected ${n}`);
    if (!row.every(Number.isFinite)) throw new RangeError(`component ${j} holds a non-finite value`);
  });
  return n;
}

/** W [n, k] and W^T [k, n] as row-major float32; k = 0 becomes one zero column (same scores). */
function weightTensors(components: readonly (readonly number[])[], n: number): { w: OnnxInitializer; wt: OnnxInitializer } {
  const rows = components.length === 0 ? [new Array<number>(n).fill(0)] : components;
  const k = rows.length;
  const w = new Float32Array(n * k);
  const wt = new Float32Array(k * n);
  rows.forEach((row, j) =>
    row.forEach((v, i) => {
      w[i * k + j] = v;
      wt[j * n + i] = v;
    }),
  );
  return { w: { name: 'W', dims: [n, k], values: w }, wt: { name: 'W_T', dims: [k, n], values: wt } };
}

function pcaGraph(options: PcaModelOptions, initializers: { w: OnnxInitializer; wt: OnnxInitializer }, n: number): OnnxGraph {
  return {
    name: options.name ?? 'anomaly-pca',
    opset: DEFAULT_OPSET,
    docString: 'PCA reconstruction error: score = mean((x - x W W^T)^2) per row',
    inputs: [{ name: DEFAULT_INPUT_NAME, dims: [BATCH_DIM, n] }],
    outputs: [{ name: DEFAULT_OUTPUT_NAME, dims: [BATCH_DIM] }],
    initializers: [initializers.w, initializers.wt],
    nodes: [
      { opType: 'MatMul', inputs: [DEFAULT_INPUT_NAME, 'W'], outputs: ['projection'] },
      { opType: 'MatMul', inputs: ['projection', 'W_T'], outputs: ['reconstruction'] },
      { opType: 'Sub', inputs: [DEFAULT_INPUT_NAME, 'reconstruction'], outputs: ['residual'] },
      { opType: 'Mul', inputs: ['residual', 'residual'], outputs: ['squared'] },
      {
        opType: 'ReduceMean',
        inputs: ['squared'],
        outputs: [DEFAULT_OUTPUT_NAME],
        attributes: [
          { name: 'axes', type: 'ints', values: [1] },
          { name: 'keepdims', type: 'int', value: 0 },
        ],
      },
    ],
    ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
  };
}

/**
 * Builds the PCA reconstruction-error model (opset 17): input `features` float32 [N, n],
 * output `score` float32 [N]. Deterministic: the same components give the same bytes.
 */
export function buildPcaModel(options: PcaModelOptions): Uint8Array {
  const n = resolveLength(options.components, options.featureLength);
  return encodeOnnxModel(pcaGraph(options, weightTensors(options.components, n), n));
}

/**
 * A model whose score is `score` for every row, whatever the input (input `features`
 * [N, n], output `score` [N]): with a threshold below `score` it flags everything, the
 * deliberately bad model of rollout-gate tests.
 */
export function buildConstantScoreModel(featureLength: number, score: number, metadata?: Readonly<Record<string, string>>): Uint8Array {
  if (!Number.isInteger(featureLength) || featureLength < 1) throw new RangeError('featureLength must be an integer >= 1');
  if (!Number.isFinite(score)) throw new RangeError('score must be finite');
  return encodeOnnxModel({
    name: 'constant-score',
    opset: DEFAULT_OPSET,
    docString: `score = ${score} for every row`,
    inputs: [{ name: DEFAULT_INPUT_NAME, dims: [BATCH_DIM, featureLength] }],
    outputs: [{ name: DEFAULT_OUTPUT_NAME, dims: [BATCH_DIM] }],
    initializers: [
      { name: 'zeros', dims: [featureLength], values: new Float32Array(featureLength) },
      { name: 'constant', dims: [1], values: Float32Array.of(score) },
    ],
    nodes: [
      // Multiplying by zero keeps the input in the graph, so the batch size flows to the output.
      { opType: 'Mul', inputs: [DEFAULT_INPUT_NAME, 'zeros'], outputs: ['zeroed'] },
      {
        opType: 'ReduceMean',
        inputs: ['zeroed'],
        outputs: ['zero_score'],
        attributes: [
          { name: 'axes', type: 'ints', values: [1] },
          { name: 'keepdims', type: 'int', value: 0 },
        ],
      },
      { opType: 'Add', inputs: ['zero_score', 'constant'], outputs: [DEFAULT_OUTPUT_NAME] },
    ],
    ...(metadata === undefined ? {} : { metadata }),
  });
}

/** The file an external-data model points at (it is never written). */
export const EXTERNAL_DATA_LOCATION = 'outpost-external-weights.bin';

/**
 * A PCA model (n = `featureLength`, default 4, k = 1) whose W initializer is not in the file:
 * `data_location: EXTERNAL`, `location: outpost-external-weights.bin`. An agent must refuse
 * it before loading (onnxruntime would read that path from its working directory).
 */
export function buildExternalDataModel(featureLength = 4): Uint8Array {
  const components = [Array.from({ length: featureLength }, (_, i) => (i === 0 ? 1 : 0))];
  const { w, wt } = weightTensors(components, featureLength);
  const external: OnnxInitializer = { name: w.name, dims: w.dims, external: { location: EXTERNAL_DATA_LOCATION, offsetBytes: 0, lengthBytes: featureLength * 4 } };
  return encodeOnnxModel(pcaGraph({ components, name: 'external-data' }, { w: external, wt }, featureLength));
}

/**
 * The PCA model's score for one row in plain JavaScript: mean((x - x W W^T)^2) with W^T =
 * `components` (k x n). Inputs and weights are rounded to float32 first, as the model stores
 * and reads them; the arithmetic is float64, so onnxruntime's float32 result differs by
 * rounding only (about 1e-7 relative).
 */
export function scorePcaReference(row: ArrayLike<number>, components: readonly (readonly number[])[]): number {
  const n = row.length;
  const x = Float64Array.from({ length: n }, (_, i) => Math.fround(row[i]!));
  const reconstruction = new Float64Array(n);
  for (const component of components) {
    if (component.length !== n) throw new RangeError(`component holds ${component.length} values, the row ${n}`);
    let projection = 0;
    for (let i = 0; i < n; i++) projection += x[i]! * Math.fround(component[i]!);
    for (let i = 0; i < n; i++) reconstruction[i] = reconstruction[i]! + projection * Math.fround(component[i]!);
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - reconstruction[i]!;
    sum += d * d;
  }
  return sum / n;
}
