// The only file in models/ that imports onnxruntime-node (lint enforces it). models/ uses a
// session for evaluation and self-tests in short-lived processes; the agent has its own adapter
// in a supervised child process because every session create leaks native memory
// (onnxruntime issue 25325).
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { ErrorCode, OutpostError } from '@outpost/shared';
import { DEFAULT_INPUT_NAME, DEFAULT_OUTPUT_NAME } from './pca-model.js';

/** A loaded scoring model: rows of `featureLength` float32 in, one score per row out. */
export interface ScoringSession {
  readonly featureLength: number;
  /** Scores `rows` (row-major, a multiple of featureLength values); one score per row. */
  run(rows: Float32Array): Promise<Float32Array>;
  close(): Promise<void>;
}

export interface ScoringSessionOptions {
  featureLength: number;
  /** Default `features`. */
  inputName?: string;
  /** Default `score`. */
  outputName?: string;
}

/**
 * Loads model bytes into an onnxruntime session on one thread (the machine is shared).
 * Bytes onnxruntime cannot load, or a graph without the named input and output, are
 * MODEL_INVALID: a model file is outside input, and the CLI reports it as such.
 */
export async function createScoringSession(bytes: Uint8Array, options: ScoringSessionOptions): Promise<ScoringSession> {
  const inputName = options.inputName ?? DEFAULT_INPUT_NAME;
  const outputName = options.outputName ?? DEFAULT_OUTPUT_NAME;
  const { featureLength } = options;
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(bytes, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (cause) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `onnxruntime cannot load the model: ${(cause as Error).message}`, { cause });
  }
  if (!session.inputNames.includes(inputName) || !session.outputNames.includes(outputName)) {
    const names = { inputs: [...session.inputNames], outputs: [...session.outputNames] };
    await session.release();
    throw new OutpostError(ErrorCode.MODEL_INVALID, `the model has no input ${JSON.stringify(inputName)} or no output ${JSON.stringify(outputName)} (it has inputs ${names.inputs.join(', ')}; outputs ${names.outputs.join(', ')})`, {
      details: { inputName, outputName, ...names },
    });
  }
  return {
    featureLength,
    async run(rows) {
      if (rows.length % featureLength !== 0) throw new RangeError(`${rows.length} values are not whole rows of ${featureLength}`);
      const rowCount = rows.length / featureLength;
      if (rowCount === 0) return new Float32Array(0);
      const outputs = await session.run({ [inputName]: new Tensor('float32', rows, [rowCount, featureLength]) });
      const output = outputs[outputName];
      if (output === undefined) throw new OutpostError(ErrorCode.MODEL_INVALID, `the model returned no output ${JSON.stringify(outputName)}`);
      if (output.type !== 'float32') throw new OutpostError(ErrorCode.MODEL_INVALID, `output ${JSON.stringify(outputName)} is ${output.type}, not float32`);
      return Float32Array.from(output.data as Float32Array);
    },
    close: () => session.release(),
  };
}
