import { ErrorCode, featureLength, OutpostError, parseModelManifest, sha256Hex, type FeatureSpec, type ModelManifest, type TestVector } from '@outpost/shared';
import { readOnnxModelSummary } from '../onnx/onnx-writer.js';
import { DEFAULT_INPUT_NAME, DEFAULT_OPSET, DEFAULT_OUTPUT_NAME } from '../onnx/pca-model.js';

/** Largest |score - expectedScore| an agent's self-test allows by default. */
export const DEFAULT_TEST_TOLERANCE = 1e-4;
/** A manifest expires this long after it was created unless told otherwise: 365 days. */
export const DEFAULT_VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;

export interface CreateManifestInput {
  name: string;
  version: string;
  description?: string;
  /** ISO time; fixed by the build so a rebuild is byte-identical. */
  createdAt: string;
  /** ISO time; default createdAt + DEFAULT_VALIDITY_MS. */
  expiresAt?: string;
  /** The .onnx bytes the manifest describes (sha256 and size come from them). */
  onnx: Uint8Array;
  featureSpec: FeatureSpec;
  threshold: number;
  /** How the threshold was chosen (written when given). */
  thresholdCalibration?: ModelManifest['thresholdCalibration'];
  testVectors: TestVector[];
  /** Default DEFAULT_TEST_TOLERANCE. */
  testTolerance?: number;
  /** Default DEFAULT_OPSET (17). */
  opset?: number;
}

/**
 * Checks the manifest against the graph it describes: the opset it declares is the one the
 * model imports, and the tensors it names are the graph's. Without this, a manifest built with
 * the default opset for a graph written for another would only fail on an agent.
 */
function assertDescribes(manifest: Pick<ModelManifest, 'opset' | 'input' | 'output'>, onnx: Uint8Array): void {
  let summary: ReturnType<typeof readOnnxModelSummary>;
  try {
    summary = readOnnxModelSummary(onnx);
  } catch (cause) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `the model bytes are not an ONNX model: ${(cause as Error).message}`, { cause });
  }
  const problems = [
    ...(summary.opset === manifest.opset ? [] : [`opset: ${manifest.opset}, but the graph imports opset ${summary.opset ?? 'none'} of the default domain`]),
    ...(summary.inputs.includes(manifest.input.name) ? [] : [`input.name: the graph has no input ${JSON.stringify(manifest.input.name)} (it has ${summary.inputs.join(', ')})`]),
    ...(summary.outputs.includes(manifest.output.name) ? [] : [`output.name: the graph has no output ${JSON.stringify(manifest.output.name)} (it has ${summary.outputs.join(', ')})`]),
  ];
  if (problems.length > 0) throw new OutpostError(ErrorCode.MODEL_INVALID, `the manifest does not describe the model:\n${problems.join('\n')}`, { details: { problems } });
}

/**
 * The unsigned manifest of a model: digest and size of its bytes, the features -> score
 * tensor contract ([-1, n] -> [-1]), feature spec, threshold and self-test vectors. Validated
 * with ModelManifestSchema (MODEL_INVALID listing each bad field), and against the graph's own
 * opset and tensor names (MODEL_INVALID).
 */
export function createManifest(input: CreateManifestInput): ModelManifest {
  const createdMs = Date.parse(input.createdAt);
  const manifest = {
    name: input.name,
    version: input.version,
    ...(input.description === undefined ? {} : { description: input.description }),
    createdAt: input.createdAt,
    expiresAt: input.expiresAt ?? (Number.isNaN(createdMs) ? input.createdAt : new Date(createdMs + DEFAULT_VALIDITY_MS).toISOString()),
    artifact: { sha256: sha256Hex(input.onnx), sizeBytes: input.onnx.byteLength },
    opset: input.opset ?? DEFAULT_OPSET,
    input: { name: DEFAULT_INPUT_NAME, dims: [-1, featureLength(input.featureSpec)] },
    output: { name: DEFAULT_OUTPUT_NAME, dims: [-1] },
    featureSpec: input.featureSpec,
    threshold: input.threshold,
    ...(input.thresholdCalibration === undefined ? {} : { thresholdCalibration: input.thresholdCalibration }),
    testVectors: input.testVectors,
    testTolerance: input.testTolerance ?? DEFAULT_TEST_TOLERANCE,
  };
  const parsed = parseModelManifest(manifest);
  assertDescribes(parsed, input.onnx);
  return parsed;
}
