// The rollout planner (DESIGN section 3): a pure function of the rollout's document, what the
// fleet reports, and the time. It says what the document becomes next (one step, one history
// entry) and what desired state each agent the rollout touched should have. The controller
// around it does the I/O; because each step is one compare-and-set write of the document, any
// number of replicas can run it and any may die between two steps.
import {
  configVersion,
  mergePatch,
  OutpostError,
  ErrorCode,
  RolloutStatus,
  TERMINAL_STATUSES,
  type DesiredModel,
  type DesiredReport,
  type DesiredState,
  type GateResult,
  type HistoryEntry,
  type ManagedConfigPatch,
  type RolloutDoc,
  type RolloutSpec,
  type RolloutTarget,
} from '@outpost/shared';
import { evaluateGates, waveOutcome, type InferenceCounts, type WaveMember } from './gates.js';
import { assignWaves, failureBudget, type SelectableAgent } from './waves.js';

/** What the controller knows of one agent: identity, health, its desired state and what it reports. */
export interface ObservedAgent extends SelectableAgent {
  online: boolean;
  degraded: boolean;
  /** Its desired state in KV now; undefined when it never had one. */
  desired: DesiredState | undefined;
  /** What it did with its desired state (heartbeat). */
  report: DesiredReport | undefined;
  /** `versions` of its heartbeat: `model` as `name@version`, `config` a config version. */
  versions: { model?: string | undefined; config?: string | undefined };
  /** Inference counts for the model it runs, since that model became active. */
  counts: InferenceCounts | undefined;
}

export type OperatorAction = 'pause' | 'resume' | 'abort' | 'rollback';

export const CONTROLLER_ACTOR = 'controller';

/** A new rollout document, status pending. */
export function createRolloutDoc(id: string, spec: RolloutSpec, model: DesiredModel | null, createdBy: string, nowMs: number): RolloutDoc {
  const doc: RolloutDoc = {
    v: 1,
    id,
    spec,
    model,
    configVersion: spec.change.config === undefined ? null : configVersion(spec.change.config),
    status: RolloutStatus.pending,
    wave: 0,
    waves: spec.strategy.waves.map((_, index) => ({ index, gates: [], failed: [] })),
    targets: [],
    history: [],
    createdAtMs: nowMs,
    createdBy,
    updatedAtMs: nowMs,
  };
  return withEntry(doc, nowMs, createdBy, 'created', { detail: spec.name });
}

/** A copy of `doc` with one more history entry (the step this write makes). */
function withEntry(doc: RolloutDoc, nowMs: number, actor: string, action: HistoryEntry['action'], extra: Partial<Pick<HistoryEntry, 'wave' | 'detail' | 'gates'>> = {}): RolloutDoc {
  const entry: HistoryEntry = { seq: doc.history.length + 1, atMs: nowMs, actor, action, status: doc.status, detail: extra.detail ?? '', ...(extra.wave === undefined ? {} : { wave: extra.wave }), ...(extra.gates === undefined ? {} : { gates: extra.gates }) };
  return { ...doc, history: [...doc.history, entry], updatedAtMs: nowMs };
}

/** Minutes since midnight UTC of `nowMs`. */
function minuteOfDayUtc(nowMs: number): number {
  const d = new Date(nowMs);
  return d.getUTCHours() * 60 + d.getUTCMinutes();
}

const toMinutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Whether a wave may start at `nowMs`: after startAt, inside the maintenance window (which may wrap midnight). */
export function mayStartWave(spec: RolloutSpec, nowMs: number): boolean {
  if (spec.startAt !== undefined && Date.parse(spec.startAt) > nowMs) return false;
  const window = spec.maintenanceWindow;
  if (window === undefined) return true;
  const now = minuteOfDayUtc(nowMs);
  const start = toMinutes(window.start);
  const end = toMinutes(window.end);
  return start <= end ? now >= start && now < end : now >= start || now < end;
}

/** The desired state a targeted agent should have under `doc`: the change, or (rolled back) what it had before. */
export function desiredFor(doc: RolloutDoc, target: RolloutTarget, nowMs: number): DesiredState {
  const previous = target.previous;
  if (doc.status === RolloutStatus.rolledBack || target.reverted) {
    return {
      v: 1,
      agentId: target.agentId,
      // Going back may mean a lower model version: the desired state says it is a rollback.
      model: previous?.model == null ? null : { ...previous.model, rollback: true },
      config: previous?.config ?? null,
      allowListenerRestart: doc.spec.change.allowListenerRestart || (previous?.allowListenerRestart ?? false),
      origin: { rolloutId: doc.id, wave: target.wave, action: 'rollback' },
      updatedAtMs: nowMs,
    };
  }
  const change = doc.spec.change;
  const patch = change.config === undefined ? undefined : (mergePatch(previous?.config?.patch ?? {}, change.config) as ManagedConfigPatch);
  return {
    v: 1,
    agentId: target.agentId,
    model: doc.model ?? previous?.model ?? null,
    config: patch === undefined ? (previous?.config ?? null) : { version: configVersion(patch), patch },
    allowListenerRestart: change.allowListenerRestart,
    origin: { rolloutId: doc.id, wave: target.wave, action: 'apply' },
    updatedAtMs: nowMs,
  };
}

