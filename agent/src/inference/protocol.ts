/**
 * The IPC protocol between the agent and one inference process (child_process.fork with
 * `serialization: 'advanced'`, so typed arrays and Uint8Arrays travel as bytes, not JSON).
 *
 * One child serves one model for its whole life: the parent sends `load` once, then `score`
 * batches one at a time. A model swap is a new child, never a second `load`: onnxruntime leaks
 * native memory on every session create/release (onnxruntime issue 25325), so the only way to
 * give that memory back is to end the process.
 *
 * This file holds types and pure helpers only: the child imports it, and the child must stay
 * small (no zod, no pino, nothing of the agent's broker or outbox).
 */

/** Error codes the child reports; a subset of ErrorCode in @outpost/shared. */
export const ChildErrorCode = {
  modelInvalid: 'MODEL_INVALID',
  selfTestFailed: 'MODEL_SELF_TEST_FAILED',
  inferenceUnavailable: 'INFERENCE_UNAVAILABLE',
} as const;
export type ChildErrorCode = (typeof ChildErrorCode)[keyof typeof ChildErrorCode];

/** What the child needs to create a session and prove it computes what the manifest says. */
export interface LoadRequest {
  type: 'load';
  /** The verified .onnx bytes; the child never reads a model file itself. */
  modelBytes: Uint8Array;
  inputName: string;
  outputName: string;
  /**
   * An optional output of per-feature evidence, [batch, rowLength] (EVIDENCE_OUTPUT_NAME): scored
   * too when the graph has it, so the agent can tell which metrics made a window anomalous.
   */
  evidenceOutputName: string;
  /** Values per input row (metrics x features). */
  rowLength: number;
  /** Self-test inputs, row-major, `testCount` rows of `rowLength`. */
  testInputs: Float32Array;
  testCount: number;
  expectedScores: Float64Array;
  testTolerance: number;
}

/** One micro-batch: `count` rows of `rowLength`, row-major. */
export interface ScoreRequest {
  type: 'score';
  batchId: number;
  rows: Float32Array;
  count: number;
}

export type ParentMessage = LoadRequest | ScoreRequest;

export type ChildMessage =
  /** The child is up and listening; the parent sends `load` only after this. */
  | { type: 'started'; pid: number }
  | { type: 'loaded'; rssBytes: number; loadMs: number; selfTestMaxError: number; hasEvidence: boolean }
  | { type: 'load-failed'; code: ChildErrorCode; message: string }
  /** `evidence`: `count` rows of `rowLength`, when the graph has the evidence output. */
  | { type: 'scored'; batchId: number; scores: Float32Array; evidence?: Float32Array | undefined; rssBytes: number }
  | { type: 'score-failed'; batchId: number; message: string };

/** Type guard for messages from a child: anything else is a protocol error. */
export function isChildMessage(value: unknown): value is ChildMessage {
  if (typeof value !== 'object' || value === null) return false;
  const type = (value as { type?: unknown }).type;
  return type === 'started' || type === 'loaded' || type === 'load-failed' || type === 'scored' || type === 'score-failed';
}

/** Type guard for messages from the parent. */
export function isParentMessage(value: unknown): value is ParentMessage {
  if (typeof value !== 'object' || value === null) return false;
  const type = (value as { type?: unknown }).type;
  return type === 'load' || type === 'score';
}

/**
 * Compares self-test scores with the manifest's expectations; returns the largest absolute
 * error, or the index of the first vector outside `tolerance` (NaN never passes).
 */
export function checkSelfTest(
  scores: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
): { ok: true; maxError: number } | { ok: false; index: number; score: number; expected: number } {
  let maxError = 0;
  for (let i = 0; i < expected.length; i++) {
    const score = scores[i] ?? Number.NaN;
    const want = expected[i] ?? Number.NaN;
    const error = Math.abs(score - want);
    // `!(error <= tolerance)` so that NaN fails too.
    if (!(error <= tolerance)) return { ok: false, index: i, score, expected: want };
    if (error > maxError) maxError = error;
  }
  return { ok: true, maxError };
}
