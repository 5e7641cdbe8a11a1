import { ErrorCode, OutpostError } from './errors.js';
import type { Lane } from './schemas/uplink.js';

/**
 * NATS names shared by agents and the control plane. Agents publish only under
 * `outpost.uplink.{agentId}.>` and `outpost.agent.{agentId}.>` (DESIGN section 4), so one
 * permission pattern per agent covers everything it may send.
 */
export const UPLINK_STREAM = 'OUTPOST_UPLINK';
export const AGENT_EVENTS_STREAM = 'OUTPOST_AGENT_EVENTS';
export const UPLINK_SUBJECTS = 'outpost.uplink.>';
export const AGENT_EVENTS_SUBJECTS = 'outpost.agent.>';
/** KV bucket: fleet registry, key = agentId. */
export const FLEET_BUCKET = 'outpost_fleet';
/** KV bucket: accounting per (agent, epoch, lane), key = `{agentId}.{epoch}.{lane}`. */
export const ACCOUNTING_BUCKET = 'outpost_accounting';
/** Desired state per agent (DesiredStateSchema), keyed by agent id. */
export const DESIRED_BUCKET = 'outpost_desired';
/** Rollouts (RolloutDocSchema), keyed by rollout id. */
export const ROLLOUTS_BUCKET = 'outpost_rollouts';
/** JetStream object store of signed model artifacts: `{name}/{version}/model.onnx` and `.../manifest.json`. */
export const MODEL_STORE_BUCKET = 'outpost_models';

/** Header naming the payload encoding of an uplink batch. */
export const ENCODING_HEADER = 'Outpost-Encoding';
/** Uplink batches of agents before [perf]: gzip-compressed JSON (UplinkBatchSchema); still accepted. */
export const BATCH_ENCODING = 'gzip+json';
/**
 * Uplink batches since [perf]: a summary for the accounting beside the records for the live
 * view, each compressed on its own (frameSummaryBatch), so the accounting reads no record body.
 */
export const BATCH_ENCODING_SUMMARY = 'gzip+summary+ndjson';

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

function assertToken(what: string, value: string): void {
  if (!TOKEN.test(value)) throw new OutpostError(ErrorCode.SUBJECT_INVALID, `invalid ${what} ${JSON.stringify(value)} for a NATS subject`);
}

/** `outpost.uplink.{agentId}.{lane}`: compressed batches of outbox records. */
export function uplinkSubject(agentId: string, lane: Lane): string {
  assertToken('agent id', agentId);
  return `outpost.uplink.${agentId}.${lane}`;
}

/** `outpost.agent.{agentId}.heartbeat` */
export function heartbeatSubject(agentId: string): string {
  assertToken('agent id', agentId);
  return `outpost.agent.${agentId}.heartbeat`;
}

/** `outpost.agent.{agentId}.evictions`: what the agent dropped to stay inside its byte bound. */
export function evictionSubject(agentId: string): string {
  assertToken('agent id', agentId);
  return `outpost.agent.${agentId}.evictions`;
}

/** Nats-Msg-Id of a batch: the same records always get the same id inside the dedup window. */
export function batchMsgId(agentId: string, epoch: string, lane: Lane, firstSeq: number, lastSeq: number): string {
  return `${agentId}:${epoch}:${lane}:${firstSeq}-${lastSeq}`;
}

/** Nats-Msg-Id of an eviction report. */
export function evictionMsgId(agentId: string, epoch: string, evictionId: number): string {
  return `${agentId}:${epoch}:evict:${evictionId}`;
}

/** KV key of the accounting of one (agent, epoch, lane). */
export function accountingKey(agentId: string, epoch: string, lane: Lane): string {
  assertToken('agent id', agentId);
  return `${agentId}.${epoch}.${lane}`;
}

/** Suffix of the key beside an accounting key that records why its messages were given up. */
export const ACCOUNTING_FAILURE_SUFFIX = 'failure';

/** KV key in ACCOUNTING_BUCKET recording why messages of `accountingKey(...)` were given up. */
export function accountingFailureKey(accountingKey: string): string {
  return `${accountingKey}.${ACCOUNTING_FAILURE_SUFFIX}`;
}

/**
 * `outpost.desired.{agentId}`: a core NATS notice that the agent's desired state changed (it
 * then reads its KV key). Outside `outpost.agent.>`, so no stream keeps these notices.
 */
export function desiredNoticeSubject(agentId: string): string {
  assertToken('agent id', agentId);
  return `outpost.desired.${agentId}`;
}

/**
 * `outpost.svc.desired.{agentId}`: request/reply; the control plane answers with the agent's
 * desired state. The agent's id is in the subject, which its NATS permissions let only it
 * publish: that is how the control plane knows who asks (DESIGN section 4).
 */
export function desiredServiceSubject(agentId: string): string {
  assertToken('agent id', agentId);
  return `outpost.svc.desired.${agentId}`;
}

/** `outpost.svc.model.{agentId}`: request/reply; a chunk of a model file from the model store. */
export function modelServiceSubject(agentId: string): string {
  assertToken('agent id', agentId);
  return `outpost.svc.model.${agentId}`;
}

/** What a service subject of an agent asks for, and for whom; undefined for any other subject. */
export function parseServiceSubject(subject: string): { service: 'desired' | 'model'; agentId: string } | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'outpost' || parts[1] !== 'svc') return undefined;
  const [, , service, agentId = ''] = parts;
  if ((service !== 'desired' && service !== 'model') || !TOKEN.test(agentId)) return undefined;
  return { service, agentId };
}

/** Subjects the control plane serves agents on (a queue group shares them among replicas). */
export const AGENT_SERVICE_SUBJECTS = 'outpost.svc.*.*';
/** Header of a service reply that refused: the stable error code. */
export const SERVICE_ERROR_HEADER = 'Outpost-Error';
/** Header of a model chunk reply: the file's total size in bytes. */
export const TOTAL_BYTES_HEADER = 'Outpost-Total-Bytes';

/** Object names of a model's two files in MODEL_STORE_BUCKET. */
export function modelObjectNames(name: string, version: string): { onnx: string; manifest: string } {
  return { onnx: `${name}/${version}/model.onnx`, manifest: `${name}/${version}/manifest.json` };
}

export type ParsedAgentSubject =
  | { type: 'uplink'; agentId: string; lane: Lane }
  | { type: 'heartbeat'; agentId: string }
  | { type: 'evictions'; agentId: string };

/** Parses the subjects above; undefined for anything else. */
export function parseAgentSubject(subject: string): ParsedAgentSubject | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'outpost') return undefined;
  const [, kind, agentId = '', last] = parts;
  if (!TOKEN.test(agentId)) return undefined;
  if (kind === 'uplink' && (last === 'events' || last === 'telemetry')) return { type: 'uplink', agentId, lane: last };
  if (kind === 'agent' && last === 'heartbeat') return { type: 'heartbeat', agentId };
  if (kind === 'agent' && last === 'evictions') return { type: 'evictions', agentId };
  return undefined;
}
