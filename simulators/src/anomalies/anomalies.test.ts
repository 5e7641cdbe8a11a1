import { describe, expect, it } from 'vitest';
import type { GeneratedMessage } from '../generate/device-generator.js';
import { generateTraffic } from '../generate/traffic.js';
import { PROFILES } from '../profiles/index.js';
import { parseScenario } from '../scenario/load-scenario.js';
import { ANOMALY_TYPES, type TruthLine } from './anomaly-types.js';

const base = {
  seed: 'truth-check',
  durationS: 3_600,
  devices: [
    { count: 4, prefix: 'm-', profile: 'machine' },
    { count: 2, prefix: 'e-', profile: 'env-sensor' },
  ],
} as const;

function collect(input: object) {
  const messages = new Map<string, GeneratedMessage[]>();
  const truth: TruthLine[] = [];
  for (const line of generateTraffic(parseScenario(input))) {
    if (line.kind === 'truth') {
      truth.push(line.truth);
      expect(JSON.parse(line.line)).toEqual(line.truth);
      expect(Object.keys(JSON.parse(line.line) as object)).toEqual(['deviceId', 'type', 'metric', 'startTs', 'endTs', 'startSeq', 'endSeq']);
      continue;
    }
    const list = messages.get(line.message.deviceId) ?? [];
    list.push(line.message);
    messages.set(line.message.deviceId, list);
  }
  return { messages, truth };
}

const specOf = (deviceId: string, metric: string) => {
  const profile = deviceId.startsWith('m-') ? PROFILES.machine : PROFILES['env-sensor'];
  return profile.metrics.find((m) => m.name === metric)!;
};