/** Two desired states ask the same of an agent (their times aside). */
export function sameDesired(a: DesiredState | null | undefined, b: DesiredState | null | undefined): boolean {
  const strip = (d: DesiredState | null | undefined): string => (d == null ? 'null' : JSON.stringify({ ...d, updatedAtMs: 0 }));
  return strip(a) === strip(b);
}

/**
 * Whether this rollout may write the agent's desired state now: the agent's current desired
 * state is this rollout's, or still the one the rollout found (a later rollout's is left alone).
 */
export function ownsDesired(doc: RolloutDoc, target: RolloutTarget, current: DesiredState | undefined): boolean {
  if (current?.origin?.rolloutId === doc.id) return true;
  return sameDesired(current ?? null, target.previous);
}

/** Where an agent stands with the change of `doc`. */
export function memberState(doc: RolloutDoc, target: RolloutTarget, agent: ObservedAgent | undefined, nowMs: number): 'applied' | 'refused' | 'pending' {
  const report = agent?.report;
  if (report?.origin?.rolloutId !== doc.id || report.origin.action !== 'apply') return 'pending';
  if (report.status === 'refused') return 'refused';
  const want = desiredFor(doc, target, nowMs);
  if (want.model !== null && agent!.versions.model !== `${want.model.name}@${want.model.version}`) return 'pending';
  if (want.config !== null && agent!.versions.config !== want.config.version) return 'pending';
  return 'applied';
}

/** Adds targets for every selected agent of waves up to `uptoWave` that has none yet. */
function addTargets(doc: RolloutDoc, agents: readonly ObservedAgent[], uptoWave: number, nowMs: number): { doc: RolloutDoc; added: string[] } {
  const byId = new Map(agents.map((a) => [a.agentId, a]));
  const targeted = new Set(doc.targets.map((t) => t.agentId));
  const added: RolloutTarget[] = [];
  for (const a of assignWaves(doc.id, doc.spec, agents)) {
    if (a.wave > uptoWave || targeted.has(a.agentId)) continue;
    const agent = byId.get(a.agentId)!;
    added.push({
      agentId: a.agentId,
      wave: a.wave,
      targetedAtMs: nowMs,
      previous: agent.desired ?? null,
      baseline: agent.counts === undefined ? null : { rows: agent.counts.rows, anomalies: agent.counts.anomalies },
      reverted: false,
    });
  }
  return { doc: added.length === 0 ? doc : { ...doc, targets: [...doc.targets, ...added] }, added: added.map((t) => t.agentId) };
}

function startWave(doc: RolloutDoc, wave: number, agents: readonly ObservedAgent[], nowMs: number): RolloutDoc {
  const { doc: withTargets, added } = addTargets(doc, agents, wave, nowMs);
  const waves = withTargets.waves.map((w) => (w.index === wave ? { ...w, startedAtMs: nowMs } : w));
  const next: RolloutDoc = { ...withTargets, status: RolloutStatus.running, wave, waves, reason: undefined };
  return withEntry(next, nowMs, CONTROLLER_ACTOR, 'wave-started', { wave, detail: added.length === 0 ? 'no agent in this wave' : `${added.length} agent(s): ${added.join(', ')}` });
}

/** Anomaly counts to compare the wave with: the agents not yet updated, or (none left) the updated ones before their update. */
function baselineFor(doc: RolloutDoc, agents: readonly ObservedAgent[]): { rows: number; anomalies: number; source: string } {
  const targeted = new Set(doc.targets.map((t) => t.agentId));
  const selected = new Set(assignWaves(doc.id, doc.spec, agents).map((a) => a.agentId));
  const others = agents.filter((a) => selected.has(a.agentId) && !targeted.has(a.agentId) && a.counts !== undefined);
  if (others.length > 0) {
    return { rows: others.reduce((n, a) => n + a.counts!.rows, 0), anomalies: others.reduce((n, a) => n + a.counts!.anomalies, 0), source: `${others.length} agent(s) not yet updated` };
  }
  const before = doc.targets.filter((t) => t.baseline !== null);
  return { rows: before.reduce((n, t) => n + t.baseline!.rows, 0), anomalies: before.reduce((n, t) => n + t.baseline!.anomalies, 0), source: 'updated agents before their update' };
}

