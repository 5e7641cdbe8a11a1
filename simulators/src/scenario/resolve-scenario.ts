import { ErrorCode, isValidDeviceId, OutpostError, type ConfigIssue, formatIssues } from '@outpost/shared';
import { ANOMALY_TYPES, DEFAULT_ANOMALY_TYPES } from '../anomalies/anomaly-types.js';
import type { ResolvedAnomalies } from '../anomalies/schedule.js';
import type { MalformedKind } from '../faults/message-faults.js';
import type { ProfileName } from '../profiles/index.js';
import { createRng, selectIndices } from '../random/prng.js';
import type { Scenario } from './scenario-schema.js';

/** Digits of the device index at least: dev-0001. */
const INDEX_DIGITS = 4;

/** One simulated device, everything in the units the code reads (ms, messages per s). */
export interface DevicePlan {
  readonly deviceId: string;
  /** Position among all devices of the scenario (0-based). */
  readonly ordinal: number;
  readonly profile: ProfileName;
  readonly ratePerS: number;
  readonly intervalMs: number;
  /** Offset of sample 0 from the start: devices spread over one interval instead of sending in lockstep. */
  readonly phaseMs: number;
  /** Messages this device sends; undefined: until the run is stopped. */
  readonly samples: number | undefined;
  /** Connects with a wrong password: refused, sends nothing. */
  readonly badCredentials: boolean;
  readonly flakyLink: { readonly intervalMs: number; readonly downMs: number } | undefined;
  /** Added to the payload ts (the device's clock is wrong), 0 for most devices. */
  readonly clockSkewMs: number;
}

/** A scenario ready to generate: every device planned, durations in ms. */
export interface ResolvedScenario {
  readonly name: string;
  readonly seed: string;
  /** Simulated time of the run's start in record mode (epoch ms). */
  readonly startTsMs: number;
  readonly qos: 0 | 1;
  readonly durationMs: number | undefined;
  readonly devices: readonly DevicePlan[];
  readonly anomalies: ResolvedAnomalies | undefined;
  readonly malformed: { readonly probability: number; readonly kinds: readonly MalformedKind[] } | undefined;
  readonly oversize: { readonly probability: number; readonly bytes: number } | undefined;
}

/** The device id of index `index` in a group: prefix + index padded to 4 digits. */
export function formatDeviceId(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(INDEX_DIGITS, '0')}`;
}

/**
 * Plans every device of a validated scenario. Which devices get which device-level fault is a
 * seeded choice, so the same devices misbehave on every run.
 *
 * @throws OutpostError SCENARIO_INVALID when device ids collide or leave the contract's pattern.
 */
export function resolveScenario(scenario: Scenario): ResolvedScenario {
  const seed = String(scenario.seed);
  const startTsMs = typeof scenario.startTs === 'number' ? scenario.startTs : Date.parse(scenario.startTs);
  const totalDevices = scenario.devices.reduce((sum, g) => sum + g.count, 0);
  const issues: ConfigIssue[] = [];

  const seen = new Map<string, number>();
  const base: { deviceId: string; profile: ProfileName; ratePerS: number }[] = [];
  scenario.devices.forEach((group, groupIndex) => {
    const ratePerS = scenario.totalRatePerS !== undefined ? scenario.totalRatePerS / totalDevices : (group.ratePerS ?? scenario.ratePerS);
    for (let i = 0; i < group.count; i++) {
      const deviceId = formatDeviceId(group.prefix, group.startIndex + i);
      if (!isValidDeviceId(deviceId)) {
        issues.push({ path: `devices.${groupIndex}.prefix`, message: `makes device id ${JSON.stringify(deviceId)}, which is not a valid device id` });
        return;
      }
      const other = seen.get(deviceId);
      if (other !== undefined) {
        issues.push({ path: `devices.${groupIndex}.startIndex`, message: `device id ${deviceId} is also in devices.${other}` });
        return;
      }
      seen.set(deviceId, groupIndex);
      base.push({ deviceId, profile: group.profile, ratePerS });
    }
  });
  if (issues.length > 0) {
    throw new OutpostError(ErrorCode.SCENARIO_INVALID, `invalid scenario:\n${formatIssues(issues)}`, { details: { issues } });
  }

  const { badCredentials, flakyLink, clockSkew } = scenario.faults;
  const bad = selectIndices(base.length, badCredentials?.ratio ?? 0, createRng(seed, 'select', 'bad-credentials'));
  const flaky = selectIndices(base.length, flakyLink?.ratio ?? 0, createRng(seed, 'select', 'flaky-link'));
  const skewed = selectIndices(base.length, clockSkew?.ratio ?? 0, createRng(seed, 'select', 'clock-skew'));

  const devices = base.map((d, ordinal): DevicePlan => {
    const intervalMs = 1_000 / d.ratePerS;
    const byDuration = scenario.durationS === undefined ? Infinity : Math.max(1, Math.floor(scenario.durationS * d.ratePerS));
    const samples = Math.min(scenario.count ?? Infinity, byDuration);
    return {
      deviceId: d.deviceId,
      ordinal,
      profile: d.profile,
      ratePerS: d.ratePerS,
      intervalMs,
      phaseMs: (intervalMs * ordinal) / base.length,
      samples: Number.isFinite(samples) ? samples : undefined,
      badCredentials: bad.has(ordinal),
      flakyLink: flakyLink !== undefined && flaky.has(ordinal) ? { intervalMs: flakyLink.intervalS * 1_000, downMs: flakyLink.downS * 1_000 } : undefined,
      clockSkewMs:
        clockSkew !== undefined && skewed.has(ordinal) ? (createRng(seed, 'clock-skew', d.deviceId).next() < 0.5 ? -1 : 1) * Math.round(clockSkew.offsetS * 1_000) : 0,
    };
  });

  return {
    name: scenario.name ?? 'unnamed',
    seed,
    startTsMs,
    qos: scenario.qos,
    durationMs: scenario.durationS === undefined ? undefined : scenario.durationS * 1_000,
    devices,
    anomalies: resolveAnomalies(scenario),
    malformed: scenario.faults.malformed,
    oversize: scenario.faults.oversize,
  };
}

function resolveAnomalies(scenario: Scenario): ResolvedAnomalies | undefined {
  const a = scenario.anomalies;
  if (a === undefined) return undefined;
  const types = ANOMALY_TYPES.flatMap((type) => {
    const defaults = DEFAULT_ANOMALY_TYPES[type];
    // Without a `types` section every type takes part with its defaults.
    const t = a.types === undefined ? { weight: 1, durationS: defaults.durationS, magnitude: defaults.magnitude, metrics: undefined } : a.types[type];
    if (t === undefined) return [];
    const shape = t as { rampFraction?: number; persist?: number; burstS?: readonly [number, number]; gapS?: readonly [number, number] };
    return [
      {
        type,
        weight: t.weight,
        durationS: t.durationS,
        magnitude: t.magnitude,
        metrics: t.metrics ?? defaults.metrics,
        ...(shape.rampFraction === undefined ? {} : { rampFraction: shape.rampFraction }),
        ...(shape.persist === undefined ? {} : { persist: shape.persist }),
        ...(shape.burstS === undefined ? {} : { burstS: shape.burstS }),
        ...(shape.gapS === undefined ? {} : { gapS: shape.gapS }),
      },
    ];
  });
  return { ratePerDeviceHour: a.ratePerDeviceHour, probabilityPerSample: a.probabilityPerSample, minGapS: a.minGapS, startAfterS: a.startAfterS, types };
}
