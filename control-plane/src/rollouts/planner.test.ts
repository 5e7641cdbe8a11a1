import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isOutpostError, RolloutSpecSchema, type DesiredState, type RolloutDoc, type RolloutSpecInput } from '@outpost/shared';
import { applyOperatorAction, createRolloutDoc, desiredFor, desiredWrites, mayStartWave, planStep, type ObservedAgent } from './planner.js';
import { assignWaves, waveEnds } from './waves.js';

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);
const MODEL = { name: 'anomaly', version: '2.0.0', sha256: 'a'.repeat(64), rollback: false };

function spec(input: Partial<RolloutSpecInput> = {}) {
  return RolloutSpecSchema.parse({
    name: 'test',
    change: { model: { name: 'anomaly', version: '2.0.0' } },
    strategy: { waves: [1, 2, 3], soak: '10s', waveDeadline: '60s' },
    gates: { anomalyRate: { minRows: 100 } },
    ...input,
  });
}

/** A fleet that does what it is told: each tick, every agent applies its desired state (or refuses as told) and scores rows. */
class Fleet {
  readonly agents = new Map<string, ObservedAgent>();
  readonly desired = new Map<string, DesiredState>();
  refuse = new Set<string>();
  offline = new Set<string>();
  /** Anomaly share the rollout's model flags (the old one flags 1 %). */
  newModelAnomalyShare = 0.01;

  constructor(count: number, labels: (i: number) => Record<string, string> = () => ({ site: 'lab' })) {
    for (let i = 0; i < count; i++) this.add(`gw-${String(i).padStart(2, '0')}`, labels(i));
  }

  add(agentId: string, labels: Record<string, string>): void {
    this.agents.set(agentId, { agentId, labels, online: true, degraded: false, desired: undefined, report: undefined, versions: { model: 'anomaly@1.0.0' }, counts: { model: 'anomaly@1.0.0', rows: 10_000, anomalies: 100, errors: 0 } });
  }

  list(): ObservedAgent[] {
    return [...this.agents.values()].map((a) => ({ ...a, online: !this.offline.has(a.agentId), desired: this.desired.get(a.agentId) }));
  }

  /** Writes what the rollout asks, then lets every online agent apply it. */
  converge(doc: RolloutDoc, nowMs: number): void {
    for (const write of desiredWrites(doc, new Map([...this.agents.keys()].map((id) => [id, this.desired.get(id)])), nowMs)) this.desired.set(write.agentId, write);
    for (const [id, desired] of this.desired) {
      const agent = this.agents.get(id)!;
      if (this.offline.has(id) || agent.report?.revision === desired.updatedAtMs) continue;
      if (this.refuse.has(id) && desired.origin?.action === 'apply') {
        agent.report = { revision: desired.updatedAtMs, status: 'refused', code: 'CONFIG_INVALID', reason: 'ingest.rateLimitMsgsPerS: too small', origin: desired.origin, atMs: nowMs };
        continue;
      }
      const model = desired.model === null ? 'anomaly@1.0.0' : `${desired.model.name}@${desired.model.version}`;
      agent.report = { revision: desired.updatedAtMs, status: 'applied', origin: desired.origin, atMs: nowMs };
      agent.versions = { model, config: desired.config?.version ?? 'local' };
      const share = model === 'anomaly@1.0.0' ? 0.01 : this.newModelAnomalyShare;
      agent.counts = { model, rows: 5_000, anomalies: Math.round(5_000 * share), errors: 0 };
    }
  }
}

/** Runs controller ticks every second until nothing changes for `quietTicks` or `maxTicks` pass; returns the last doc. */
function run(doc: RolloutDoc, fleet: Fleet, startMs = T0, maxTicks = 2_000): { doc: RolloutDoc; nowMs: number } {
  let nowMs = startMs;
  for (let tick = 0; tick < maxTicks; tick++) {
    fleet.converge(doc, nowMs);
    const next = planStep(doc, fleet.list(), nowMs);
    if (next !== undefined) doc = next;
    else if (doc.status !== 'running' && doc.status !== 'pending') break;
    nowMs += 1_000;
  }
  fleet.converge(doc, nowMs);
  return { doc, nowMs };
}

