import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOutpostError } from '@outpost/shared';
import { generateTraffic } from '../generate/traffic.js';
import { loadScenario, parseScenario } from './load-scenario.js';

const SCENARIOS = fileURLToPath(new URL('../../scenarios/', import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-scenario-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function scenarioError(run: () => unknown): Promise<Error> {
  try {
    await run();
  } catch (error) {
    expect(isOutpostError(error, 'SCENARIO_INVALID')).toBe(true);
    return error as Error;
  }
  throw new Error('expected SCENARIO_INVALID');
}

describe('scenario validation', () => {
  it('reports every bad key of a scenario file at once as path.to.key: message', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      [
        'seed: 3',
        'colour: blue',
        'devices:',
        '  - count: 0',
        '    profile: toaster',
        'anomalies:',
        '  ratePerDeviceHour: 2',
        '  types:',
        '    spik: {}',
        '    drift: { durationS: [300, 60] }',
        'faults:',
        '  malformed: { probability: 2 }',
        '  flakyLink: { ratio: 0.5 }',
      ].join('\n'),
    );
    const error = await scenarioError(() => loadScenario(file));
    for (const expected of [
      'colour: unknown key',
      'devices.0.count:',
      'devices.0.profile:',
      'anomalies.types.spik: unknown key',
      'anomalies.types.drift.durationS: must be [min, max] with min <= max',
      'faults.malformed.probability:',
      'faults.flakyLink.intervalS:',
    ]) {
      expect(error.message).toContain(expected);
    }
    expect(error.message).toContain(file);
  });

  it('names the key a bad command-line value lands on, and a file that is not YAML', async () => {
    const flagged = await scenarioError(() => loadScenario(undefined, { qos: 2, profile: 'toaster' }));
    expect(flagged.message).toContain('qos:');
    expect(flagged.message).toContain('devices.0.profile:');
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'devices: [\n');
    expect((await scenarioError(() => loadScenario(file))).message).toContain('not valid YAML');
  });

  it('refuses ambiguous settings and colliding device ids by key', async () => {
    expect((await scenarioError(() => parseScenario({ anomalies: { minGapS: 5 } }))).message).toContain('anomalies.ratePerDeviceHour: set ratePerDeviceHour or probabilityPerSample');
    expect((await scenarioError(() => parseScenario({ totalRatePerS: 10, devices: [{ count: 2, ratePerS: 3 }] }))).message).toContain(
      'devices.0.ratePerS: use either totalRatePerS',
    );
    const collision = await scenarioError(() => parseScenario({ devices: [{ count: 3 }, { count: 2, startIndex: 3 }] }));
    expect(collision.message).toContain('devices.1.startIndex: device id dev-0003 is also in devices.0');
  });

  it('lets command-line values override the file: device group, rates, faults', async () => {
    const file = join(dir, 'ok.json');
    await writeFile(file, JSON.stringify({ name: 'ok', seed: 9, devices: [{ count: 2, prefix: 'pump-', ratePerS: 5 }, { count: 1, prefix: 'fan-' }], qos: 0 }));
    const fromFile = await loadScenario(file);
    expect(fromFile.devices.map((d) => [d.deviceId, d.ratePerS])).toEqual([
      ['pump-0001', 5],
      ['pump-0002', 5],
      ['fan-0001', 1],
    ]);
    const overridden = await loadScenario(file, { devices: 3, startIndex: 11, ratePerS: 2, qos: 1, badCredentialsRatio: 0.34, clockSkewS: 5 });
    expect(overridden.devices.map((d) => [d.deviceId, d.ratePerS])).toEqual([
      ['pump-0011', 2],
      ['pump-0012', 2],
      ['pump-0013', 2],
    ]);
    expect(overridden.qos).toBe(1);
    expect(overridden.devices.filter((d) => d.badCredentials)).toHaveLength(1);
    expect(overridden.devices.every((d) => Math.abs(d.clockSkewMs) === 5_000)).toBe(true);
    const total = await loadScenario(file, { totalRatePerS: 30 });
    expect(total.devices.map((d) => d.ratePerS)).toEqual([10, 10, 10]);
  });
});

describe('shipped scenarios', () => {
  it.each(['demo.yaml', 'train-normal.yaml', 'evaluate.yaml', 'train.yaml', 'validate.yaml'])('%s is valid', async (name) => {
    const scenario = await loadScenario(join(SCENARIOS, name));
    expect(scenario.devices.length).toBeGreaterThan(0);
  });

  it('train is normal traffic of both kinds; validate and evaluate use other devices, each with every anomaly type well represented per kind', async () => {
    const [train, validate, evaluate] = await Promise.all(['train.yaml', 'validate.yaml', 'evaluate.yaml'].map((name) => loadScenario(join(SCENARIOS, name))));
    expect(train!.anomalies).toBeUndefined();
    expect(train!.malformed ?? train!.oversize).toBeUndefined();
    const ids = (s: typeof train) => new Set(s!.devices.map((d) => d.deviceId));
    const [trainIds, validateIds, evaluateIds] = [ids(train), ids(validate), ids(evaluate)];
    // A device's physics follows from its id: disjoint ids are devices the models never saw.
    for (const id of evaluateIds) expect(trainIds.has(id) || validateIds.has(id)).toBe(false);
    for (const id of validateIds) expect(trainIds.has(id)).toBe(false);
    for (const s of [train, validate, evaluate]) expect(new Set(s!.devices.map((d) => d.profile))).toEqual(new Set(['machine', 'env-sensor']));
    expect(new Set([train!.seed, validate!.seed, evaluate!.seed]).size).toBe(3);
    for (const s of [validate!, evaluate!]) {
      // Every type takes part; no fault starts before the models' per-device baselines settle (30 minutes).
      expect(s.anomalies?.types.map((t) => t.type).sort()).toEqual(['drift', 'dropout', 'noise-burst', 'slow-drift', 'spike', 'stuck', 'vibration-rise']);
      expect(s.anomalies?.startAfterS).toBe(1_800);
    }
    // The shipped evaluation, generated in full: enough episodes of every type and kind for a rate that means something.
    {
      const scenario = evaluate!;
      const counts = new Map<string, number>();
      const profileOf = new Map(scenario.devices.map((d) => [d.deviceId, d.profile]));
      for (const line of generateTraffic(scenario)) {
        if (line.kind !== 'truth') continue;
        const key = `${profileOf.get(line.truth.deviceId)}/${line.truth.type}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        // Baselines settle before the first fault of a device.
        expect(line.truth.startSeq).toBeGreaterThanOrEqual(1_800);
      }
      for (const type of ['spike', 'drift', 'slow-drift', 'stuck', 'noise-burst', 'dropout']) {
        for (const profile of ['machine', 'env-sensor']) expect(counts.get(`${profile}/${type}`) ?? 0, `${profile}/${type}`).toBeGreaterThanOrEqual(25);
      }
      expect(counts.get('machine/vibration-rise') ?? 0).toBeGreaterThanOrEqual(25);
    }
  }, 120_000);
});
