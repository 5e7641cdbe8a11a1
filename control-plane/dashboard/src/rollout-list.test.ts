import { describe, expect, it } from 'vitest';
import type { RolloutSummary, RolloutView } from './api-types.js';
import { mergeRollouts, newerView, waveText } from './rollout-list.js';

const summary = (id: string, createdAtMs: number, updatedAtMs: number, status: RolloutSummary['status'] = 'running'): RolloutSummary => ({
  id,
  name: id,
  status,
  wave: 0,
  waves: 2,
  targets: 1,
  model: 'constant@2.0.0',
  configVersion: null,
  createdAtMs,
  createdBy: 'operator',
  updatedAtMs,
});

describe('rollouts list', () => {
  it('keeps the later state of each rollout, whether the GET or an event brought it, newest rollout first', () => {
    const fetched = [summary('a', 100, 150, 'running'), summary('b', 200, 200, 'pending')];
    const pushed = [summary('b', 200, 260, 'running'), summary('a', 100, 120, 'pending'), summary('c', 300, 300, 'pending')];
    const merged = mergeRollouts(fetched, pushed);
    expect(merged.map((r) => [r.id, r.status])).toEqual([
      ['c', 'pending'],
      ['b', 'running'],
      // The event was older than the GET's answer: the GET's state stays.
      ['a', 'running'],
    ]);
  });

  it('reads the wave for humans', () => {
    expect(waveText({ status: 'pending', wave: 0, waves: 3 })).toBe('not started (3 waves)');
    expect(waveText({ status: 'running', wave: 1, waves: 3 })).toBe('2 of 3');
    expect(waveText({ status: 'succeeded', wave: 0, waves: 1 })).toBe('1 of 1');
  });

  it("shows an action's answer until a later read", () => {
    const at = (updatedAtMs: number) => ({ updatedAtMs }) as RolloutView;
    expect(newerView(undefined, undefined)).toBeUndefined();
    expect(newerView(at(1), undefined)).toEqual(at(1));
    expect(newerView(undefined, at(1))).toEqual(at(1));
    expect(newerView(at(1), at(2))).toEqual(at(2));
    const read = at(2);
    expect(newerView(read, at(2))).toBe(read);
  });
});
