// What operators do with rollouts and models, for the HTTP API: create (or dry-run), list,
// look at one with its progress, pause / resume / abort / roll back, publish and list models.
import {
  ErrorCode,
  isOutpostError,
  OutpostError,
  RolloutSpecSchema,
  TERMINAL_STATUSES,
  type DesiredModel,
  type ModelEntry,
  type RolloutDoc,
  type RolloutPlan,
  type RolloutSpec,
  type RolloutSummary,
  type RolloutView,
  type WaveProgress,
} from '@outpost/shared';
import type { ModelStore } from './model-store.js';
import { applyOperatorAction, createRolloutDoc, memberState, type ObservedAgent, type OperatorAction } from './planner.js';
import { updateRollout, type RolloutStore } from './stores.js';
import { assignWaves, selects } from './waves.js';

export interface RolloutService {
  /** @throws OutpostError REQUEST_INVALID (spec), MODEL_NOT_FOUND, ROLLOUT_CONFLICT */
  create(specInput: unknown, actor: string): Promise<RolloutDoc>;
  /** Which agent goes in which wave and why, without creating anything. */
  plan(specInput: unknown): Promise<RolloutPlan>;
  list(): RolloutSummary[];
  /** @throws OutpostError ROLLOUT_NOT_FOUND */
  view(id: string): Promise<RolloutView>;
  /** @throws OutpostError ROLLOUT_NOT_FOUND, ROLLOUT_STATE_INVALID */
  act(id: string, action: OperatorAction, actor: string): Promise<RolloutDoc>;
}

export interface RolloutServiceOptions {
  rollouts: RolloutStore;
  models: ModelStore;
  /** The fleet as the planner sees it now. */
  observe(): ObservedAgent[];
  now?: () => number;
}