function judgeWave(doc: RolloutDoc, agents: readonly ObservedAgent[], nowMs: number): { results: GateResult[]; failed: { agentId: string; reason: string }[] } {
  const byId = new Map(agents.map((a) => [a.agentId, a]));
  const members: WaveMember[] = doc.targets
    .filter((t) => t.wave === doc.wave)
    .map((t) => {
      const agent = byId.get(t.agentId);
      const state = memberState(doc, t, agent, nowMs);
      const refusal = agent?.report?.status === 'refused' ? `refused: ${agent.report.code ?? 'error'}${agent.report.reason === undefined ? '' : ` ${agent.report.reason}`}` : undefined;
      return {
        agentId: t.agentId,
        applied: state === 'applied',
        failure: state === 'refused' ? refusal : state === 'pending' ? 'no answer before the wave deadline' : undefined,
        online: agent?.online ?? false,
        degraded: agent?.degraded ?? false,
        counts: agent?.counts,
      };
    });
  const model = doc.model === null ? undefined : `${doc.model.name}@${doc.model.version}`;
  const { results, failedAgents } = evaluateGates({ spec: doc.spec, members, budget: failureBudget(doc.spec.strategy.failureBudget, members.length), model, baseline: baselineFor(doc, agents) });
  return { results, failed: failedAgents };
}

/**
 * One step of a rollout, or undefined when there is nothing to do yet. Paused and finished
 * rollouts take no automatic step (operators resume, abort or roll back).
 */
export function planStep(doc: RolloutDoc, agents: readonly ObservedAgent[], nowMs: number): RolloutDoc | undefined {
  if (doc.status === RolloutStatus.pending) return mayStartWave(doc.spec, nowMs) ? startWave(doc, 0, agents, nowMs) : undefined;
  if (doc.status !== RolloutStatus.running) return undefined;

  // An agent that joined the selector lands in the wave its rank falls in; if that wave has started, it gets the change now.
  const joined = addTargets(doc, agents, doc.wave, nowMs);
  if (joined.added.length > 0) return withEntry(joined.doc, nowMs, CONTROLLER_ACTOR, 'agents-joined', { wave: doc.wave, detail: joined.added.join(', ') });

  const wave = doc.waves[doc.wave]!;
  if (wave.outcome === 'passed') {
    if (doc.wave + 1 >= doc.waves.length) return undefined; // cannot happen: the last pass ends the rollout
    return mayStartWave(doc.spec, nowMs) ? startWave(doc, doc.wave + 1, agents, nowMs) : undefined;
  }
  const startedAtMs = wave.startedAtMs ?? nowMs;
  const members = doc.targets.filter((t) => t.wave === doc.wave);
  const byId = new Map(agents.map((a) => [a.agentId, a]));

  if (wave.settledAtMs === undefined) {
    const allAnswered = members.every((t) => memberState(doc, t, byId.get(t.agentId), nowMs) !== 'pending');
    const deadlinePassed = nowMs >= startedAtMs + doc.spec.strategy.waveDeadline;
    if (!allAnswered && !deadlinePassed) return undefined;
    // Bookkeeping, not a step: no history entry.
    return { ...doc, waves: doc.waves.map((w) => (w.index === doc.wave ? { ...w, settledAtMs: nowMs } : w)), updatedAtMs: nowMs };
  }
  if (nowMs < wave.settledAtMs + doc.spec.strategy.soak) return undefined;

  const { results, failed } = judgeWave(doc, agents, nowMs);
  const outcome = waveOutcome(results);
  const judged = doc.waves.map((w) => (w.index === doc.wave ? { ...w, outcome, gates: results, failed } : w));
  const summary = results.map((r) => `${r.gate} ${r.outcome}`).join(', ');
  if (outcome === 'passed') {
    const last = doc.wave + 1 >= doc.waves.length;
    const next: RolloutDoc = { ...doc, waves: judged, status: last ? RolloutStatus.succeeded : RolloutStatus.running };
    return withEntry(next, nowMs, CONTROLLER_ACTOR, last ? 'succeeded' : 'wave-passed', { wave: doc.wave, gates: results, detail: summary });
  }
  if (outcome === 'inconclusive') {
    // Too little data yet, nothing failing: soak on until the gates can tell, for up to waveDeadline more.
    if (nowMs < wave.settledAtMs + doc.spec.strategy.soak + doc.spec.strategy.waveDeadline) return undefined;
    const reason = `wave ${doc.wave + 1} inconclusive: ${results.filter((r) => r.outcome === 'inconclusive').map((r) => `${r.gate}: ${r.detail}`).join('; ')}`;
    return withEntry({ ...doc, waves: judged, status: RolloutStatus.paused, reason }, nowMs, CONTROLLER_ACTOR, 'wave-inconclusive', { wave: doc.wave, gates: results, detail: reason });
  }
  const reason = `wave ${doc.wave + 1} failed: ${results.filter((r) => r.outcome === 'fail').map((r) => `${r.gate}: ${r.detail}`).join('; ')}`;
  const status = doc.spec.onFailure === 'rollback' ? RolloutStatus.rolledBack : RolloutStatus.paused;
  const detail = status === RolloutStatus.rolledBack ? `${reason}; reverting ${doc.targets.length} agent(s)` : reason;
  return withEntry({ ...doc, waves: judged, status, reason }, nowMs, CONTROLLER_ACTOR, 'wave-failed', { wave: doc.wave, gates: results, detail });
}

