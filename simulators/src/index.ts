/**
 * @outpost/simulators: the device simulator as a library. Pure generation of a scenario's
 * message stream and ground truth (no MQTT), recording to files, and live runs against a broker.
 */
export { createRng, selectIndices, type Rng } from './random/prng.js';
export { PROFILES, PROFILE_NAMES, DEFAULT_PROFILE, type ProfileName, type Profile, type MetricSpec } from './profiles/index.js';
export { AnomalyType, ANOMALY_TYPES, DEFAULT_ANOMALY_TYPES, formatTruthLine, type TruthLine } from './anomalies/anomaly-types.js';
export type { Episode, ResolvedAnomalies } from './anomalies/schedule.js';
export { MalformedKind, MALFORMED_KINDS, EXPECTED_REJECT_REASON, DEFAULT_OVERSIZE_BYTES } from './faults/message-faults.js';
export { ScenarioSchema, DEFAULT_START_TS, type Scenario, type ScenarioInput } from './scenario/scenario-schema.js';
export { resolveScenario, formatDeviceId, type DevicePlan, type ResolvedScenario } from './scenario/resolve-scenario.js';
export { loadScenario, parseScenario, applyScenarioOverrides, type ScenarioOverrides } from './scenario/load-scenario.js';
export { createDeviceGenerator, type DeviceGenerator, type GeneratedMessage, type MessageKind } from './generate/device-generator.js';
export { generateTraffic, formatRecordLine, assertBounded, type TrafficLine } from './generate/traffic.js';
export { recordScenario, defaultTruthFile, type RecordSummary } from './record/record-file.js';
export {
  startLiveRun,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_ANSWER_GRACE_MS,
  DEFAULT_MAX_IN_FLIGHT_PER_DEVICE,
  DEFAULT_RECONNECT_PERIOD_MS,
  type LiveRun,
  type LiveRunEvent,
  type LiveRunOptions,
  type LiveRunStats,
  type LiveRunSummary,
  type DeviceRunSummary,
} from './run/live-run.js';
export { createSeqRanges, type SeqRange, type SeqRanges } from './run/seq-ranges.js';
