export { startAgent, OUTBOX_FILE_NAME, type Agent, type StartAgentOptions } from './agent.js';
export { loadAgentConfig } from './config.js';
export { openOutbox } from './buffer/index.js';
export type * from './buffer/outbox-types.js';
export type { SqliteOutbox, OutboxPragmas } from './buffer/index.js';
export { hashPassword, verifyPassword } from './broker/device-auth.js';
export { UnscoredReason, InferenceRecordKind, verifyModel, readModelFiles, assertNoExternalData } from './inference/index.js';
export type { Inference, InferenceStatus, InstalledModel, ModelInput, ModelFiles, VerifiedModel, CommittedTelemetry } from './inference/index.js';
export { AGENT_NODE_FLAGS } from './node-flags.js';
