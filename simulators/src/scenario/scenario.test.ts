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
  it.each(['demo.yaml', 'train-normal.yaml', 'evaluate.yaml'])('%s is valid', async (name) => {
    const scenario = await loadScenario(join(SCENARIOS, name));
    expect(scenario.devices.length).toBeGreaterThan(0);
  });

  it('train-normal is normal traffic only and evaluate the same devices with every anomaly type well represented', async () => {
    const train = await loadScenario(join(SCENARIOS, 'train-normal.yaml'));
    const evaluate = await loadScenario(join(SCENARIOS, 'evaluate.yaml'));
    expect(train.anomalies).toBeUndefined();
    expect(train.malformed ?? train.oversize).toBeUndefined();
    expect(train.devices.map((d) => [d.deviceId, d.profile])).toEqual(evaluate.devices.map((d) => [d.deviceId, d.profile]));
    expect(train.devices.map((d) => d.samples)).toEqual(train.devices.map(() => 3_600));
    expect(evaluate.seed).not.toBe(train.seed);
    const counts = new Map<string, number>();
    for (const line of generateTraffic(evaluate)) if (line.kind === 'truth') counts.set(line.truth.type, (counts.get(line.truth.type) ?? 0) + 1);
    for (const type of ['spike', 'drift', 'stuck', 'noise-burst', 'vibration-rise']) expect(counts.get(type) ?? 0).toBeGreaterThanOrEqual(8);
  });
});
