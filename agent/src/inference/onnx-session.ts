// The only agent file that imports onnxruntime-node, and only the inference child process
// (inference-child.ts) loads it: the agent process itself never does (DESIGN section 2).
import { InferenceSession, Tensor } from 'onnxruntime-node';

export interface ScoringSessionOptions {
  inputName: string;
  outputName: string;
  /** Scored too when the graph has this output, [count, rowLength]; ignored otherwise. */
  evidenceOutputName?: string | undefined;
  /** Values per input row; the input tensor is [count, rowLength]. */
  rowLength: number;
}

/** One batch's scores, and the per-feature evidence when the graph gives it. */
export interface ScoredBatch {
  scores: Float32Array;
  /** `count` rows of `rowLength`, row-major. */
  evidence: Float32Array | undefined;
}

/** One loaded model: float32 rows in, one float32 score per row out. */
export interface ScoringSession {
  /**
   * Scores `count` rows of `rowLength` (row-major in `rows`). session.run is a synchronous
   * native call under its promise: the process is blocked while it runs, which is why it runs
   * in a child of its own.
   *
   * @throws Error when the model fails or does not return exactly one score per row (or, when
   *   it has the evidence output, not `rowLength` values of evidence per row).
   */
  score(rows: Float32Array, count: number): Promise<ScoredBatch>;
  /** True when the graph has the evidence output. */
  readonly hasEvidence: boolean;
  release(): Promise<void>;
}

/**
 * Creates a session from model bytes (never from a path: the bytes were verified by the
 * parent). One intra-op and one inter-op thread: the gateway has few cores and the agent's
 * ingest must keep one; batches give the throughput, not threads.
 *
 * @throws Error when onnxruntime cannot load the model or its graph lacks the named tensors.
 */
export async function createScoringSession(modelBytes: Uint8Array, options: ScoringSessionOptions): Promise<ScoringSession> {
  const session = await InferenceSession.create(modelBytes, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Warnings would go to the child's stderr on every load; errors still come back as exceptions.
    logSeverityLevel: 3,
  });
  const { inputName, outputName, rowLength } = options;
  if (!session.inputNames.includes(inputName) || !session.outputNames.includes(outputName)) {
    const names = `inputs [${session.inputNames.join(', ')}], outputs [${session.outputNames.join(', ')}]`;
    await session.release();
    throw new Error(`the graph has no input '${inputName}' or no output '${outputName}' (it has ${names})`);
  }
  const evidenceName = options.evidenceOutputName !== undefined && options.evidenceOutputName !== outputName && session.outputNames.includes(options.evidenceOutputName) ? options.evidenceOutputName : undefined;
  const fetches = evidenceName === undefined ? [outputName] : [outputName, evidenceName];
  const read = (outputs: InferenceSession.OnnxValueMapType, name: string, perRow: number, count: number): Float32Array => {
    const output = outputs[name];
    if (output === undefined || output.type !== 'float32') throw new Error(`output '${name}' is missing or not float32`);
    const data = output.data as Float32Array;
    if (data.length !== count * perRow) throw new Error(`output '${name}' holds ${data.length} values for ${count} rows (dims ${JSON.stringify(output.dims)})`);
    return data;
  };
  return {
    hasEvidence: evidenceName !== undefined,
    async score(rows, count) {
      const input = new Tensor('float32', rows.length === count * rowLength ? rows : rows.subarray(0, count * rowLength), [count, rowLength]);
      const outputs = await session.run({ [inputName]: input }, fetches);
      return { scores: read(outputs, outputName, 1, count), evidence: evidenceName === undefined ? undefined : read(outputs, evidenceName, rowLength, count) };
    },
    release: () => session.release(),
  };
}
