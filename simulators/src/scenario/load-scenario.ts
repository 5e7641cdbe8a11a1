import { ErrorCode, isOutpostError, loadConfigFile, OutpostError, parseConfig } from '@outpost/shared';
import { resolveScenario, type ResolvedScenario } from './resolve-scenario.js';
import { ScenarioSchema, type Scenario } from './scenario-schema.js';

/**
 * Command-line values that override a scenario's (each undefined one leaves the scenario's
 * value alone). Units as on the command line: seconds, messages per second, ratios 0..1.
 */
export interface ScenarioOverrides {
  devices?: number;
  prefix?: string;
  startIndex?: number;
  profile?: string;
  ratePerS?: number;
  totalRatePerS?: number;
  qos?: number;
  durationS?: number;
  count?: number;
  seed?: string | number;
  startTs?: string | number;
  anomalyRatePerDeviceHour?: number;
  anomalyTypes?: string[];
  malformedProbability?: number;
  malformedKinds?: string[];
  oversizeProbability?: number;
  oversizeBytes?: number;
  badCredentialsRatio?: number;
  flakyRatio?: number;
  flakyIntervalS?: number;
  flakyDownS?: number;
  clockSkewS?: number;
  clockSkewRatio?: number;
}

type Obj = Record<string, unknown>;

const asObject = (value: unknown): Obj => (typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...(value as Obj) } : {});

/** Sets `key` when `value` is defined; returns whether it did. */
function set(target: Obj, key: string, value: unknown): boolean {
  if (value === undefined) return false;
  target[key] = value;
  return true;
}

/**
 * Applies command-line overrides to a scenario (validated or not). `--devices`, `--prefix`,
 * `--start-index` or `--profile` replace the device groups by one group (taking unset fields
 * from the first group); a rate flag replaces every other rate setting.
 */
export function applyScenarioOverrides(scenario: unknown, o: ScenarioOverrides): Obj {
  const out = asObject(scenario);
  for (const [key, value] of [
    ['qos', o.qos],
    ['durationS', o.durationS],
    ['count', o.count],
    ['seed', o.seed],
    ['startTs', o.startTs],
  ] as const) {
    set(out, key, value);
  }

  const groups = Array.isArray(out['devices']) ? (out['devices'] as unknown[]).map(asObject) : [];
  if (o.devices !== undefined || o.prefix !== undefined || o.startIndex !== undefined || o.profile !== undefined) {
    const first = groups[0] ?? {};
    const group: Obj = { ...first };
    set(group, 'count', o.devices);
    set(group, 'prefix', o.prefix);
    set(group, 'startIndex', o.startIndex);
    set(group, 'profile', o.profile);
    if (group['count'] === undefined) group['count'] = groups.reduce((sum, g) => sum + (typeof g['count'] === 'number' ? g['count'] : 0), 0) || undefined;
    out['devices'] = [group];
  } else if (groups.length > 0) {
    out['devices'] = groups;
  }
  const stripGroupRates = (): void => {
    if (Array.isArray(out['devices'])) out['devices'] = (out['devices'] as Obj[]).map(({ ratePerS: _dropped, ...rest }) => rest);
  };
  if (o.ratePerS !== undefined) {
    out['ratePerS'] = o.ratePerS;
    delete out['totalRatePerS'];
    stripGroupRates();
  }
  if (o.totalRatePerS !== undefined) {
    out['totalRatePerS'] = o.totalRatePerS;
    stripGroupRates();
  }

  if (o.anomalyRatePerDeviceHour !== undefined || o.anomalyTypes !== undefined) {
    const anomalies = asObject(out['anomalies']);
    if (o.anomalyRatePerDeviceHour !== undefined) {
      anomalies['ratePerDeviceHour'] = o.anomalyRatePerDeviceHour;
      delete anomalies['probabilityPerSample'];
    }
    if (o.anomalyTypes !== undefined) {
      const existing = asObject(anomalies['types']);
      anomalies['types'] = Object.fromEntries(o.anomalyTypes.map((t) => [t, existing[t] ?? {}]));
    }
    out['anomalies'] = anomalies;
  }

  const faults = asObject(out['faults']);
  const fault = (key: string, fields: [string, unknown][]): void => {
    if (fields.every(([, v]) => v === undefined)) return;
    const f = asObject(faults[key]);
    for (const [field, value] of fields) set(f, field, value);
    faults[key] = f;
  };
  fault('malformed', [
    ['probability', o.malformedProbability],
    ['kinds', o.malformedKinds],
  ]);
  fault('oversize', [
    ['probability', o.oversizeProbability],
    ['bytes', o.oversizeBytes],
  ]);
  fault('badCredentials', [['ratio', o.badCredentialsRatio]]);
  fault('flakyLink', [
    ['ratio', o.flakyRatio],
    ['intervalS', o.flakyIntervalS],
    ['downS', o.flakyDownS],
  ]);
  fault('clockSkew', [
    ['offsetS', o.clockSkewS],
    ['ratio', o.clockSkewRatio],
  ]);
  if (Object.keys(faults).length > 0) out['faults'] = faults;
  return out;
}

/** Rewraps a config error of the shared loader as SCENARIO_INVALID, keeping its message and issues. */
function asScenarioError(error: unknown): unknown {
  if (isOutpostError(error, ErrorCode.CONFIG_INVALID)) {
    return new OutpostError(ErrorCode.SCENARIO_INVALID, error.message, { cause: error, details: error.details });
  }
  return error;
}

/**
 * Validates a scenario given as a value (tests, or a scenario built in code) and plans it.
 *
 * @throws OutpostError SCENARIO_INVALID listing every bad key as `path.to.key: message`.
 */
export function parseScenario(value: unknown, overrides: ScenarioOverrides = {}, source = 'scenario'): ResolvedScenario {
  let scenario: Scenario;
  try {
    scenario = parseConfig(ScenarioSchema, applyScenarioOverrides(value, overrides), source);
  } catch (error) {
    throw asScenarioError(error);
  }
  return resolveScenario(scenario);
}

/**
 * Loads a scenario file (YAML or JSON) with the shared config loader, applies command-line
 * overrides and plans it. Without a file the scenario is the defaults plus the overrides.
 *
 * @throws OutpostError SCENARIO_INVALID (a bad key, as `path.to.key: message`; a bad flag
 *   value is named by the key it sets) or CONFIG_UNREADABLE (the file cannot be read).
 */
export async function loadScenario(file: string | undefined, overrides: ScenarioOverrides = {}): Promise<ResolvedScenario> {
  if (file === undefined) return parseScenario({}, overrides, 'scenario (command-line flags)');
  let fromFile: Scenario;
  try {
    fromFile = await loadConfigFile(ScenarioSchema, file);
  } catch (error) {
    throw asScenarioError(error);
  }
  return parseScenario(fromFile, overrides, `scenario ${file} with command-line flags`);
}