const ALLOWED: Readonly<Record<OperatorAction, readonly string[]>> = {
  pause: [RolloutStatus.pending, RolloutStatus.running],
  resume: [RolloutStatus.paused],
  abort: [RolloutStatus.pending, RolloutStatus.running, RolloutStatus.paused],
  rollback: [RolloutStatus.running, RolloutStatus.paused, RolloutStatus.succeeded, RolloutStatus.failed, RolloutStatus.aborted],
};

/**
 * An operator's pause, resume, abort or rollback as the next document.
 * @throws OutpostError ROLLOUT_STATE_INVALID when the rollout's status does not allow it.
 */
export function applyOperatorAction(doc: RolloutDoc, action: OperatorAction, actor: string, nowMs: number, agents: readonly ObservedAgent[] = []): RolloutDoc {
  if (!ALLOWED[action].includes(doc.status)) {
    throw new OutpostError(ErrorCode.ROLLOUT_STATE_INVALID, `cannot ${action} a rollout that is ${doc.status}`, { details: { rolloutId: doc.id, status: doc.status, action } });
  }
  switch (action) {
    case 'pause':
      return withEntry({ ...doc, status: RolloutStatus.paused, reason: `paused by ${actor}` }, nowMs, actor, 'paused', { wave: doc.wave });
    case 'resume': {
      const wave = doc.waves[doc.wave]!;
      const started = wave.startedAtMs !== undefined;
      // A wave a human looked at and resumed counts as passed: the next step starts the next one.
      const judged = wave.outcome === 'inconclusive' || wave.outcome === 'failed';
      const last = doc.wave + 1 >= doc.waves.length;
      const waves = judged ? doc.waves.map((w) => (w.index === doc.wave ? { ...w, outcome: 'passed' as const } : w)) : doc.waves;
      const status = !started ? RolloutStatus.pending : judged && last ? RolloutStatus.succeeded : RolloutStatus.running;
      const detail = judged ? `wave ${doc.wave + 1} (${wave.outcome}) passed by ${actor}` : '';
      return withEntry({ ...doc, waves, status, reason: undefined }, nowMs, actor, status === RolloutStatus.succeeded ? 'succeeded' : 'resumed', { wave: doc.wave, detail });
    }
    case 'abort': {
      // Agents that applied keep the change (roll back to revert them); the others go back to
      // what they had, so no agent is left with a desired state it refused or never got to.
      const byId = new Map(agents.map((a) => [a.agentId, a]));
      const targets = doc.targets.map((t) => (memberState(doc, t, byId.get(t.agentId), nowMs) === 'applied' ? t : { ...t, reverted: true }));
      const kept = targets.filter((t) => !t.reverted).length;
      return withEntry({ ...doc, targets, status: RolloutStatus.aborted, reason: `aborted by ${actor}` }, nowMs, actor, 'aborted', {
        wave: doc.wave,
        detail: `${kept} agent(s) keep the change (roll back to revert them); ${targets.length - kept} that had not applied it go back`,
      });
    }
    case 'rollback':
      return withEntry({ ...doc, status: RolloutStatus.rolledBack, reason: `rolled back by ${actor}` }, nowMs, actor, 'rollback', {
        wave: doc.wave,
        detail: `reverting ${doc.targets.length} agent(s) to what they ran before`,
      });
  }
}

/** True while the planner may still take steps or agents may still need their desired state written. */
export function isActive(doc: RolloutDoc): boolean {
  return !TERMINAL_STATUSES.has(doc.status);
}

/** The desired-state writes that make the fleet match `doc`: for each target the rollout still owns, when its KV value differs. */
export function desiredWrites(doc: RolloutDoc, current: ReadonlyMap<string, DesiredState | undefined>, nowMs: number): DesiredState[] {
  if (doc.status === RolloutStatus.pending) return [];
  const writes: DesiredState[] = [];
  for (const target of doc.targets) {
    const now = current.get(target.agentId);
    if (!ownsDesired(doc, target, now)) continue;
    const want = desiredFor(doc, target, nowMs);
    if (!sameDesired(now, want)) writes.push(want);
  }
  return writes;
}
