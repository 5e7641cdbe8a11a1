import { describe, expect, it } from 'vitest';
import type { RolloutStatus } from './api-types.js';
import { actionAllowed, actionText, ROLLOUT_ACTIONS } from './rollout-actions.js';

const STATUSES: RolloutStatus[] = ['pending', 'running', 'paused', 'succeeded', 'failed', 'rolled-back', 'aborted'];

describe('rollout actions', () => {
  it("enable the buttons the control plane's planner allows, per status", () => {
    const table = Object.fromEntries(STATUSES.map((s) => [s, ROLLOUT_ACTIONS.filter((a) => actionAllowed(a, s))]));
    expect(table).toEqual({
      pending: ['pause', 'abort'],
      running: ['pause', 'abort', 'rollback'],
      paused: ['resume', 'abort', 'rollback'],
      succeeded: ['rollback'],
      failed: ['rollback'],
      // Rolled back is the end: nothing left to undo.
      'rolled-back': [],
      aborted: ['rollback'],
    });
  });

  it('say what each action does to the agents before it is confirmed', () => {
    const rollout = { name: 'model 2', wave: 1, targets: 3 };
    expect(actionText('rollback', rollout)).toMatchObject({ label: 'Roll back', destructive: true });
    expect(actionText('rollback', rollout).consequence).toContain('All 3 agents this rollout touched go back');
    expect(actionText('rollback', { ...rollout, targets: 1 }).consequence).toBe('The one agent this rollout touched goes back to what it ran before.');
    expect(actionText('abort', rollout).consequence).toContain('roll back to revert them');
    expect(actionText('resume', rollout).consequence).toContain('from wave 2');
    expect(actionText('pause', rollout).destructive).toBe(false);
  });
});
