// Which agents a rollout selects and in which wave each one goes. Pure.
//
// Agents are ordered by sha256(rolloutId + ":" + agentId): the order is fixed by the rollout's
// id, reproducible anywhere (a dry run prints exactly what will happen), and spreads sites and
// models evenly over the waves. Each wave covers the next slice of that order.
import { createHash } from 'node:crypto';
import type { RolloutSpec } from '@outpost/shared';

/** What the planner knows of an agent's identity. */
export interface SelectableAgent {
  agentId: string;
  labels: Readonly<Record<string, string>>;
}

/** True when the agent matches every label of the selector (and is listed, when agents are listed). */
export function selects(selector: RolloutSpec['selector'], agent: SelectableAgent): boolean {
  if (selector.agents !== undefined && !selector.agents.includes(agent.agentId)) return false;
  return Object.entries(selector.labels).every(([key, value]) => Object.hasOwn(agent.labels, key) && agent.labels[key] === value);
}

/** The ordering key of an agent within a rollout: hex sha256 of `rolloutId:agentId`. */
export function waveOrderKey(rolloutId: string, agentId: string): string {
  return createHash('sha256').update(`${rolloutId}:${agentId}`).digest('hex');
}

/**
 * Cumulative sizes of the waves for `total` agents: wave i covers ranks [ends[i-1], ends[i]).
 * A count is that wave's size; `p%` is the share of all reached by the end of that wave (at
 * least one agent more than the wave before, while any remain). The last wave takes the rest.
 */
export function waveEnds(waves: RolloutSpec['strategy']['waves'], total: number): number[] {
  const ends: number[] = [];
  let reached = 0;
  for (const wave of waves) {
    const target = typeof wave === 'number' ? reached + wave : Math.ceil((Number(wave.slice(0, -1)) / 100) * total);
    reached = Math.min(total, Math.max(target, Math.min(total, reached + 1)));
    ends.push(reached);
  }
  if (ends.length > 0) ends[ends.length - 1] = total;
  return ends;
}

export interface WaveAssignment {
  agentId: string;
  wave: number;
  /** 0-based position in the rollout's order. */
  rank: number;
  orderKey: string;
}

/** Every selected agent with its wave, in the rollout's order. */
export function assignWaves(rolloutId: string, spec: RolloutSpec, agents: readonly SelectableAgent[]): WaveAssignment[] {
  const selected = agents
    .filter((a) => selects(spec.selector, a))
    .map((a) => ({ agentId: a.agentId, orderKey: waveOrderKey(rolloutId, a.agentId) }))
    .sort((a, b) => (a.orderKey < b.orderKey ? -1 : a.orderKey > b.orderKey ? 1 : 0));
  const ends = waveEnds(spec.strategy.waves, selected.length);
  let wave = 0;
  return selected.map((a, rank) => {
    while (wave < ends.length - 1 && rank >= ends[wave]!) wave++;
    return { agentId: a.agentId, wave, rank, orderKey: a.orderKey };
  });
}

/** How many agents of a wave of `size` may fail (the spec's failureBudget: a count, or a share of the wave rounded down). */
export function failureBudget(budget: RolloutSpec['strategy']['failureBudget'], size: number): number {
  return typeof budget === 'number' ? budget : Math.floor((Number(budget.slice(0, -1)) / 100) * size);
}
