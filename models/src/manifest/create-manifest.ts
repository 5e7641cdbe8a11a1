import {
  ErrorCode,
  featureLength,
  ModelManifestSchema,
  OutpostError,
  sha256Hex,
  type FeatureSpec,
  type ModelManifest,
  type TestVector,
} from '@outpost/shared';
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
  testVectors: TestVector[];
  /** Default DEFAULT_TEST_TOLERANCE. */
  testTolerance?: number;
  /** Default DEFAULT_OPSET (17). */
  opset?: number;
}

/**
 * The unsigned manifest of a model: digest and size of its bytes, the features -> score
 * tensor contract ([-1, n] -> [-1]), feature spec, threshold and self-test vectors. Validated
 * with ModelManifestSchema (MODEL_INVALID listing each bad field).
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
    testVectors: input.testVectors,
    testTolerance: input.testTolerance ?? DEFAULT_TEST_TOLERANCE,
  };
  const parsed = ModelManifestSchema.safeParse(manifest);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    throw new OutpostError(ErrorCode.MODEL_INVALID, `invalid model manifest:\n${lines.join('\n')}`, { details: { issues: lines } });
  }
  return parsed.data;
}
