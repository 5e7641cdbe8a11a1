/** The inference stage of the agent (DESIGN section 2): its public surface, nothing of onnxruntime. */
export { startInference } from './inference-router.js';
export { UnscoredReason } from './inference.js';
export type { CommittedTelemetry, Inference, InferenceOptions, InferenceStatus, InstalledModel } from './inference.js';
export { verifyModel, readModelFiles, assertTrustedKeys, MAX_MANIFEST_BYTES } from './model-source.js';
export type { ModelFiles, ModelInput, VerifiedModel, VerifyOptions } from './model-source.js';
export { assertNoExternalData, MAX_INSPECTABLE_IR_VERSION } from './onnx-model-check.js';
export { InferenceRecordKind } from './result-sink.js';
export type { LocalPublish } from './result-sink.js';
export { defaultChildEntry } from './model-process.js';