/** `REQUEST_INVALID` naming every bad key of a spec, as `path: message`. */
function parseSpec(input: unknown): RolloutSpec {
  const parsed = RolloutSpecSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.slice(0, 10).map((i) => ({ path: i.path.map(String).join('.') || '(spec)', message: i.message }));
  throw new OutpostError(ErrorCode.REQUEST_INVALID, `invalid rollout spec: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { details: { issues } });
}

/** A rollout id from its name and the time: lowercase, dashes, a base36 time suffix. */
export function rolloutIdFor(name: string, nowMs: number): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return `${slug === '' ? 'rollout' : slug}-${nowMs.toString(36)}`;
}

export function toSummary(doc: RolloutDoc): RolloutSummary {
  return {
    id: doc.id,
    name: doc.spec.name,
    status: doc.status,
    wave: doc.wave,
    waves: doc.waves.length,
    targets: doc.targets.length,
    model: doc.model === null ? null : `${doc.model.name}@${doc.model.version}`,
    configVersion: doc.configVersion,
    ...(doc.reason === undefined ? {} : { reason: doc.reason }),
    createdAtMs: doc.createdAtMs,
    createdBy: doc.createdBy,
    updatedAtMs: doc.updatedAtMs,
  };
}

/** Per wave: its agents now and how far each got. */
export function waveProgress(doc: RolloutDoc, agents: readonly ObservedAgent[], nowMs: number): { progress: WaveProgress[]; plannedAgents: number } {
  const byId = new Map(agents.map((a) => [a.agentId, a]));
  const planned = assignWaves(doc.id, doc.spec, agents);
  const progress = doc.waves.map((w): WaveProgress => {
    const members = doc.targets.filter((t) => t.wave === w.index);
    const counts = { applied: 0, refused: 0, pending: 0 };
    for (const t of members) counts[memberState(doc, t, byId.get(t.agentId), nowMs)]++;
    const size = w.startedAtMs === undefined ? planned.filter((p) => p.wave === w.index).length : members.length;
    const soakEndsAtMs = w.settledAtMs === undefined ? undefined : w.settledAtMs + doc.spec.strategy.soak;
    const state: WaveProgress['state'] =
      w.outcome !== undefined ? w.outcome : w.startedAtMs === undefined ? 'waiting' : w.settledAtMs === undefined ? 'applying' : 'soaking';
    return { index: w.index, agents: size, ...counts, state, ...(state === 'soaking' && soakEndsAtMs !== undefined ? { soakEndsAtMs } : {}) };
  });
  return { progress, plannedAgents: planned.length };
}

export function createRolloutService(options: RolloutServiceOptions): RolloutService {
  const { rollouts, models } = options;
  const now = options.now ?? Date.now;

  const resolveModel = async (spec: RolloutSpec): Promise<{ model: DesiredModel | null; entry: ModelEntry | undefined }> => {
    if (spec.change.model === undefined) return { model: null, entry: undefined };
    const { name, version } = spec.change.model;
    const entry = await models.get(name, version);
    if (entry === undefined) {
      throw new OutpostError(ErrorCode.MODEL_NOT_FOUND, `model ${name}@${version} is not in the model store; publish it first (outpostctl models publish)`, { details: { name, version } });
    }
    return { model: { name, version, sha256: entry.sha256, rollback: false }, entry };
  };

  const plan = async (input: unknown): Promise<RolloutPlan> => {
    const spec = parseSpec(input);
    const nowMs = now();
    const id = spec.id ?? rolloutIdFor(spec.name, nowMs);
    const { model } = await resolveModel(spec);
    const agents = options.observe();
    const assigned = assignWaves(id, spec, agents);
    const labels = new Map(agents.map((a) => [a.agentId, a.labels]));
    const excluded = agents
      .filter((a) => !selects(spec.selector, a))
      .map((a) => {
        if (spec.selector.agents !== undefined && !spec.selector.agents.includes(a.agentId)) return { agentId: a.agentId, reason: 'not in selector.agents' };
        const miss = Object.entries(spec.selector.labels).find(([k, v]) => a.labels[k] !== v)!;
        return { agentId: a.agentId, reason: `label ${miss[0]} is ${JSON.stringify(a.labels[miss[0]] ?? null)}, not ${JSON.stringify(miss[1])}` };
      });
    const doc = createRolloutDoc(id, spec, model, 'dry-run', nowMs);
    return {
      id,
      spec,
      model: model === null ? null : `${model.name}@${model.version}`,
      configVersion: doc.configVersion,
      waves: doc.waves.map((w) => ({
        index: w.index,
        agents: assigned.filter((a) => a.wave === w.index).map((a) => ({ agentId: a.agentId, rank: a.rank, orderKey: a.orderKey.slice(0, 12), labels: { ...labels.get(a.agentId) } })),
      })),
      excluded,
    };
  };

  return {
    plan,
    async create(input, actor) {
      const p = await plan(input);
      const selected = new Set(p.waves.flatMap((w) => w.agents.map((a) => a.agentId)));
      if (selected.size === 0) throw new OutpostError(ErrorCode.REQUEST_INVALID, 'the selector matches no agent', { details: { selector: p.spec.selector } });
      // One rollout at a time per agent: a second one would fight the first over its desired state.
      const agents = options.observe();
      for (const { value: other } of rollouts.all()) {
        if (TERMINAL_STATUSES.has(other.status)) continue;
        const overlap = agents.filter((a) => selected.has(a.agentId) && (selects(other.spec.selector, a) || other.targets.some((t) => t.agentId === a.agentId))).map((a) => a.agentId);
        if (overlap.length > 0) {
          throw new OutpostError(ErrorCode.ROLLOUT_CONFLICT, `rollout ${other.id} (${other.status}) already selects ${overlap.slice(0, 5).join(', ')}${overlap.length > 5 ? ', ...' : ''}; finish, abort or roll it back first`, {
            details: { rolloutId: other.id, agents: overlap.slice(0, 50) },
          });
        }
      }
      const { model } = await resolveModel(p.spec);
      const doc = createRolloutDoc(p.id, p.spec, model, actor, now());
      try {
        await rollouts.write(doc.id, doc, 0);
      } catch (err) {
        if (isOutpostError(err, ErrorCode.KV_CONFLICT)) throw new OutpostError(ErrorCode.ROLLOUT_CONFLICT, `a rollout with id ${doc.id} exists`, { details: { rolloutId: doc.id } });
        throw err;
      }
      return doc;
    },
    list() {
      return rollouts
        .all()
        .map((v) => toSummary(v.value))
        .sort((a, b) => b.createdAtMs - a.createdAtMs);
    },
    async view(id) {
      const found = rollouts.current(id) ?? (await rollouts.read(id));
      if (found === undefined) throw new OutpostError(ErrorCode.ROLLOUT_NOT_FOUND, `no rollout ${JSON.stringify(id)}`, { details: { rolloutId: id } });
      return { ...found.value, ...waveProgress(found.value, options.observe(), now()) };
    },
    act(id, action, actor) {
      const agents = options.observe();
      return updateRollout(rollouts, id, (doc) => applyOperatorAction(doc, action, actor, now(), agents));
    },
  };
}
