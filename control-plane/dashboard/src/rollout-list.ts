// The rollouts list as the page keeps it: the GET's answer with the summaries `rollout` events
// pushed since, whichever of the two is newer per rollout. Pure.
import type { RolloutSummary, RolloutView } from './api-types.js';

/** Newest first (by creation, then id), each rollout once, in its latest known state. */
export function mergeRollouts(fetched: readonly RolloutSummary[], pushed: readonly RolloutSummary[]): RolloutSummary[] {
  const byId = new Map<string, RolloutSummary>();
  for (const r of [...fetched, ...pushed]) {
    const known = byId.get(r.id);
    // Equal times: the later of the two (an event after the GET it raced with).
    if (known === undefined || r.updatedAtMs >= known.updatedAtMs) byId.set(r.id, r);
  }
  return [...byId.values()].sort((a, b) => b.createdAtMs - a.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The wave a rollout is at, for humans: "2 of 3", or "not started (3 waves)" while pending. */
export function waveText(rollout: Pick<RolloutSummary, 'status' | 'wave' | 'waves'>): string {
  if (rollout.status === 'pending') return `not started (${rollout.waves} wave${rollout.waves === 1 ? '' : 's'})`;
  return `${rollout.wave + 1} of ${rollout.waves}`;
}

/** Of a GET's answer and an action's answer, the later document (the GET on a tie: its progress is as fresh). */
export function newerView(read: RolloutView | undefined, acted: RolloutView | undefined): RolloutView | undefined {
  if (acted === undefined) return read;
  if (read === undefined) return acted;
  return acted.updatedAtMs > read.updatedAtMs ? acted : read;
}
