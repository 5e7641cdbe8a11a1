// The rollout controller: the I/O around the planner. Every replica runs it; each tick, for
// every rollout still in motion, it
//   1. writes the desired state of each agent the rollout owns where KV differs (compare-and-set
//      per agent key), and sends the agent a notice on `outpost.desired.{agentId}`,
//   2. asks the planner for the next step and writes it with compare-and-set.
// Both are idempotent: a replica that dies anywhere leaves nothing another cannot redo, and a
// step another replica already wrote loses its compare-and-set here and is not taken twice.
import { desiredNoticeSubject, ErrorCode, isOutpostError, TERMINAL_STATUSES, type DesiredState, type Logger, type RolloutDoc } from '@outpost/shared';
import { agentStatus, type StatusThresholds } from '../fleet/fleet-record.js';
import type { FleetRegistry } from '../fleet/fleet-registry.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { desiredWrites, planStep, type ObservedAgent } from './planner.js';
import type { DesiredStore, RolloutStore } from './stores.js';

/** A finished rollout is still looked at this long, so the desired state of its agents (a rollback) is written even if a replica died meanwhile. */
export const SETTLE_AFTER_FINISH_MS = 60 * 60 * 1000;

export interface RolloutControllerOptions {
  rollouts: RolloutStore;
  desired: DesiredStore;
  fleet: FleetRegistry;
  thresholds: StatusThresholds;
  /** Core NATS publish, for the notices. */
  publish(subject: string, data: Uint8Array): void;
  metrics: ControlPlaneMetrics;
  logger: Logger;
  tickMs: number;
  now?: () => number;
}

export interface RolloutController {
  /** What the planner sees of the fleet now. */
  observe(): ObservedAgent[];
  /** One pass over every rollout (the interval runs it; tests may call it). */
  tick(): Promise<void>;
  close(): Promise<void>;
}

export function startRolloutController(options: RolloutControllerOptions): RolloutController {
  const { rollouts, desired, fleet, thresholds, metrics, logger } = options;
  const now = options.now ?? Date.now;
  let running: Promise<void> | undefined;
  let closed = false;

  const observe = (): ObservedAgent[] => {
    const nowMs = now();
    return fleet.list().map((record) => {
      const hb = record.heartbeat;
      const { status } = agentStatus(record, nowMs, thresholds);
      return {
        agentId: record.agentId,
        labels: hb.labels,
        online: status !== 'offline',
        degraded: status === 'degraded',
        desired: desired.current(record.agentId)?.value,
        report: hb.desired,
        versions: { model: hb.versions.model, config: hb.versions.config },
        counts: hb.inference?.counts,
      };
    });
  };

  /** Writes one agent's desired state at the revision last seen, then tells the agent. */
  const writeDesired = async (state: DesiredState): Promise<void> => {
    const revision = desired.current(state.agentId)?.revision ?? 0;
    try {
      const written = await desired.write(state.agentId, state, revision);
      metrics.desiredWrites.inc();
      options.publish(desiredNoticeSubject(state.agentId), Buffer.from(String(written)));
    } catch (err) {
      // Another replica wrote it first: the watch brings its value, the next tick compares again.
      if (!isOutpostError(err, ErrorCode.KV_CONFLICT)) throw err;
    }
  };

  const step = async (doc: RolloutDoc, revision: number, agents: readonly ObservedAgent[]): Promise<void> => {
    const nowMs = now();
    const current = new Map(doc.targets.map((t) => [t.agentId, desired.current(t.agentId)?.value]));
    for (const write of desiredWrites(doc, current, nowMs)) await writeDesired(write);
    if (TERMINAL_STATUSES.has(doc.status)) return;
    const next = planStep(doc, agents, nowMs);
    if (next === undefined) return;
    try {
      await rollouts.write(doc.id, next, revision);
      const entry = next.history.at(-1);
      if (next.history.length > doc.history.length && entry !== undefined) {
        metrics.rolloutSteps.inc({ action: entry.action });
        logger.info({ rolloutId: doc.id, step: entry.seq, action: entry.action, wave: entry.wave, status: next.status, detail: entry.detail }, 'rollout step');
      }
    } catch (err) {
      if (!isOutpostError(err, ErrorCode.KV_CONFLICT)) throw err;
      metrics.kvConflicts.inc({ bucket: 'rollouts' });
    }
  };

  const tick = async (): Promise<void> => {
    const agents = observe();
    const nowMs = now();
    for (const { value: doc, revision } of rollouts.all()) {
      if (TERMINAL_STATUSES.has(doc.status) && nowMs - doc.updatedAtMs > SETTLE_AFTER_FINISH_MS) continue;
      try {
        await step(doc, revision, agents);
      } catch (err) {
        logger.warn({ err, rolloutId: doc.id }, 'rollout step failed; tried again next tick');
      }
    }
  };

  const timer = setInterval(() => {
    if (closed || running !== undefined) return;
    running = tick()
      .catch((err: unknown) => logger.error({ err }, 'rollout tick failed'))
      .finally(() => (running = undefined));
  }, options.tickMs);
  timer.unref();

  return {
    observe,
    tick,
    async close() {
      closed = true;
      clearInterval(timer);
      await running;
    },
  };
}
