// What an agent reports of its desired state. Apart from desired-state.ts so the heartbeat
// schema (schemas/uplink.ts) can use it without an import cycle.
import { z } from 'zod';

export const RolloutActionSchema = z.enum(['apply', 'rollback']);
export type RolloutAction = z.infer<typeof RolloutActionSchema>;

/** Who set a desired state: the rollout, the wave, and whether it applies or reverts the rollout. */
export const DesiredOriginSchema = z.object({
  rolloutId: z.string().min(1).max(64),
  wave: z.number().int().nonnegative(),
  action: RolloutActionSchema,
});
export type DesiredOrigin = z.infer<typeof DesiredOriginSchema>;

/** What an agent did with its desired state, in its heartbeat. */
export const DesiredStatus = { applied: 'applied', refused: 'refused' } as const;
export type DesiredStatus = (typeof DesiredStatus)[keyof typeof DesiredStatus];

export const DesiredReportSchema = z.object({
  /** KV revision of the desired state this is about. */
  revision: z.number().int().nonnegative(),
  status: z.enum([DesiredStatus.applied, DesiredStatus.refused]),
  /** Stable error code of a refusal (CONFIG_INVALID, MODEL_SIGNATURE_INVALID, MODEL_VERSION_OLDER, ...). */
  code: z.string().max(64).optional(),
  /** A refusal's reason, one line (for a config: the path of the bad key and why). */
  reason: z.string().max(1_024).optional(),
  origin: DesiredOriginSchema.nullable(),
  atMs: z.number().int(),
});
export type DesiredReport = z.infer<typeof DesiredReportSchema>;
