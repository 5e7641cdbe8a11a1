// A rollout (DESIGN section 3): what an operator writes (RolloutSpecSchema), and the document
// the control plane keeps of it in ROLLOUTS_BUCKET (RolloutDocSchema), changed only by
// compare-and-set writes that each add one step to its history.
import { z } from 'zod';
import { AgentIdSchema } from '../schemas/uplink.js';
import { DesiredModelSchema, DesiredStateSchema, ManagedConfigPatchSchema } from './desired-state.js';
import { DurationSchema } from './duration.js';

export const RolloutIdSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'rollout id must match ^[a-z0-9][a-z0-9-]{0,63}$');

/** A wave: a count of agents (this wave's size), or `"p%"`: the share of the selection reached by the end of this wave. */
const WaveSizeSchema = z.union([
  z.number().int().min(1),
  z
    .string()
    .regex(/^\d{1,3}(\.\d+)?%$/, 'must be a count or a percentage like "10%"')
    .refine((p) => Number(p.slice(0, -1)) > 0 && Number(p.slice(0, -1)) <= 100, 'must be above 0% and at most 100%'),
]);

/** At most this many agents of a wave may fail (count, or `"p%"` of the wave) before the wave fails. */
const BudgetSchema = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^\d{1,3}(\.\d+)?%$/, 'must be a count or a percentage like "10%"'),
]);

const TimeOfDaySchema = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (UTC)');

export const DEFAULT_SOAK_MS = 60_000;
export const DEFAULT_WAVE_DEADLINE_MS = 10 * 60_000;

export const AnomalyRateGateSchema = z.strictObject({
  /** Fail when the updated agents flag more than this many times as often as the agents not yet updated. */
  maxRatio: z.number().positive().default(3),
  /** Fail when they flag less than this share of what the others flag (a model that never flags), once enough anomalies were expected. */
  minRatio: z.number().min(0).max(1).default(0.2),
  /** Below this rate the updated agents always pass the upper bound (a healthy fleet flags almost nothing). */
  floorRate: z.number().min(0).max(1).default(0.01),
  /** Fewer scored rows than this on either side: inconclusive. */
  minRows: z.number().int().min(1).default(100),
  /** The lower bound is judged only when the others' rate predicts at least this many anomalies. */
  minExpectedAnomalies: z.number().min(0).default(10),
});

export const GatesSchema = z.strictObject({
  /** Every agent of the wave applied the change (a model: verified and self-tested) and runs it; refusals count against the failure budget. */
  applied: z.literal(true).default(true),
  /** Every agent of the wave is online and not degraded when the soak ends. */
  healthy: z.boolean().default(true),
  /** Rows the updated agents could not score, as a share of all rows. */
  inferenceErrorRate: z.strictObject({ max: z.number().min(0).max(1).default(0.01), minRows: z.number().int().min(1).default(100) }).optional(),
  /** The updated agents' anomaly rate against the agents not yet updated (a model change only). */
  anomalyRate: AnomalyRateGateSchema.optional(),
});

/** What an operator writes: `outpostctl rollout create -f spec.yaml`, `POST /api/rollouts`. */
export const RolloutSpecSchema = z
  .strictObject({
    /** Optional; generated from the name and time when absent. */
    id: RolloutIdSchema.optional(),
    name: z.string().min(1).max(200),
    selector: z
      .strictObject({
        /** Every label must match; none: every agent. */
        labels: z.record(z.string(), z.string()).default({}),
        /** Only these agents (still filtered by labels). */
        agents: z.array(AgentIdSchema).min(1).optional(),
      })
      .default({ labels: {} }),
    change: z
      .strictObject({
        model: z.strictObject({ name: z.string().min(1), version: z.string().min(1) }).optional(),
        config: ManagedConfigPatchSchema.optional(),
        /** Allow changes that close device connections (LISTENER_RESTART_KEYS). */
        allowListenerRestart: z.boolean().default(false),
      })
      .refine((c) => c.model !== undefined || c.config !== undefined, { message: 'must change the model, the config or both' }),
    strategy: z
      .strictObject({
        waves: z.array(WaveSizeSchema).min(1).max(100).default(['100%']),
        /**
         * How long a wave's agents run the change before its gates are judged. A gate that
         * fails ends the soak; gates without enough data yet soak on for up to waveDeadline
         * more, then pause the rollout as inconclusive.
         */
        soak: DurationSchema.default(DEFAULT_SOAK_MS),
        /** How long a wave's agents have to apply the change. */
        waveDeadline: DurationSchema.default(DEFAULT_WAVE_DEADLINE_MS),
        failureBudget: BudgetSchema.default(0),
      })
      .default({ waves: ['100%'], soak: DEFAULT_SOAK_MS, waveDeadline: DEFAULT_WAVE_DEADLINE_MS, failureBudget: 0 }),
    gates: GatesSchema.default({ applied: true, healthy: true }),
    onFailure: z.enum(['pause', 'rollback']).default('rollback'),
    /** Nothing starts before this time (ISO 8601). */
    startAt: z.iso.datetime({ offset: true }).optional(),
    /** Waves start only inside this daily window (UTC); one in progress goes on. */
    maintenanceWindow: z.strictObject({ start: TimeOfDaySchema, end: TimeOfDaySchema }).optional(),
  })
  .superRefine((spec, ctx) => {
    const percents = spec.strategy.waves.filter((w): w is string => typeof w === 'string').map((w) => Number(w.slice(0, -1)));
    percents.forEach((p, i) => {
      if (i > 0 && p <= percents[i - 1]!) ctx.addIssue({ code: 'custom', path: ['strategy', 'waves'], message: 'percentages are cumulative: each must be above the one before' });
    });
    if (spec.gates.anomalyRate !== undefined && spec.change.model === undefined) {
      ctx.addIssue({ code: 'custom', path: ['gates', 'anomalyRate'], message: 'compares model behaviour: needs change.model' });
    }
  });
