// Desired state per agent (DESIGN section 3): what the control plane wants an agent to run,
// one KV value per agent, and what the agent says it did with it.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../model/signing.js';
import { AgentIdSchema } from '../schemas/uplink.js';
import { DesiredOriginSchema } from './desired-report.js';

export * from './desired-report.js';

/**
 * The part of an agent's config that may be rolled out (everything else stays local: data
 * dir, listen addresses, TLS, NATS servers and credentials, trusted keys). A JSON merge patch
 * (RFC 7386) over the agent's own config file: objects merge, arrays and values replace, null
 * removes. The control plane checks only that a patch names managed keys; the agent validates
 * the values against its full config schema and refuses a bad one with the path of the key.
 */
export const ManagedConfigPatchSchema = z.strictObject({
  labels: z.record(z.string(), z.unknown()).optional(),
  broker: z
    .strictObject({
      /** Device credentials: the whole list (arrays replace). */
      devices: z.unknown().optional(),
      allowAnonymous: z.unknown().optional(),
      /** Applies to new connections only: refused unless the rollout allows closing device connections. */
      maxPacketBytes: z.unknown().optional(),
    })
    .optional(),
  ingest: z.strictObject({ rateLimitMsgsPerS: z.unknown().optional(), rateLimitBurst: z.unknown().optional() }).optional(),
  outbox: z.strictObject({ maxBytes: z.unknown().optional() }).optional(),
  uplink: z.strictObject({ heartbeatIntervalMs: z.unknown().optional() }).optional(),
  inference: z
    .strictObject({
      /** Overrides the manifest's threshold: scores above it are anomalies. */
      threshold: z.unknown().optional(),
      maxBatchSize: z.unknown().optional(),
      maxBatchWaitMs: z.unknown().optional(),
      maxQueuedRows: z.unknown().optional(),
    })
    .optional(),
});
export type ManagedConfigPatch = z.infer<typeof ManagedConfigPatchSchema>;

/** Managed keys whose change cannot reach existing device connections: applying one closes them (devices reconnect). */
export const LISTENER_RESTART_KEYS: readonly string[] = ['broker.maxPacketBytes'];

/** The version an agent reports for a config patch: the first 12 hex of sha256 over its canonical JSON; `local` without one. */
export function configVersion(patch: ManagedConfigPatch | null | undefined): string {
  if (patch === null || patch === undefined) return LOCAL_CONFIG_VERSION;
  return createHash('sha256').update(canonicalJson(patch)).digest('hex').slice(0, 12);
}
export const LOCAL_CONFIG_VERSION = 'local';

/**
 * RFC 7386 merge patch: `patch` applied to `target`, a new value (neither is changed). Objects
 * merge key by key, null removes a key, anything else (arrays included) replaces.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete result[key];
    else if (value !== undefined) Object.defineProperty(result, key, { value: mergePatch(result[key], value), enumerable: true, writable: true, configurable: true });
  }
  return result;
}

export const Sha256HexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (sha256)');

/** A model as desired state names it: the artifact in the model store and its digest. */
export const DesiredModelSchema = z.object({
  name: z.string().min(1).max(128),
  version: z.string().min(1).max(64),
  /** sha256 of the .onnx bytes, as the signed manifest says. */
  sha256: Sha256HexSchema,
  /** True when the agent may go to a lower version than it runs (a rollback). */
  rollback: z.boolean().default(false),
});
export type DesiredModel = z.infer<typeof DesiredModelSchema>;

/** KV value under the agent id in DESIRED_BUCKET. */
export const DesiredStateSchema = z.object({
  v: z.literal(1),
  agentId: AgentIdSchema,
  /** null: the model of the agent's own config (or none). */
  model: DesiredModelSchema.nullable(),
  /** null: the agent's own config file alone. */
  config: z.object({ version: z.string().min(1).max(64), patch: ManagedConfigPatchSchema }).nullable(),
  /** A managed key that needs the device connections closed (LISTENER_RESTART_KEYS) may change. */
  allowListenerRestart: z.boolean().default(false),
  origin: DesiredOriginSchema.nullable(),
  updatedAtMs: z.number().int(),
});
export type DesiredState = z.infer<typeof DesiredStateSchema>;

/** The reply of `outpost.svc.desired.{agentId}`: the agent's desired state and its KV revision, or none. */
export const DesiredReplySchema = z.union([
  z.object({ revision: z.number().int().positive(), desired: DesiredStateSchema }),
  z.object({ revision: z.literal(0), desired: z.null() }),
]);
export type DesiredReply = z.infer<typeof DesiredReplySchema>;

/** Largest chunk of a model file one reply carries (under NATS's default 1 MiB max_payload). */
export const MODEL_CHUNK_BYTES = 512 * 1024;

/** The request of `outpost.svc.model.{agentId}`: which file of which model, from where. */
export const ModelChunkRequestSchema = z.strictObject({
  name: z.string().min(1).max(128),
  version: z.string().min(1).max(64),
  file: z.enum(['manifest', 'onnx']),
  offset: z.number().int().nonnegative(),
});
export type ModelChunkRequest = z.infer<typeof ModelChunkRequestSchema>;
