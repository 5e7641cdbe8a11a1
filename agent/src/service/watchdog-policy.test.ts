import { describe, expect, it } from 'vitest';
import type { HealthCheck } from '../http/http-server.js';
import { decideWatchdog, DEFAULT_RESTART_AFTER_FAILING_MS, INITIAL_WATCHDOG_STATE, type WatchdogState } from './watchdog-policy.js';

const ok: HealthCheck[] = [
  { name: 'outbox', ok: true, detail: '10 of 100 bytes' },
  { name: 'broker', ok: true },
];
const outboxFailing: HealthCheck[] = [{ name: 'outbox', ok: false, detail: 'the last commit failed' }, { name: 'broker', ok: true }];
const inferenceFailing: HealthCheck[] = [...ok, { name: 'inference', ok: false, detail: 'no model loaded' }];

/** Runs the policy over `steps` (time, checks) and returns each decision. */
function run(steps: [number, HealthCheck[]][]) {
  let state: WatchdogState = INITIAL_WATCHDOG_STATE;
  return steps.map(([nowMs, checks]) => {
    const decision = decideWatchdog(state, checks, nowMs);
    state = decision.state;
    return decision;
  });
}

describe('decideWatchdog', () => {
  it('feeds a healthy agent and says so', () => {
    const [decision] = run([[0, ok]]);
    expect(decision).toMatchObject({ feed: true, status: 'healthy', overdue: [] });
  });

  it('keeps feeding through a short outbox failure, stops once it lasts longer than the policy allows', () => {
    const limit = DEFAULT_RESTART_AFTER_FAILING_MS;
    const decisions = run([
      [1_000, outboxFailing],
      [1_000 + limit, outboxFailing],
      [1_000 + limit + 1, outboxFailing],
    ]);
    expect(decisions.map((d) => d.feed)).toEqual([true, true, false]);
    expect(decisions[0]!.status).toBe('degraded: outbox for 0 s: the last commit failed');
    expect(decisions[2]!.overdue).toEqual(['outbox']);
    expect(decisions[2]!.status).toMatch(/^watchdog no longer fed \(outbox\); systemd restarts the agent: outbox for 120 s/);
  });

  it('a pass in between starts the count again', () => {
    const limit = DEFAULT_RESTART_AFTER_FAILING_MS;
    const decisions = run([
      [0, outboxFailing],
      [limit / 2, ok],
      [limit / 2 + 1, outboxFailing],
      [limit + 10, outboxFailing],
    ]);
    expect(decisions.map((d) => d.feed)).toEqual([true, true, true, true]);
    expect(decisions[1]!.status).toBe('healthy');
  });

  it('never starves the watchdog for checks a restart does not cure (inference, bridge)', () => {
    const decisions = run([
      [0, inferenceFailing],
      [10 * DEFAULT_RESTART_AFTER_FAILING_MS, inferenceFailing],
    ]);
    expect(decisions.map((d) => d.feed)).toEqual([true, true]);
    expect(decisions[1]!.status).toBe('degraded: inference: no model loaded');
  });

  it('an unanswered /healthz counts like a failing outbox', () => {
    const silent: HealthCheck[] = [{ name: 'healthz', ok: false, detail: 'timeout' }];
    const decisions = run([
      [0, silent],
      [DEFAULT_RESTART_AFTER_FAILING_MS + 1, silent],
    ]);
    expect(decisions.map((d) => d.feed)).toEqual([true, false]);
  });
});
