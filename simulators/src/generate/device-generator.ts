import { telemetryTopic } from '@outpost/shared';
import type { TruthLine } from '../anomalies/anomaly-types.js';
import { applyEpisode, createAnomalySchedule, type AnomalySchedule, type Episode } from '../anomalies/schedule.js';
import { buildMalformedBody, buildOversizeBody, type MalformedKind } from '../faults/message-faults.js';
import { PROFILES, type MetricSpec } from '../profiles/index.js';
import { createRng } from '../random/prng.js';
import type { DevicePlan, ResolvedScenario } from '../scenario/resolve-scenario.js';

/** What one generated message is on the wire. */
export type MessageKind =
  | { type: 'telemetry' }
  | { type: 'malformed'; malformed: MalformedKind }
  | { type: 'oversize'; bytes: number };

/** One message of one device, ready to publish or record. */
export interface GeneratedMessage {
  readonly deviceId: string;
  readonly seq: number;
  readonly topic: string;
  readonly kind: MessageKind;
  /** The exact payload: a string, or bytes when it is deliberately not UTF-8. */
  readonly body: string | Buffer;
  /** QoS 0 for oversize publishes whatever the scenario says (a resend would be refused forever). */
  readonly qos: 0 | 1;
  /** When the device sent it (true clock, epoch ms). */
  readonly sentAtMs: number;
  /** The payload ts: the device's clock, skewed for a device with clock skew. */
  readonly ts: number;
  /** The metric values of the sample (before any malformation), for tests and summaries. */
  readonly metrics: Readonly<Record<string, number>>;
  /** The anomaly episode this sample belongs to, if any. */
  readonly episode: Episode | undefined;
}

export interface DeviceGenerator {
  readonly device: DevicePlan;
  /** Messages generated so far (= the next seq). */
  readonly generated: number;
  /** True once the device has sent all its planned samples. */
  readonly done: boolean;
  /** Generates the next sample as sent at `sentAtMs` (the true time of sending, epoch ms). */
  next(sentAtMs: number): GeneratedMessage;
  /** Ground truth of episodes that ended with the last generated sample; each line is returned once. */
  takeTruth(): TruthLine[];
  /**
   * Ends the stream: an episode still open is cut at the last generated sample and returned
   * with the truth lines not taken yet.
   */
  finish(): TruthLine[];
}

function roundTo(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}

/**
 * The message stream of one device. Values depend only on the scenario seed, the device and
 * the sample index (and `sentAtMs` only for the timestamps): the physical parameters come from
 * the device id alone, the noise from seed + device, anomalies and faults from streams of their
 * own, so turning anomalies on leaves every sample outside an episode unchanged.
 */
export function createDeviceGenerator(scenario: ResolvedScenario, device: DevicePlan): DeviceGenerator {
  const profile = PROFILES[device.profile];
  const intervalS = device.intervalMs / 1_000;
  const signal = profile.createSignal({
    params: createRng('params', profile.name, device.deviceId),
    noise: createRng(scenario.seed, 'signal', device.deviceId),
    intervalS,
  });
  const anomalyRng = createRng(scenario.seed, 'anomalies', device.deviceId);
  const schedule: AnomalySchedule | undefined = scenario.anomalies === undefined ? undefined : createAnomalySchedule(scenario.anomalies, profile, device.ratePerS, anomalyRng);
  const faultRng = createRng(scenario.seed, 'faults', device.deviceId);
  const specs = new Map<string, MetricSpec>(profile.metrics.map((m) => [m.name, m]));
  const topic = telemetryTopic(device.deviceId);
  const malformedP = scenario.malformed?.probability ?? 0;
  const oversizeP = scenario.oversize?.probability ?? 0;

  let seq = 0;
  let lastSent: Record<string, number> | undefined;
  let open: { episode: Episode; startTs: number; lastTs: number; lastSeq: number } | undefined;
  let truth: TruthLine[] = [];

  const closeEpisode = (endSeq: number, endTs: number): void => {
    if (open === undefined) return;
    const { episode, startTs } = open;
    truth.push({ deviceId: device.deviceId, type: episode.type, metric: episode.metric, startTs, endTs, startSeq: episode.startSeq, endSeq });
    open = undefined;
  };

  return {
    device,
    get generated() {
      return seq;
    },
    get done() {
      return device.samples !== undefined && seq >= device.samples;
    },
    next(sentAtMs) {
      const ts = Math.round(sentAtMs + device.clockSkewMs);
      const raw = signal.next();
      const metrics: Record<string, number> = {};
      for (const spec of profile.metrics) metrics[spec.name] = roundTo(raw[spec.name] as number, spec.decimals);
      const episode = schedule?.at(seq);
      if (episode !== undefined) {
        const spec = specs.get(episode.metric) as MetricSpec;
        const stuckAt = lastSent?.[episode.metric] ?? (metrics[episode.metric] as number);
        metrics[episode.metric] = roundTo(applyEpisode(episode, seq, raw[episode.metric] as number, spec, stuckAt, anomalyRng), spec.decimals);
        if (episode.startSeq === seq) open = { episode, startTs: ts, lastTs: ts, lastSeq: seq };
        if (open !== undefined) {
          open.lastTs = ts;
          open.lastSeq = seq;
        }
      }

      // Two draws per sample whatever happens, so the fault stream stays aligned with seq.
      const faultDraw = faultRng.next();
      const kindDraw = faultRng.next();
      let kind: MessageKind = { type: 'telemetry' };
      let body: string | Buffer;
      const parts = { ts, seq, metrics };
      if (faultDraw < malformedP && scenario.malformed !== undefined) {
        const kinds = scenario.malformed.kinds;
        const malformed = kinds[Math.min(kinds.length - 1, Math.floor(kindDraw * kinds.length))] as MalformedKind;
        kind = { type: 'malformed', malformed };
        body = buildMalformedBody(malformed, parts);
      } else if (faultDraw < malformedP + oversizeP && scenario.oversize !== undefined) {
        kind = { type: 'oversize', bytes: scenario.oversize.bytes };
        body = buildOversizeBody(parts, scenario.oversize.bytes);
      } else {
        body = JSON.stringify(parts);
      }

      const message: GeneratedMessage = {
        deviceId: device.deviceId,
        seq,
        topic,
        kind,
        body,
        qos: kind.type === 'oversize' ? 0 : scenario.qos,
        sentAtMs,
        ts,
        metrics,
        episode,
      };
      if (episode !== undefined && episode.endSeq === seq) closeEpisode(seq, ts);
      lastSent = metrics;
      seq += 1;
      return message;
    },
    takeTruth() {
      const lines = truth;
      truth = [];
      return lines;
    },
    finish() {
      if (open !== undefined) closeEpisode(open.lastSeq, open.lastTs);
      const lines = truth;
      truth = [];
      return lines;
    },
  };
}