describe('waves', () => {
  it('counts are wave sizes, percentages cumulative shares, the last wave takes the rest', () => {
    expect(waveEnds([1, 2, 3], 6)).toEqual([1, 3, 6]);
    expect(waveEnds([1, 2], 10)).toEqual([1, 10]);
    expect(waveEnds(['10%', '50%', '100%'], 20)).toEqual([2, 10, 20]);
    expect(waveEnds(['1%', '10%', '100%'], 5)).toEqual([1, 2, 5]); // each wave at least one agent while any remain
    expect(waveEnds([1, 2, 3], 2)).toEqual([1, 2, 2]);
  });

  it('orders agents by a hash of rollout id and agent id: reproducible, and different per rollout', () => {
    const agents = Array.from({ length: 50 }, (_, i) => ({ agentId: `gw-${i}`, labels: { site: i % 2 === 0 ? 'north' : 'south' } }));
    const s = spec({ selector: { labels: { site: 'north' } } });
    const a = assignWaves('r1', s, agents);
    expect(a.map((x) => x.agentId)).toEqual(assignWaves('r1', s, [...agents].reverse()).map((x) => x.agentId));
    expect(a).toHaveLength(25);
    expect(a.every((x) => Number(x.agentId.slice(3)) % 2 === 0)).toBe(true);
    expect(a.map((x) => x.agentId)).not.toEqual(assignWaves('r2', s, agents).map((x) => x.agentId));
    expect(a.map((x) => x.wave)).toEqual([0, 1, 1, ...Array.from({ length: 22 }, () => 2)]);
  });
});

