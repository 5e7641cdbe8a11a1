// The four things an operator can do to a rollout, when each is allowed, and what each does,
// in the words of the confirmation. Pure.
import type { RolloutStatus } from './api-types.js';
import { formatCount } from './format.js';

export const ROLLOUT_ACTIONS = ['pause', 'resume', 'abort', 'rollback'] as const;
export type OperatorAction = (typeof ROLLOUT_ACTIONS)[number];

/**
 * The statuses that allow each action: the control plane's table (`ALLOWED` in
 * control-plane/src/rollouts/planner.ts), which it enforces with 409 ROLLOUT_STATE_INVALID.
 * The API does not say which actions a rollout allows, and the dashboard may not import the
 * planner, so this copy only decides which buttons are enabled; the control plane still decides.
 */
const ALLOWED: Readonly<Record<OperatorAction, readonly RolloutStatus[]>> = {
  pause: ['pending', 'running'],
  resume: ['paused'],
  abort: ['pending', 'running', 'paused'],
  rollback: ['running', 'paused', 'succeeded', 'failed', 'aborted'],
};

/** Whether a rollout in `status` takes `action`. */
export function actionAllowed(action: OperatorAction, status: RolloutStatus): boolean {
  return ALLOWED[action].includes(status);
}

/** Rollouts in these statuses take no further step by themselves. */
export const FINISHED_STATUSES: ReadonlySet<RolloutStatus> = new Set<RolloutStatus>(['succeeded', 'failed', 'rolled-back', 'aborted']);

export interface ActionText {
  /** The button. */
  label: string;
  /** The dialog's question. */
  title: string;
  /** What happens, for the operator to weigh before confirming. */
  consequence: string;
  /** Cannot be taken back by another button (abort, rollback). */
  destructive: boolean;
}

/** The button and confirmation text of `action` on a rollout with `targets` agents touched so far, at 0-based `wave`. */
export function actionText(action: OperatorAction, rollout: { name: string; wave: number; targets: number }): ActionText {
  switch (action) {
    case 'pause':
      return {
        label: 'Pause',
        title: `Pause “${rollout.name}”?`,
        consequence: 'No further step until it is resumed: no wave starts and none is judged. Agents already given the change keep it.',
        destructive: false,
      };
    case 'resume':
      return {
        label: 'Resume',
        title: `Resume “${rollout.name}”?`,
        consequence: `It goes on from wave ${rollout.wave + 1}. If that wave was judged inconclusive or failed, it counts as passed and the next wave starts.`,
        destructive: false,
      };
    case 'abort':
      return {
        label: 'Abort',
        title: `Abort “${rollout.name}”?`,
        consequence: 'It stops for good: no further wave starts. Agents that applied the change keep it; roll back to revert them.',
        destructive: true,
      };
    case 'rollback': {
      const who =
        rollout.targets === 0
          ? 'No agent was given the change yet: nothing changes on the fleet.'
          : rollout.targets === 1
            ? 'The one agent this rollout touched goes back to what it ran before.'
            : `All ${formatCount(rollout.targets)} agents this rollout touched go back to what they ran before, in one step, not wave by wave.`;
      return { label: 'Roll back', title: `Roll back “${rollout.name}”?`, consequence: who, destructive: true };
    }
  }
}
