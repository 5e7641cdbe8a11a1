// Several models side by side (DESIGN section 2): one single-model inference (inference.ts: its
// own row queue, feature windows, supervised child process and hot swap) per device kind, and
// each device routed to the model of its kind by the metrics it sends.
import { ErrorCode, OutpostError, routeDevice, SignedManifestSchema, type ModelRef } from '@outpost/shared';
import { startModelInference } from './inference.js';
import { assertTrustedKeys, readModelFiles, type ModelFiles, type ModelInput } from './model-source.js';
import { UnscoredReason, type Inference, type InferenceOptions, type InferenceSettings, type InferenceStatus, type InstalledModel } from './inference-types.js';

/** One kind's inference, and the model it serves (name and metrics: what a new model is matched by). */
interface KindStage {
  name: string;
  featureSpec: { metrics: readonly string[] };
  inference: Inference;
}

const sameMetrics = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((m) => b.includes(m));

/**
 * The name and metrics a manifest claims, read before verification only to pick the stage that
 * verifies it; undefined when the manifest does not even parse (that stage refuses it).
 */
function claimedModel(input: ModelInput): { name: string; metrics: readonly string[] } | undefined {
  const parsed = SignedManifestSchema.safeParse(input.signedManifest);
  return parsed.success ? { name: parsed.data.manifest.name, metrics: parsed.data.manifest.featureSpec.metrics } : undefined;
}

/** The metric names of a committed telemetry body; empty when it does not parse. */
function metricNames(body: string): string[] {
  try {
    const metrics = (JSON.parse(body) as { metrics?: unknown }).metrics;
    return typeof metrics === 'object' && metrics !== null ? Object.keys(metrics) : [];
  } catch {
    return [];
  }
}

/**
 * The serving model a new one replaces: the one of the same name, else the one reading the same
 * metrics, else (`replaceSole`) the only one serving; undefined: the new model is a kind of its own.
 */
export function pickStage<S extends { name: string; featureSpec: { metrics: readonly string[] } }>(
  stages: readonly S[],
  model: { name: string; metrics: readonly string[] },
  replaceSole: boolean,
): S | undefined {
  return stages.find((s) => s.name === model.name) ?? stages.find((s) => sameMetrics(s.featureSpec.metrics, model.metrics)) ?? (replaceSole && stages.length === 1 ? stages[0] : undefined);
}

/**
 * Starts the inference stage: loads `config.model` and every `config.models` entry (a model that
 * fails verification or its self-test is logged and counted, the others still serve, and ingest
 * is never held up), each in the single-model inference of its kind.
 *
 * Which model a new one replaces: the serving model of the same name, else the one reading the
 * same metrics; else, for `swapModel` (a rollout, which sets one model per agent) while one model
 * serves, that one; else it serves beside the others, a kind of its own.
 *
 * Routing: with one model serving, every device goes to it (a message without its metrics does
 * not advance the device's window, as ever). With several, a device goes where `routeDevice`
 * sends the metrics of its first message while the set of models is unchanged; a device no model
 * fits is counted `unrouted`, per message. A new kind re-routes every device (one moved away
 * leaves an open episode behind, which closes as `silent`).
 *
 * Status, heartbeats and rollout gates read the model installed last; `models` lists all.
 *
 * @throws OutpostError CONFIG_INVALID when a trusted key is not a usable ed25519 public key.
 */
