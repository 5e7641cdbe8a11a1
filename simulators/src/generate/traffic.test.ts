import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TelemetrySchema } from '@outpost/shared';
import { parseScenario } from '../scenario/load-scenario.js';
import { defaultTruthFile, recordScenario } from '../record/record-file.js';
import { generateTraffic } from './traffic.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-sim-record-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A small scenario that exercises everything a recording holds: two profiles, anomalies, faults, skew. */
const scenario = (seed: number | string) =>
  parseScenario({
    name: 'determinism',
    seed,
    durationS: 600,
    devices: [
      { count: 3, prefix: 'm-', profile: 'machine', ratePerS: 2 },
      { count: 2, prefix: 'e-', profile: 'env-sensor', ratePerS: 0.5 },
    ],
    anomalies: { ratePerDeviceHour: 30, minGapS: 10 },
    faults: { malformed: { probability: 0.01 }, oversize: { probability: 0.002, bytes: 4096 }, clockSkew: { ratio: 0.2, offsetS: 90 } },
  });

async function record(seed: number | string, name: string) {
  const recordFile = join(dir, `${name}.jsonl`);
  const summary = await recordScenario(scenario(seed), { recordFile, truthFile: defaultTruthFile(recordFile) });
  return { summary, records: await readFile(recordFile), truth: await readFile(join(dir, `${name}.truth.jsonl`)) };
}

describe('record mode', () => {
  it('writes byte-identical records and ground truth for the same seed, different ones for another seed', async () => {
    const a = await record(42, 'a');
    const b = await record(42, 'b');
    const c = await record(43, 'c');
    expect(a.summary.messages).toBe(3 * 1200 + 2 * 300);
    expect(a.summary.episodes).toBeGreaterThan(0);
    expect(a.summary.malformed).toBeGreaterThan(0);
    expect(a.records.equals(b.records)).toBe(true);
    expect(a.truth.equals(b.truth)).toBe(true);
    expect(a.records.equals(c.records)).toBe(false);
    expect(a.truth.equals(c.truth)).toBe(false);
  });

  it('writes lines in the fixed record format, in send-time order, payloads valid telemetry', async () => {
    const { records } = await record(7, 'format');
    const lines = records.toString('utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    let previousTs = -Infinity;
    const kinds = { payload: 0, raw: 0 };
    for (const line of lines) {
      expect(Object.keys(line).slice(0, 3)).toEqual(['ts', 'deviceId', 'topic']);
      expect(line['topic']).toBe(`devices/${line['deviceId'] as string}/telemetry`);
      expect(line['ts'] as number).toBeGreaterThanOrEqual(previousTs);
      previousTs = line['ts'] as number;
      if ('payload' in line) {
        kinds.payload += 1;
        const payload = line['payload'] as { ts: number; padding?: string };
        if (payload.padding === undefined) expect(TelemetrySchema.safeParse(payload).success).toBe(true);
      } else {
        kinds.raw += 1;
        expect(typeof line['raw']).toBe('string');
      }
    }
    expect(lines[0]?.['ts']).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(kinds.raw).toBeGreaterThan(0);
    expect(kinds.payload).toBeGreaterThan(kinds.raw);
  });

  it('keeps every sample\'s values when faults are switched on (each draws from its own random stream)', () => {
    const plain = parseScenario({ seed: 5, durationS: 120, devices: [{ count: 2 }] });
    const busy = parseScenario({ seed: 5, durationS: 120, devices: [{ count: 2 }], faults: { clockSkew: { offsetS: 30 } } });
    const values = (s: typeof plain) => [...generateTraffic(s)].flatMap((l) => (l.kind === 'record' ? [JSON.stringify(l.message.metrics)] : []));
    expect(values(busy)).toEqual(values(plain));
  });

  it('refuses to record an unbounded scenario before creating any file', async () => {
    const recordFile = join(dir, 'never.jsonl');
    await expect(recordScenario(parseScenario({ devices: [{ count: 1 }] }), { recordFile, truthFile: `${recordFile}.t` })).rejects.toMatchObject({
      code: 'SCENARIO_INVALID',
      message: expect.stringContaining('durationS:'),
    });
    await expect(readFile(recordFile)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('names the default truth file after the record file', () => {
    expect(defaultTruthFile('out/train.jsonl')).toBe('out/train.truth.jsonl');
    expect(defaultTruthFile('train.log')).toBe('train.log.truth.jsonl');
  });
});