export type RolloutSpecInput = z.input<typeof RolloutSpecSchema>;
export type RolloutSpec = z.output<typeof RolloutSpecSchema>;

export const RolloutStatus = {
  pending: 'pending',
  running: 'running',
  paused: 'paused',
  succeeded: 'succeeded',
  failed: 'failed',
  rolledBack: 'rolled-back',
  aborted: 'aborted',
} as const;
export type RolloutStatus = (typeof RolloutStatus)[keyof typeof RolloutStatus];
export const RolloutStatusSchema = z.enum(['pending', 'running', 'paused', 'succeeded', 'failed', 'rolled-back', 'aborted']);
export const TERMINAL_STATUSES: ReadonlySet<RolloutStatus> = new Set(['succeeded', 'failed', 'rolled-back', 'aborted']);

export const GateOutcomeSchema = z.enum(['pass', 'fail', 'inconclusive']);
export type GateOutcome = z.infer<typeof GateOutcomeSchema>;

/** One gate's verdict with the values it was judged on, as history and the API show them. */
export const GateResultSchema = z.object({
  gate: z.enum(['applied', 'healthy', 'inferenceErrorRate', 'anomalyRate']),
  outcome: GateOutcomeSchema,
  /** The measured values and the thresholds they were held against. */
  values: z.record(z.string(), z.union([z.number(), z.string(), z.null()])),
  detail: z.string(),
});
export type GateResult = z.infer<typeof GateResultSchema>;

export const WaveStateSchema = z.object({
  index: z.number().int().nonnegative(),
  /** When its agents got the change; absent before the wave started. */
  startedAtMs: z.number().int().optional(),
  /** When every agent had answered (applied or refused) or the deadline passed: the soak runs from here. */
  settledAtMs: z.number().int().optional(),
  outcome: z.enum(['passed', 'failed', 'inconclusive']).optional(),
  gates: z.array(GateResultSchema).default([]),
  /** Agents of the wave that failed (refused, missed the deadline, unhealthy), with why. */
  failed: z.array(z.object({ agentId: AgentIdSchema, reason: z.string() })).default([]),
});
export type WaveState = z.infer<typeof WaveStateSchema>;

/** An agent the rollout changed: its wave, and the desired state it had before, which a rollback writes back. */
export const RolloutTargetSchema = z.object({
  agentId: AgentIdSchema,
  wave: z.number().int().nonnegative(),
  targetedAtMs: z.number().int(),
  /** null: no desired state before (the agent ran its own config). */
  previous: DesiredStateSchema.nullable(),
  /** The agent's inference statistics when it was targeted: the anomaly baseline of the last wave. */
  baseline: z.object({ rows: z.number().int().nonnegative(), anomalies: z.number().int().nonnegative() }).nullable(),
  /** Sent back to `previous` (an abort reverts the agents that had not applied the change, so none keeps a desired state it refused). */
  reverted: z.boolean().default(false),
});
export type RolloutTarget = z.infer<typeof RolloutTargetSchema>;

export const HistoryEntrySchema = z.object({
  /** 1, 2, ...: one per compare-and-set write of the document. */
  seq: z.number().int().positive(),
  atMs: z.number().int(),
  /** `operator:<token name>` or `controller`. */
  actor: z.string().min(1).max(200),
  action: z.enum(['created', 'started', 'wave-started', 'wave-passed', 'wave-failed', 'wave-inconclusive', 'paused', 'resumed', 'aborted', 'rollback', 'succeeded', 'failed', 'agents-joined']),
  wave: z.number().int().nonnegative().optional(),
  status: RolloutStatusSchema,
  detail: z.string().max(2_000).default(''),
  gates: z.array(GateResultSchema).optional(),
});
export type HistoryEntry = z.infer<typeof HistoryEntrySchema>;

/** KV value under the rollout id in ROLLOUTS_BUCKET: the whole state of one rollout. */
export const RolloutDocSchema = z.object({
  v: z.literal(1),
  id: RolloutIdSchema,
  spec: RolloutSpecSchema,
  /** The model as agents get it (digest from the model store), when the rollout changes the model. */
  model: DesiredModelSchema.nullable(),
  configVersion: z.string().nullable(),
  status: RolloutStatusSchema,
  /** The wave in progress (or the last one reached). */
  wave: z.number().int().nonnegative(),
  waves: z.array(WaveStateSchema),
  /** Why it is paused or failed, for humans. */
  reason: z.string().max(2_000).optional(),
  targets: z.array(RolloutTargetSchema),
  history: z.array(HistoryEntrySchema),
  createdAtMs: z.number().int(),
  createdBy: z.string(),
  updatedAtMs: z.number().int(),
});
export type RolloutDoc = z.infer<typeof RolloutDocSchema>;