export async function startInference(options: InferenceOptions): Promise<Inference> {
  const { config, metrics } = options;
  assertTrustedKeys(config.trustedKeys);
  const stages: KindStage[] = [];
  /** Per device its stage (null: no model fits), least recently routed first; cleared when the kinds change. */
  const routes = new Map<string, KindStage | null>();
  let latest: KindStage | undefined;
  /** The settings of the last `configure`, for stages started after it. */
  let settings: InferenceSettings | undefined;
  let swapTail: Promise<unknown> = Promise.resolve();
  let closed = false;

  const install = async (input: ModelInput, replaceSole: boolean): Promise<InstalledModel> => {
    if (closed) throw new OutpostError(ErrorCode.INFERENCE_UNAVAILABLE, 'inference is closed');
    const claimed = claimedModel(input);
    let stage = claimed === undefined ? latest : pickStage(stages, claimed, replaceSole);
    const created = stage === undefined;
    if (stage === undefined) {
      // A kind of its own: a new single-model inference, kept only if its first model loads.
      stage = { name: '', featureSpec: { metrics: [] }, inference: await startModelInference({ ...options, config: { ...config, model: undefined, models: [] } }) };
      if (settings !== undefined) stage.inference.configure(settings);
    }
    try {
      const installed = await stage.inference.swapModel(input);
      // Verified: the claims were the manifest's own.
      const kindChanged = created || !sameMetrics(stage.featureSpec.metrics, claimed?.metrics ?? []);
      stage.name = installed.model.name;
      stage.featureSpec = { metrics: claimed?.metrics ?? [] };
      if (created) stages.push(stage);
      if (kindChanged) routes.clear();
      latest = stage;
      return installed;
    } catch (err) {
      if (created) await stage.inference.close();
      throw err;
    }
  };
  const enqueue = (load: () => Promise<ModelInput>, replaceSole = false): Promise<InstalledModel> => {
    const run = swapTail.then(async () => install(await load(), replaceSole));
    swapTail = run.catch(() => undefined);
    return run;
  };
  const configuredFiles = (): ModelFiles[] => [...(config.model === undefined ? [] : [config.model]), ...config.models];

  // At start a refused model is only logged (by its stage): the others serve, ingest goes on.
  for (const files of configuredFiles()) await enqueue(() => readModelFiles(files)).catch(() => undefined);

  const route = (deviceId: string, body: string): KindStage | null => {
    const known = routes.get(deviceId);
    if (known !== undefined) {
      routes.delete(deviceId);
      routes.set(deviceId, known);
      return known;
    }
    const chosen = routeDevice(metricNames(body), stages) ?? null;
    if (routes.size >= config.maxDeviceWindows) {
      const oldest = routes.keys().next();
      if (oldest.done !== true) routes.delete(oldest.value);
    }
    routes.set(deviceId, chosen);
    return chosen;
  };

  const serving = (): ModelRef[] => stages.flatMap((s) => {
    const model = s.inference.status().model;
    return model === undefined ? [] : [model];
  });

  let closing: Promise<void> | undefined;
  return {
    observe(record, committedAtMs) {
      if (closed) return;
      if (stages.length === 0) {
        metrics.inferenceUnscored.inc({ reason: UnscoredReason.noModel });
        return;
      }
      // One kind: every device goes to it, with no routing state on the hot path.
      const stage = stages.length === 1 ? stages[0]! : route(record.deviceId, record.body);
      if (stage === null) {
        metrics.inferenceUnscored.inc({ reason: UnscoredReason.unrouted });
        return;
      }
      stage.inference.observe(record, committedAtMs);
    },
    swapModel: (input) => enqueue(() => Promise.resolve(input), true),
    async reloadModelFiles() {
      const files = configuredFiles();
      if (files.length === 0) {
        throw new OutpostError(ErrorCode.MODEL_INVALID, 'inference.model is not set in the config: there are no model files to reload');
      }
      // Every model is tried; the first refusal is the answer, after the others were loaded.
      const outcomes = await Promise.allSettled(files.map((f) => enqueue(() => readModelFiles(f))));
      const refused = outcomes.find((o) => o.status === 'rejected');
      if (refused !== undefined) throw refused.reason;
      return (outcomes.at(-1) as PromiseFulfilledResult<InstalledModel>).value;
    },
    status(): InferenceStatus {
      const all = stages.map((s) => s.inference.status());
      const main = latest?.inference.status();
      return {
        up: all.length > 0 && all.every((s) => s.up),
        model: main?.model,
        pid: main?.pid,
        queuedRows: all.reduce((n, s) => n + s.queuedRows, 0),
        counts: main?.counts,
        models: serving(),
      };
    },
    configure(next) {
      settings = next;
      for (const stage of stages) stage.inference.configure(next);
    },
    close() {
      closing ??= (async () => {
        closed = true;
        await swapTail;
        await Promise.all(stages.map((s) => s.inference.close()));
      })();
      return closing;
    },
  };
}