describe('planStep', () => {
  it('rolls a model out in waves 1 / 2 / 3 with soak, recording every step with its gate values', () => {
    const fleet = new Fleet(6);
    const { doc } = run(createRolloutDoc('r-good', spec(), MODEL, 'operator:alice', T0), fleet);
    expect(doc.status).toBe('succeeded');
    expect(doc.history.map((h) => [h.seq, h.action, h.wave])).toEqual([
      [1, 'created', undefined],
      [2, 'wave-started', 0],
      [3, 'wave-passed', 0],
      [4, 'wave-started', 1],
      [5, 'wave-passed', 1],
      [6, 'wave-started', 2],
      [7, 'succeeded', 2],
    ]);
    expect(doc.waves.map((w) => doc.targets.filter((t) => t.wave === w.index).length)).toEqual([1, 2, 3]);
    const passed = doc.history.find((h) => h.action === 'wave-passed')!;
    expect(passed.gates!.map((g) => [g.gate, g.outcome])).toEqual([
      ['applied', 'pass'],
      ['healthy', 'pass'],
      ['anomalyRate', 'pass'],
    ]);
    expect(passed.gates!.find((g) => g.gate === 'anomalyRate')!.values).toMatchObject({ rows: 5_000, anomalies: 50, baselineRate: 0.01 });
    for (const id of fleet.agents.keys()) expect(fleet.agents.get(id)!.versions.model).toBe('anomaly@2.0.0');
    // Each wave soaked: its gates were judged at least the soak after it settled.
    for (const w of doc.waves) expect(doc.history.some((h) => h.wave === w.index && h.atMs >= w.settledAtMs! + 10_000)).toBe(true);
  });

  it('a model that flags everything fails the first wave and every updated agent goes back; no agent outside the wave ever got it', () => {
    const fleet = new Fleet(6);
    fleet.newModelAnomalyShare = 1;
    const { doc } = run(createRolloutDoc('r-bad', spec(), MODEL, 'operator:alice', T0), fleet);
    expect(doc.status).toBe('rolled-back');
    const failedEntry = doc.history.at(-1)!;
    expect(failedEntry).toMatchObject({ action: 'wave-failed', wave: 0, status: 'rolled-back' });
    expect(failedEntry.gates!.find((g) => g.gate === 'anomalyRate')!.outcome).toBe('fail');
    expect(doc.targets.map((t) => t.wave)).toEqual([0]);
    for (const a of fleet.agents.values()) expect(a.versions.model).toBe('anomaly@1.0.0');
    const reverted = fleet.desired.get(doc.targets[0]!.agentId)!;
    expect(reverted).toMatchObject({ model: null, origin: { rolloutId: 'r-bad', action: 'rollback' } });
    expect([...fleet.desired.keys()]).toEqual([doc.targets[0]!.agentId]);
  });

  it('a model that never flags fails once enough anomalies were expected', () => {
    const fleet = new Fleet(6);
    fleet.newModelAnomalyShare = 0;
    const { doc } = run(createRolloutDoc('r-mute', spec(), MODEL, 'op', T0), fleet);
    expect(doc.status).toBe('rolled-back');
    expect(doc.history.at(-1)!.gates!.find((g) => g.gate === 'anomalyRate')!.detail).toMatch(/hardly flags/);
  });

  it('refusals beyond the failure budget stop the rollout at the wave; with onFailure pause it waits for a human', () => {
    const fleet = new Fleet(6);
    const s = spec({ change: { config: { ingest: { rateLimitMsgsPerS: -1 } } }, gates: {}, onFailure: 'pause' });
    for (const id of fleet.agents.keys()) fleet.refuse.add(id);
    const { doc } = run(createRolloutDoc('r-cfg', s, null, 'op', T0), fleet);
    expect(doc.status).toBe('paused');
    expect(doc.reason).toMatch(/wave 1 failed: applied: 1 of 1 did not apply/);
    // The refusal is the applied gate's finding: the healthy gate, with every updated agent healthy, passes.
    expect(doc.waves[0]!.gates!.map((g) => [g.gate, g.outcome])).toEqual([
      ['applied', 'fail'],
      ['healthy', 'pass'],
    ]);
    expect(doc.waves[0]!.failed).toEqual([{ agentId: doc.targets[0]!.agentId, reason: 'refused: CONFIG_INVALID ingest.rateLimitMsgsPerS: too small' }]);
    expect(doc.targets).toHaveLength(1);
  });

  it('an agent offline through its wave counts against the budget after the deadline; within budget the rollout goes on', () => {
    const fleet = new Fleet(6);
    const s = spec({ gates: {}, strategy: { waves: [3, 3], soak: '5s', waveDeadline: '30s', failureBudget: 1 } });
    const firstWave = assignWaves('r-off', s, fleet.list()).filter((a) => a.wave === 0);
    fleet.offline.add(firstWave[0]!.agentId);
    const { doc } = run(createRolloutDoc('r-off', s, MODEL, 'op', T0), fleet);
    expect(doc.status).toBe('succeeded');
    expect(doc.waves[0]!.failed).toEqual([{ agentId: firstWave[0]!.agentId, reason: 'no answer before the wave deadline' }]);
    expect(doc.waves[0]!.settledAtMs! - doc.waves[0]!.startedAtMs!).toBe(30_000);
    // Back online, it converges: its desired state is the rollout's.
    fleet.offline.clear();
    fleet.converge(doc, T0 + 1_000_000);
    expect(fleet.agents.get(firstWave[0]!.agentId)!.versions.model).toBe('anomaly@2.0.0');
  });

  it('an agent that joins the selector mid-rollout gets the change when its wave has started', () => {
    const fleet = new Fleet(6);
    let doc = createRolloutDoc('r-join', spec({ gates: {} }), MODEL, 'op', T0);
    let nowMs = T0;
    for (; doc.wave < 1 || doc.waves[1]!.startedAtMs === undefined; nowMs += 1_000) {
      fleet.converge(doc, nowMs);
      doc = planStep(doc, fleet.list(), nowMs) ?? doc;
    }
    // Late agents: those that rank into waves already started are targeted at once.
    for (let i = 0; i < 40; i++) fleet.add(`late-${i}`, { site: 'lab' });
    const next = planStep(doc, fleet.list(), nowMs)!;
    expect(next.history.at(-1)!.action).toBe('agents-joined');
    const ranked = assignWaves('r-join', doc.spec, fleet.list());
    const joined = next.targets.filter((t) => t.agentId.startsWith('late-'));
    expect(joined.length).toBeGreaterThan(0);
    for (const t of joined) expect(t.wave).toBe(ranked.find((r) => r.agentId === t.agentId)!.wave);
    expect(joined.every((t) => t.wave <= 1)).toBe(true);
  });

  it('gates without enough rows at the end of the soak soak on: the wave passes once the rows are there, or pauses as inconclusive waveDeadline later', () => {
    const starve = (fleet: Fleet, rows: number): void => {
      for (const agent of fleet.agents.values()) if (agent.counts?.model === 'anomaly@2.0.0') agent.counts = { ...agent.counts, rows, anomalies: Math.round(rows * 0.01) };
    };
    const stepUntil = (doc: RolloutDoc, fleet: Fleet, rows: number, untilMs: number, fromMs: number): { doc: RolloutDoc; nowMs: number } => {
      let nowMs = fromMs;
      for (; nowMs <= untilMs && (doc.status === 'running' || doc.status === 'pending'); nowMs += 1_000) {
        fleet.converge(doc, nowMs);
        starve(fleet, rows);
        doc = planStep(doc, fleet.list(), nowMs) ?? doc;
      }
      return { doc, nowMs };
    };
    const s = spec({ strategy: { waves: [1, 5], soak: '10s', waveDeadline: '60s' } });

    // Rows arrive late: still soaking past the soak's end, then the wave passes.
    const late = new Fleet(6);
    const slow = stepUntil(createRolloutDoc('r-late', s, MODEL, 'op', T0), late, 10, T0 + 40_000, T0);
    expect(slow.doc.status).toBe('running');
    expect(slow.doc.history.map((h) => h.action)).toEqual(['created', 'wave-started']);
    const settled = slow.doc.waves[0]!.settledAtMs!;
    expect(slow.nowMs).toBeGreaterThan(settled + 10_000);
    const passed = stepUntil(slow.doc, late, 5_000, slow.nowMs + 5_000, slow.nowMs);
    expect(passed.doc.history.map((h) => h.action)).toContain('wave-passed');

    // They never arrive: inconclusive, waveDeadline after the soak ended.
    const never = new Fleet(6);
    const starved = stepUntil(createRolloutDoc('r-never', s, MODEL, 'op', T0), never, 10, T0 + 200_000, T0);
    expect(starved.doc.status).toBe('paused');
    const entry = starved.doc.history.at(-1)!;
    expect(entry.action).toBe('wave-inconclusive');
    expect(entry.atMs).toBeGreaterThanOrEqual(starved.doc.waves[0]!.settledAtMs! + 10_000 + 60_000);
    expect(entry.detail).toContain('anomalyRate');
  });

  it('waits for its start time and its maintenance window', () => {
    const s = spec({ startAt: new Date(T0 + 3_600_000).toISOString(), maintenanceWindow: { start: '23:00', end: '02:00' } });
    expect(mayStartWave(s, T0)).toBe(false);
    expect(mayStartWave(s, Date.UTC(2026, 11, 7, 23, 30))).toBe(true);
    expect(mayStartWave(s, Date.UTC(2026, 11, 8, 1, 59))).toBe(true);
    expect(mayStartWave(s, Date.UTC(2026, 11, 8, 2, 0))).toBe(false);
    expect(planStep(createRolloutDoc('r-wait', s, MODEL, 'op', T0), new Fleet(3).list(), T0)).toBeUndefined();
  });
});

