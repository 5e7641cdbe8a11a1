// Request and response bodies of the rollout and model routes of the HTTP API.
import { z } from 'zod';
import { AgentIdSchema } from '../schemas/uplink.js';
import { RolloutDocSchema, RolloutIdSchema, RolloutSpecSchema, RolloutStatusSchema } from './rollout.js';

/** A model version in the store, as `GET /api/models` lists it. */
export const ModelEntrySchema = z.object({
  name: z.string(),
  version: z.string(),
  /** sha256 of the .onnx bytes. */
  sha256: z.string(),
  sizeBytes: z.number().int().nonnegative(),
  /** Key that signed the manifest. */
  keyId: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  threshold: z.number(),
  /** The metrics the model reads. */
  metrics: z.array(z.string()),
  description: z.string().optional(),
  /** When the store got it, ISO 8601. */
  storedAt: z.string(),
});
export type ModelEntry = z.infer<typeof ModelEntrySchema>;

export const ModelListResponseSchema = z.object({ models: z.array(ModelEntrySchema) });
export type ModelListResponse = z.infer<typeof ModelListResponseSchema>;

/** Largest .onnx a model upload may carry, bytes (its base64 makes the body a third larger). */
export const MAX_MODEL_UPLOAD_BYTES = 64 * 1024 * 1024;

/** `POST /api/models`: a signed manifest (the `.manifest.json` file's content) and the .onnx bytes in base64. */
export const ModelUploadSchema = z.strictObject({
  manifest: z.unknown(),
  onnxBase64: z
    .string()
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
    .max(Math.ceil((MAX_MODEL_UPLOAD_BYTES * 4) / 3) + 4, `must decode to at most ${MAX_MODEL_UPLOAD_BYTES} bytes`),
});
export type ModelUpload = z.infer<typeof ModelUploadSchema>;

/** `POST /api/rollouts`: the spec; `dryRun` answers the plan without creating anything. */
export const RolloutCreateSchema = z.strictObject({ spec: z.unknown(), dryRun: z.boolean().default(false) });

/** How far one wave got, from what its agents report now. */
export const WaveProgressSchema = z.object({
  index: z.number().int().nonnegative(),
  /** Agents in it (those targeted; a wave not started yet: those planned). */
  agents: z.number().int().nonnegative(),
  applied: z.number().int().nonnegative(),
  refused: z.number().int().nonnegative(),
  pending: z.number().int().nonnegative(),
  state: z.enum(['waiting', 'applying', 'soaking', 'passed', 'failed', 'inconclusive']),
  /** When the soak ends (epoch ms), while soaking. */
  soakEndsAtMs: z.number().int().optional(),
});
export type WaveProgress = z.infer<typeof WaveProgressSchema>;

/** A rollout as `GET /api/rollouts/{id}` answers it: the document, and per-wave progress now. */
export const RolloutViewSchema = RolloutDocSchema.extend({
  progress: z.array(WaveProgressSchema),
  /** Agents per wave by the current selection (a wave not started yet may still change). */
  plannedAgents: z.number().int().nonnegative(),
});
export type RolloutView = z.infer<typeof RolloutViewSchema>;

export const RolloutSummarySchema = z.object({
  id: RolloutIdSchema,
  name: z.string(),
  status: RolloutStatusSchema,
  wave: z.number().int().nonnegative(),
  waves: z.number().int().positive(),
  targets: z.number().int().nonnegative(),
  model: z.string().nullable(),
  configVersion: z.string().nullable(),
  reason: z.string().optional(),
  createdAtMs: z.number().int(),
  createdBy: z.string(),
  updatedAtMs: z.number().int(),
});
export type RolloutSummary = z.infer<typeof RolloutSummarySchema>;

export const RolloutListResponseSchema = z.object({ rollouts: z.array(RolloutSummarySchema) });
export type RolloutListResponse = z.infer<typeof RolloutListResponseSchema>;

/** A dry run: which agent goes in which wave and why, and what each gets. */
export const RolloutPlanSchema = z.object({
  id: RolloutIdSchema,
  spec: RolloutSpecSchema,
  model: z.string().nullable(),
  configVersion: z.string().nullable(),
  waves: z.array(
    z.object({
      index: z.number().int().nonnegative(),
      agents: z.array(z.object({ agentId: AgentIdSchema, rank: z.number().int().nonnegative(), orderKey: z.string(), labels: z.record(z.string(), z.string()) })),
    }),
  ),
  /** Agents the selector leaves out, with the label that did not match. */
  excluded: z.array(z.object({ agentId: AgentIdSchema, reason: z.string() })),
});
export type RolloutPlan = z.infer<typeof RolloutPlanSchema>;

export const RolloutParamsSchema = z.object({ id: RolloutIdSchema });

export const RolloutActionParamsSchema = z.object({
  id: RolloutIdSchema,
  action: z.enum(['pause', 'resume', 'abort', 'rollback']),
});