describe('anomalies and their ground truth', () => {
  // The same scenario with and without anomalies: the normal signal is drawn from its own
  // stream, so the difference between the two is exactly what the anomalies did.
  const clean = collect(base);
  // Every type, slow drifts shortened so that an hour holds several of each.
  const anomalous = collect({
    ...base,
    anomalies: {
      ratePerDeviceHour: 12,
      minGapS: 20,
      types: Object.fromEntries(ANOMALY_TYPES.map((t) => [t, t === 'slow-drift' ? { durationS: [120, 300], magnitude: [1, 2] } : {}])),
    },
  });

  it('injects every type, each episode on one metric, in the device seq range the truth names', () => {
    expect(clean.truth).toEqual([]);
    const types = new Set(anomalous.truth.map((t) => t.type));
    expect([...types].sort()).toEqual([...ANOMALY_TYPES].sort());
    for (const t of anomalous.truth) {
      const samples = anomalous.messages.get(t.deviceId)!;
      expect(t.endSeq).toBeGreaterThanOrEqual(t.startSeq);
      expect(samples[t.startSeq]!.ts).toBe(t.startTs);
      expect(samples[t.endSeq]!.ts).toBe(t.endTs);
      if (t.type === 'vibration-rise') expect(t.metric).toBe('vibration');
      if (t.deviceId.startsWith('e-')) expect(t.type).not.toBe('vibration-rise');
    }
  });

  it('leaves every sample outside an episode, and every other metric inside one, exactly normal', () => {
    const inEpisode = new Map<string, TruthLine>();
    for (const t of anomalous.truth) for (let s = t.startSeq; s <= t.endSeq; s++) inEpisode.set(`${t.deviceId}:${s}`, t);
    let outside = 0;
    for (const [deviceId, samples] of anomalous.messages) {
      const normal = clean.messages.get(deviceId)!;
      expect(samples).toHaveLength(normal.length);
      samples.forEach((m, seq) => {
        const episode = inEpisode.get(`${deviceId}:${seq}`);
        const expected = { ...normal[seq]!.metrics };
        if (episode !== undefined) {
          delete expected[episode.metric];
        } else {
          outside += 1;
        }
        const actual = { ...m.metrics };
        if (episode !== undefined) delete actual[episode.metric];
        expect(actual).toEqual(expected);
        expect(m.episode === undefined).toBe(episode === undefined);
      });
    }
    expect(outside).toBeGreaterThan(0.5 * [...anomalous.messages.values()].reduce((n, s) => n + s.length, 0));
  });

  it('makes each episode deviate the way its type says', () => {
    const checked = new Set<string>();
    for (const t of anomalous.truth) {
      // An episode still running when the recording ends is cut there; its planned size was never reached.
      if (anomalous.messages.get(t.deviceId)![t.endSeq]!.episode!.endSeq !== t.endSeq) continue;
      const { spread, decimals } = specOf(t.deviceId, t.metric);
      const got = anomalous.messages.get(t.deviceId)!.slice(t.startSeq, t.endSeq + 1).map((m) => m.metrics[t.metric]!);
      const normal = clean.messages.get(t.deviceId)!.slice(t.startSeq, t.endSeq + 1).map((m) => m.metrics[t.metric]!);
      const diff = got.map((v, i) => v - normal[i]!);
      // Both values are rounded to the sensor's resolution, so a difference is off by up to one step.
      const resolution = 1.01 * 10 ** -decimals;
      switch (t.type) {
        case 'spike': {
          // A constant jump of 6 to 10 spreads (configured default), one sign for the whole episode.
          for (const d of diff) expect(Math.abs(d)).toBeGreaterThanOrEqual(6 * spread - resolution);
          expect(new Set(diff.map(Math.sign)).size).toBe(1);
          break;
        }
        case 'drift': {
          // Ramps to 3 to 6 spreads over the first half of the episode, then holds: never shrinking, no step back inside.
          const abs = diff.map(Math.abs);
          abs.slice(1).forEach((d, i) => expect(d).toBeGreaterThanOrEqual(abs[i]! - 2 * resolution));
          const hold = abs.slice(Math.ceil(abs.length / 2) + 1);
          expect(hold.length).toBeGreaterThan(0);
          for (const d of hold) expect(d).toBeGreaterThanOrEqual(3 * spread - resolution);
          expect(Math.max(...hold) - Math.min(...hold)).toBeLessThanOrEqual(2 * resolution);
          break;
        }
        case 'slow-drift': {
          // 1 to 2 spreads per minute (this scenario's magnitude), at 1 Hz: a straight line from the first sample.
          const perSample = Math.abs(diff[diff.length - 1]!) / diff.length;
          expect(perSample * 60).toBeGreaterThanOrEqual(spread - resolution);
          expect(perSample * 60).toBeLessThanOrEqual(2 * spread + resolution);
          diff.forEach((d, i) => expect(Math.abs(Math.abs(d) - perSample * (i + 1))).toBeLessThanOrEqual(2 * resolution));
          break;
        }
        case 'dropout': {
          // Reads 0 in bursts of 1 to 3 samples with 2 to 15 normal samples between; first and last samples dropped.
          const dropped = got.map((v) => v === 0);
          expect(dropped[0]).toBe(true);
          expect(dropped[dropped.length - 1]).toBe(true);
          got.forEach((v, i) => {
            if (!dropped[i]) expect(v).toBe(normal[i]);
          });
          // Lengths of the runs of dropped and of normal samples, alternating from a dropped one.
          const runs: number[] = [];
          dropped.forEach((d, i) => (i > 0 && d === dropped[i - 1] ? (runs[runs.length - 1]! += 1) : runs.push(1)));
          runs.forEach((r, i) => expect(r).toBeLessThanOrEqual(i % 2 === 0 ? 3 : 15));
          runs.forEach((r, i) => expect(r).toBeGreaterThanOrEqual(i % 2 === 0 ? 1 : 2));
          expect(runs.length).toBeGreaterThan(1);
          break;
        }
        case 'stuck': {
          // Repeats the last value sent before the episode while the normal signal moves on.
          const before = clean.messages.get(t.deviceId)![t.startSeq - 1]!.metrics[t.metric]!;
          for (const v of got) expect(v).toBe(before);
          expect(new Set(normal).size).toBeGreaterThan(1);
          break;
        }
        case 'noise-burst': {
          // Zero-mean extra noise of 3 to 5 spreads standard deviation.
          const rms = Math.sqrt(diff.reduce((a, d) => a + d * d, 0) / diff.length);
          expect(rms).toBeGreaterThan(1.5 * spread);
          expect(new Set(diff.map(Math.sign)).size).toBeGreaterThan(1);
          break;
        }
        case 'vibration-rise': {
          // Climbs to 4 to 8 spreads over the first 30 % of the episode and stays there.
          for (const d of diff) expect(d).toBeGreaterThanOrEqual(-resolution);
          const plateau = diff.slice(Math.ceil(diff.length * 0.3));
          for (const d of plateau) expect(d).toBeGreaterThanOrEqual(4 * spread - resolution);
          break;
        }
      }
      checked.add(t.type);
    }
    expect(checked.size).toBe(ANOMALY_TYPES.length);
  });

  it('lets a drift persist until the device stops, with no episode after it, and starts none before startAfterS', () => {
    const { messages, truth } = collect({
      ...base,
      devices: [{ count: 6, profile: 'machine' }],
      anomalies: { ratePerDeviceHour: 6, minGapS: 30, startAfterS: 600, types: { drift: { persist: 1, durationS: [60, 120] } } },
    });
    expect(truth.length).toBeGreaterThan(0);
    for (const t of truth) {
      expect(t.startSeq).toBeGreaterThanOrEqual(600);
      const samples = messages.get(t.deviceId)!;
      // Lasts until the last sample of the recording: cut off there, the offset still held.
      expect(t.endSeq).toBe(samples.length - 1);
      expect(samples[samples.length - 1]!.episode?.type).toBe('drift');
      expect(truth.filter((o) => o.deviceId === t.deviceId)).toHaveLength(1);
    }
  });

  it('refuses shape options on a type they do not belong to', () => {
    expect(() => parseScenario({ ...base, anomalies: { ratePerDeviceHour: 1, types: { spike: { rampFraction: 0.5 } } } })).toThrow(/anomalies\.types\.spike\.rampFraction: unknown key/);
    expect(() => parseScenario({ ...base, anomalies: { ratePerDeviceHour: 1, types: { drift: { persist: 2 } } } })).toThrow(/anomalies\.types\.drift\.persist/);
  });

  it('keeps episodes of one device apart by at least minGapS', () => {
    const byDevice = new Map<string, TruthLine[]>();
    for (const t of anomalous.truth) byDevice.set(t.deviceId, [...(byDevice.get(t.deviceId) ?? []), t]);
    for (const list of byDevice.values()) {
      list.sort((a, b) => a.startSeq - b.startSeq);
      list.slice(1).forEach((t, i) => expect(t.startSeq - list[i]!.endSeq - 1).toBeGreaterThanOrEqual(20));
    }
  });

  it('honours the anomaly mix, the metric choice and the rate of a scenario', () => {
    const { truth } = collect({
      ...base,
      devices: [{ count: 6, profile: 'machine' }],
      anomalies: { ratePerDeviceHour: 10, minGapS: 10, types: { spike: { weight: 3, metrics: ['pressure'] }, stuck: { weight: 1 } } },
    });
    const spikes = truth.filter((t) => t.type === 'spike');
    const stucks = truth.filter((t) => t.type === 'stuck');
    expect(spikes.length + stucks.length).toBe(truth.length);
    expect(spikes.every((t) => t.metric === 'pressure')).toBe(true);
    expect(spikes.length).toBeGreaterThan(2 * stucks.length);
    // 6 device-hours at 10 per device-hour.
    expect(truth.length).toBeGreaterThan(35);
    expect(truth.length).toBeLessThan(85);
  });
});