describe('operator actions', () => {
  it('pause, resume, abort and rollback are steps of their own, refused where they make no sense', () => {
    let doc = createRolloutDoc('r-ops', spec({ gates: {} }), MODEL, 'op', T0);
    const fleet = new Fleet(6);
    doc = planStep(doc, fleet.list(), T0)!;
    doc = applyOperatorAction(doc, 'pause', 'operator:bob', T0 + 1);
    expect(doc.status).toBe('paused');
    expect(planStep(doc, fleet.list(), T0 + 100_000)).toBeUndefined(); // a paused rollout takes no step
    doc = applyOperatorAction(doc, 'resume', 'operator:bob', T0 + 2);
    expect(doc.status).toBe('running');
    doc = applyOperatorAction(doc, 'rollback', 'operator:bob', T0 + 3);
    expect(doc.status).toBe('rolled-back');
    expect(doc.history.slice(-3).map((h) => [h.action, h.actor])).toEqual([
      ['paused', 'operator:bob'],
      ['resumed', 'operator:bob'],
      ['rollback', 'operator:bob'],
    ]);
    try {
      applyOperatorAction(doc, 'resume', 'operator:bob', T0 + 4);
      expect.unreachable();
    } catch (err) {
      expect(isOutpostError(err, 'ROLLOUT_STATE_INVALID')).toBe(true);
    }
    expect(() => applyOperatorAction(doc, 'rollback', 'operator:bob', T0 + 4)).toThrow(/cannot rollback a rollout that is rolled-back/);
  });

  it('a rollback reverts every agent the rollout touched in one step, to what each had before', () => {
    const fleet = new Fleet(6);
    const earlier: DesiredState = { v: 1, agentId: 'gw-00', model: { ...MODEL, version: '1.5.0' }, config: null, allowListenerRestart: false, origin: { rolloutId: 'older', wave: 0, action: 'apply' }, updatedAtMs: 1 };
    fleet.desired.set('gw-00', earlier);
    const { doc } = run(createRolloutDoc('r-back', spec({ gates: {} }), MODEL, 'op', T0), fleet);
    expect(doc.status).toBe('succeeded');
    const back = applyOperatorAction(doc, 'rollback', 'operator:carol', T0 + 999_999);
    const writes = desiredWrites(back, new Map([...fleet.agents.keys()].map((id) => [id, fleet.desired.get(id)])), T0 + 999_999);
    expect(writes).toHaveLength(6);
    expect(writes.find((w) => w.agentId === 'gw-00')).toMatchObject({ model: { version: '1.5.0', rollback: true }, origin: { rolloutId: 'r-back', action: 'rollback' } });
    expect(writes.filter((w) => w.agentId !== 'gw-00').every((w) => w.model === null)).toBe(true);
  });

  it('an abort keeps the change on agents that applied it and sends the others back, so none keeps a desired state it refused', () => {
    const fleet = new Fleet(6);
    const s = spec({ change: { config: { ingest: { rateLimitMsgsPerS: -1 } } }, gates: {}, strategy: { waves: [3, 3], soak: '1s' }, onFailure: 'pause' });
    const firstWave = assignWaves('r-abort', s, fleet.list()).filter((a) => a.wave === 0);
    fleet.refuse.add(firstWave[0]!.agentId);
    fleet.refuse.add(firstWave[1]!.agentId);
    const { doc, nowMs } = run(createRolloutDoc('r-abort', s, null, 'op', T0), fleet);
    expect(doc.status).toBe('paused');
    const aborted = applyOperatorAction(doc, 'abort', 'operator:dan', nowMs, fleet.list());
    expect(aborted.targets.map((t) => [t.agentId, t.reverted])).toEqual([
      [firstWave[0]!.agentId, true],
      [firstWave[1]!.agentId, true],
      [firstWave[2]!.agentId, false],
    ].sort((a, b) => aborted.targets.findIndex((t) => t.agentId === a[0]) - aborted.targets.findIndex((t) => t.agentId === b[0])));
    fleet.converge(aborted, nowMs + 1);
    expect(fleet.desired.get(firstWave[0]!.agentId)).toMatchObject({ config: null, origin: { action: 'rollback' } });
    expect(fleet.desired.get(firstWave[2]!.agentId)).toMatchObject({ origin: { action: 'apply' } });
    expect(aborted.history.at(-1)).toMatchObject({ action: 'aborted', actor: 'operator:dan', detail: '1 agent(s) keep the change (roll back to revert them); 2 that had not applied it go back' });
  });

  it('never overwrites the desired state a later rollout set', () => {
    const fleet = new Fleet(3);
    const { doc } = run(createRolloutDoc('r-first', spec({ gates: {}, strategy: { waves: ['100%'], soak: 0 } }), MODEL, 'op', T0), fleet);
    const target = doc.targets[0]!;
    const later: DesiredState = { ...desiredFor(doc, target, T0), origin: { rolloutId: 'r-later', wave: 0, action: 'apply' } };
    const writes = desiredWrites(applyOperatorAction(doc, 'rollback', 'op', T0 + 1), new Map([[target.agentId, later]]), T0 + 1);
    expect(writes.map((w) => w.agentId)).not.toContain(target.agentId);
    expect(writes).toHaveLength(doc.targets.length - 1);
  });
});

describe('planner properties', () => {
  it('whatever the fleet does, steps are numbered without gaps, each selected agent is targeted once, no wave before its time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 30 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constantFrom('10%', '50%', '100%')), { minLength: 1, maxLength: 4 }),
        fc.array(fc.boolean(), { minLength: 30, maxLength: 30 }),
        fc.integer({ min: 0, max: 2 }),
        (count, waves, refusing, budget) => {
          const parsed = RolloutSpecSchema.safeParse({ name: 'p', change: { model: { name: 'anomaly', version: '2.0.0' } }, strategy: { waves, soak: '2s', waveDeadline: '10s', failureBudget: budget } });
          fc.pre(parsed.success);
          const fleet = new Fleet(count, (i) => ({ site: i % 3 === 0 ? 'other' : 'lab' }));
          [...fleet.agents.keys()].forEach((id, i) => refusing[i] && fleet.refuse.add(id));
          const s = { ...parsed.data, selector: { labels: { site: 'lab' } } };
          const { doc } = run(createRolloutDoc('r-prop', s, MODEL, 'op', T0), fleet);
          expect(doc.history.map((h) => h.seq)).toEqual(doc.history.map((_, i) => i + 1));
          const ids = doc.targets.map((t) => t.agentId);
          expect(new Set(ids).size).toBe(ids.length);
          const assigned = new Map(assignWaves('r-prop', s, fleet.list()).map((a) => [a.agentId, a.wave]));
          for (const t of doc.targets) {
            expect(assigned.get(t.agentId)).toBe(t.wave);
            expect(t.wave).toBeLessThanOrEqual(doc.wave);
          }
          if (doc.status === 'succeeded') expect(ids.length).toBe(assigned.size);
          expect(['succeeded', 'rolled-back', 'paused']).toContain(doc.status);
        },
      ),
      { numRuns: 150 },
    );
  });
});
