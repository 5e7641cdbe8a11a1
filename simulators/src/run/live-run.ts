import { DeviceErrorSchema } from '@outpost/shared';
import type { TruthLine } from '../anomalies/anomaly-types.js';
import { createDeviceGenerator, type DeviceGenerator, type GeneratedMessage, type MessageKind } from '../generate/device-generator.js';
import type { DevicePlan, ResolvedScenario } from '../scenario/resolve-scenario.js';
import { openDeviceLink, type DeviceLink, type LinkEvent } from '../transport/mqtt-transport.js';
import { createSeqRanges, type SeqRange, type SeqRanges } from './seq-ranges.js';

/** How long devices get to connect before the traffic starts without the missing ones. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** How long a finished or stopped run waits for outstanding QoS 1 acknowledgements. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
/**
 * After the last acknowledgement, how long a run waits for the agent's answers to its
 * malformed payloads (they travel apart from the PUBACKs and can come a little later).
 */
export const DEFAULT_ANSWER_GRACE_MS = 2_000;
/** A device stops sending while this many of its QoS 1 publishes wait for a PUBACK (it falls behind, it drops nothing). */
export const DEFAULT_MAX_IN_FLIGHT_PER_DEVICE = 1_000;
/** Reconnect wait of a device whose link is not flaky. */
export const DEFAULT_RECONNECT_PERIOD_MS = 1_000;
/** The pacing loop's period. */
const TICK_MS = 10;

/** What a live run reports while it runs; tests collect these (e.g. every acknowledged seq). */
export type LiveRunEvent =
  | { type: 'connected'; deviceId: string; reconnect: boolean }
  | { type: 'refused'; deviceId: string; code: number }
  | { type: 'published'; message: GeneratedMessage }
  | { type: 'acked'; deviceId: string; seq: number; kind: MessageKind['type'] }
  | { type: 'publish-failed'; deviceId: string; seq: number; error: string }
  | { type: 'error-answer'; deviceId: string; reason: string; seq: number | undefined }
  | { type: 'link-dropped'; deviceId: string; inFlight: number }
  /** A connection closed while the run was on (link drop, or the broker closed it); `inFlight` QoS 1 publishes will be resent. */
  | { type: 'disconnected'; deviceId: string; inFlight: number }
  | { type: 'truth'; line: TruthLine };

export interface LiveRunOptions {
  scenario: ResolvedScenario;
  /** `mqtt://host:port`. */
  url: string;
  /** A device's password (user name = device id); undefined: connect without credentials. */
  passwordFor(deviceId: string): string | undefined;
  onEvent?(event: LiveRunEvent): void;
  /** Default DEFAULT_CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
  /** Default DEFAULT_DRAIN_TIMEOUT_MS. */
  drainTimeoutMs?: number;
  /** Default DEFAULT_ANSWER_GRACE_MS. */
  answerGraceMs?: number;
  /** Default DEFAULT_MAX_IN_FLIGHT_PER_DEVICE. */
  maxInFlightPerDevice?: number;
  now?: () => number;
}

/** Counters of the whole run (also the progress line). */
export interface LiveRunCounters {
  sent: number;
  /** QoS 1: PUBACKs received. QoS 0: publishes written to the socket. */
  acked: number;
  /** Publishes mqtt.js reported failed; QoS 1 ones are retried (see resent), QoS 0 ones are lost. */
  publishErrors: number;
  malformedSent: number;
  oversizeSent: number;
  /** Answers on devices/{id}/errors, by reason. */
  errorAnswers: Record<string, number>;
  reconnects: number;
  /** Connections that closed during the run (the simulator's own end not counted). */
  disconnects: number;
  /** Links the simulator cut on purpose (flaky link fault). */
  linkDrops: number;
  /**
   * QoS 1 publishes sent again after a link loss: those in flight when it closed (mqtt.js
   * replays them from its store) and those mqtt.js failed (the simulator publishes them again).
   */
  resent: number;
  episodes: number;
}

export interface LiveRunStats extends LiveRunCounters {
  elapsedMs: number;
  devices: number;
  connected: number;
  refused: number;
}

export type DeviceStatus = 'connected' | 'refused' | 'not-connected';

export interface DeviceRunSummary {
  status: DeviceStatus;
  /** CONNACK return code of a refusal. */
  refusedCode?: number;
  badCredentials: boolean;
  clockSkewMs: number;
  sent: number;
  acked: number;
  reconnects: number;
  disconnects: number;
  linkDrops: number;
  resent: number;
  errorAnswers: number;
  /**
   * QoS 1 telemetry publishes (valid payloads: what the control plane counts as `telemetry`)
   * PUBACKed by the agent, each counted once however often it was sent.
   */
  telemetryPubacked: number;
  /** The seqs of those publishes, as sorted inclusive ranges `[first, last]`. */
  telemetryPubackedSeqs: SeqRange[];
}

export interface LiveRunSummary extends LiveRunCounters {
  mode: 'live';
  scenario: string;
  seed: string;
  url: string;
  qos: 0 | 1;
  devices: number;
  connected: number;
  refused: { deviceId: string; code: number; expected: boolean }[];
  notConnected: string[];
  /** QoS 1 publishes still without PUBACK when the drain timeout ended the run. */
  unacked: number;
  /** From the first sample to the end of the drain. */
  elapsedMs: number;
  ratePerS: number;
  /** Why the run counts as failed (exit code 1); empty when it went as planned, faults included. */
  problems: string[];
  perDevice: Record<string, DeviceRunSummary>;
}

export interface LiveRun {
  stats(): LiveRunStats;
  /** Stops sending, waits up to drainTimeoutMs for outstanding acknowledgements, closes every link. Idempotent. */
  stop(): void;
  /** Resolves with the summary once the run has ended (every device done, or stop()). */
  readonly done: Promise<LiveRunSummary>;
}

interface DeviceState {
  plan: DevicePlan;
  generator: DeviceGenerator;
  link: DeviceLink;
  status: DeviceStatus;
  refusedCode: number | undefined;
  /** The last connection error (ECONNREFUSED...), for the summary of a device that never connected. */
  lastError: string | undefined;
  /** When sample 0 is due (before its phase offset); set once the device has connected and the run started. */
  originMs: number | undefined;
  dropAfterNextPublish: boolean;
  /** QoS 1 publishes mqtt.js failed; sent again once the link is up. */
  retry: GeneratedMessage[];
  flakyTimer: NodeJS.Timeout | undefined;
  counters: Omit<DeviceRunSummary, 'status' | 'refusedCode' | 'badCredentials' | 'clockSkewMs' | 'telemetryPubacked' | 'telemetryPubackedSeqs'>;
  telemetryPubacked: SeqRanges;
}

/**
 * Runs a scenario's devices against a broker in real time: one MQTT connection per device,
 * samples paced at each device's rate (devices spread over one interval), payload ts from the
 * wall clock (plus the device's skew), anomalies, faults and ground truth as the scenario
 * says. Devices first all connect (or are refused, or time out), then the traffic starts.
 */
export function startLiveRun(options: LiveRunOptions): LiveRun {
  const { scenario } = options;
  const now = options.now ?? Date.now;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const answerGraceMs = options.answerGraceMs ?? DEFAULT_ANSWER_GRACE_MS;
  const maxInFlight = options.maxInFlightPerDevice ?? DEFAULT_MAX_IN_FLIGHT_PER_DEVICE;
  const emit = (event: LiveRunEvent): void => options.onEvent?.(event);
  const createdAt = now();

  const totals: LiveRunCounters = { sent: 0, acked: 0, publishErrors: 0, malformedSent: 0, oversizeSent: 0, errorAnswers: {}, reconnects: 0, disconnects: 0, linkDrops: 0, resent: 0, episodes: 0 };
  let outstanding = 0;
  let startedAt: number | undefined;
  let phase: 'connecting' | 'running' | 'draining' | 'closed' = 'connecting';
  let onSettled: (() => void) | undefined;
  let onDrained: (() => void) | undefined;
  let answers = 0;
  let onAnswer: (() => void) | undefined;

  const devices: DeviceState[] = scenario.devices.map((plan) => {
    const password = options.passwordFor(plan.deviceId);
    const sentPassword = plan.badCredentials ? `${password ?? 'no-password'}-wrong` : password;
    const state: DeviceState = {
      plan,
      generator: createDeviceGenerator(scenario, plan),
      // Link events arrive asynchronously, after `state` exists.
      link: openDeviceLink({
        url: options.url,
        deviceId: plan.deviceId,
        username: sentPassword === undefined ? undefined : plan.deviceId,
        password: sentPassword,
        reconnectPeriodMs: plan.flakyLink?.downMs ?? DEFAULT_RECONNECT_PERIOD_MS,
        connectTimeoutMs,
        onEvent: (event) => onLinkEvent(state, event),
      }),
      status: 'not-connected',
      refusedCode: undefined,
      lastError: undefined,
      originMs: undefined,
      dropAfterNextPublish: false,
      retry: [],
      flakyTimer: undefined,
      counters: { sent: 0, acked: 0, reconnects: 0, disconnects: 0, linkDrops: 0, resent: 0, errorAnswers: 0 },
      telemetryPubacked: createSeqRanges(),
    };
    return state;
  });

  function onLinkEvent(d: DeviceState, event: LinkEvent): void {
    const id = d.plan.deviceId;
    switch (event.type) {
      case 'connected':
        if (event.reconnect) {
          d.counters.reconnects += 1;
          totals.reconnects += 1;
        } else {
          d.status = 'connected';
          if (startedAt !== undefined) d.originMs = Math.max(startedAt, now());
          onSettled?.();
        }
        emit({ type: 'connected', deviceId: id, reconnect: event.reconnect });
        break;
      case 'refused':
        d.status = 'refused';
        d.refusedCode = event.code;
        emit({ type: 'refused', deviceId: id, code: event.code });
        onSettled?.();
        break;
      case 'closed':
        if (phase === 'closed') break;
        d.counters.disconnects += 1;
        totals.disconnects += 1;
        d.counters.resent += event.inFlight;
        totals.resent += event.inFlight;
        emit({ type: 'disconnected', deviceId: id, inFlight: event.inFlight });
        break;
      case 'error-answer': {
        let reason = 'unknown';
        let seq: number | undefined;
        try {
          const parsed = DeviceErrorSchema.safeParse(JSON.parse(event.payload.toString('utf8')));
          if (parsed.success) {
            reason = parsed.data.reason;
            seq = parsed.data.seq;
          }
        } catch {
          // An answer we cannot read still counts, as 'unknown'.
        }
        d.counters.errorAnswers += 1;
        totals.errorAnswers[reason] = (totals.errorAnswers[reason] ?? 0) + 1;
        answers += 1;
        emit({ type: 'error-answer', deviceId: id, reason, seq });
        onAnswer?.();
        break;
      }
      case 'error':
        d.lastError = event.message;
        break;
    }
  }

  const emitTruth = (lines: TruthLine[]): void => {
    for (const line of lines) {
      totals.episodes += 1;
      emit({ type: 'truth', line });
    }
  };

  /** Publishes not acknowledged yet plus failed ones waiting to be retried; 0 means drained. */
  const unsettled = (): number => outstanding + devices.reduce((sum, d) => sum + d.retry.length, 0);

  function publish(d: DeviceState, message: GeneratedMessage): void {
    const { deviceId, seq, kind } = message;
    outstanding += 1;
    d.link.publish(message.topic, message.body, message.qos, (error) => {
      outstanding -= 1;
      if (error !== undefined) {
        totals.publishErrors += 1;
        emit({ type: 'publish-failed', deviceId, seq, error: error.message });
        // mqtt.js fails publishes it had queued behind a store replay when the link drops
        // during that replay, instead of keeping them: a device that promises at-least-once
        // sends them again itself.
        if (message.qos === 1) d.retry.push(message);
      } else {
        d.counters.acked += 1;
        totals.acked += 1;
        if (message.qos === 1 && kind.type === 'telemetry') d.telemetryPubacked.add(seq);
        emit({ type: 'acked', deviceId, seq, kind: kind.type });
      }
      if (unsettled() === 0) onDrained?.();
    });
  }

  function send(d: DeviceState, atMs: number): void {
    const message = d.generator.next(atMs);
    const { deviceId, kind } = message;
    d.counters.sent += 1;
    totals.sent += 1;
    if (kind.type === 'malformed') totals.malformedSent += 1;
    if (kind.type === 'oversize') totals.oversizeSent += 1;
    emit({ type: 'published', message });
    publish(d, message);
    emitTruth(d.generator.takeTruth());
    if (d.dropAfterNextPublish && d.link.isConnected()) {
      d.dropAfterNextPublish = false;
      d.counters.linkDrops += 1;
      totals.linkDrops += 1;
      emit({ type: 'link-dropped', deviceId, inFlight: d.link.inFlight() });
      // After mqtt.js has written the publish (it uncorks on the next tick), before its PUBACK
      // can be read: the worst moment for at-least-once delivery.
      setImmediate(() => d.link.dropLink());
    }
  }

  function tick(): void {
    const t = now();
    let active = 0;
    for (const d of devices) {
      if (d.retry.length > 0 && d.link.isConnected()) {
        const again = d.retry.splice(0);
        d.counters.resent += again.length;
        totals.resent += again.length;
        for (const message of again) publish(d, message);
      }
      if (phase !== 'running' || d.originMs === undefined || d.status !== 'connected' || d.generator.done) continue;
      active += 1;
      const due = Math.floor((t - d.originMs - d.plan.phaseMs) / d.plan.intervalMs) + 1;
      while (d.generator.generated < due && !d.generator.done) {
        if (scenario.qos === 1 && d.link.inFlight() >= maxInFlight) break;
        send(d, t);
      }
    }
    if (active === 0 && phase === 'running' && devices.every((d) => d.status !== 'connected' || d.generator.done)) stop();
  }

  let ticker: NodeJS.Timeout | undefined;
  let resolveStopRequested: (() => void) | undefined;
  const stopRequested = new Promise<void>((resolve) => {
    resolveStopRequested = resolve;
  });
  function stop(): void {
    resolveStopRequested?.();
  }

  async function run(): Promise<LiveRunSummary> {
    // 1. Connect: every device connected or refused, or the connect timeout.
    await Promise.race([
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (devices.every((d) => d.status !== 'not-connected')) resolve();
        };
        onSettled = check;
        check();
      }),
      new Promise<void>((resolve) => setTimeout(resolve, connectTimeoutMs).unref()),
      stopRequested,
    ]);
    onSettled = undefined;

    // 2. Traffic until every device is done or stop().
    const problems: string[] = [];
    if (devices.some((d) => d.status === 'connected')) {
      phase = 'running';
      startedAt = now();
      for (const d of devices) {
        if (d.status === 'connected') d.originMs = startedAt;
        const flaky = d.plan.flakyLink;
        if (flaky !== undefined) {
          d.flakyTimer = setInterval(() => {
            d.dropAfterNextPublish = true;
          }, flaky.intervalMs);
        }
      }
      ticker = setInterval(tick, TICK_MS);
      tick();
      await stopRequested;
    } else if (!devices.every((d) => d.plan.badCredentials)) {
      const lastError = devices.find((d) => d.lastError !== undefined)?.lastError;
      problems.push(`no device could connect to ${options.url} within ${connectTimeoutMs} ms${lastError === undefined ? '' : ` (${lastError})`}`);
    }

    // 3. Drain: outstanding acknowledgements (retrying failed publishes), bounded.
    phase = 'draining';
    for (const d of devices) clearInterval(d.flakyTimer);
    if (unsettled() > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainTimeoutMs);
        onDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    onDrained = undefined;
    clearInterval(ticker);
    const unacked = scenario.qos === 1 ? devices.reduce((sum, d) => sum + d.link.inFlight() + d.retry.length, 0) : 0;
    const endedAt = now();
    if (answers < totals.malformedSent) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, answerGraceMs);
        onAnswer = () => {
          if (answers < totals.malformedSent) return;
          clearTimeout(timer);
          resolve();
        };
      });
    }
    onAnswer = undefined;
    phase = 'closed';
    await Promise.allSettled(devices.map((d) => d.link.close(d.status !== 'connected' || d.link.inFlight() > 0 || !d.link.isConnected())));
    for (const d of devices) emitTruth(d.generator.finish());

    const refused = devices
      .filter((d) => d.status === 'refused')
      .map((d) => ({ deviceId: d.plan.deviceId, code: d.refusedCode ?? -1, expected: d.plan.badCredentials }));
    const unexpected = refused.filter((r) => !r.expected);
    if (unexpected.length > 0) {
      problems.push(`${unexpected.length} device(s) refused by the broker: ${unexpected.slice(0, 5).map((r) => `${r.deviceId} (CONNACK ${r.code})`).join(', ')}${unexpected.length > 5 ? ', ...' : ''}`);
    }
    const notConnected = devices.filter((d) => d.status === 'not-connected').map((d) => d.plan.deviceId);
    if (notConnected.length > 0 && problems.length === 0) {
      problems.push(`${notConnected.length} device(s) could not connect within ${connectTimeoutMs} ms: ${notConnected.slice(0, 5).join(', ')}${notConnected.length > 5 ? ', ...' : ''}`);
    }
    if (unacked > 0) problems.push(`${unacked} QoS 1 publish(es) still unacknowledged ${drainTimeoutMs} ms after the traffic ended`);

    const elapsedMs = endedAt - (startedAt ?? createdAt);
    return {
      mode: 'live',
      scenario: scenario.name,
      seed: scenario.seed,
      url: options.url,
      qos: scenario.qos,
      devices: devices.length,
      connected: devices.filter((d) => d.status === 'connected').length,
      refused,
      notConnected,
      ...totals,
      unacked,
      elapsedMs,
      ratePerS: elapsedMs > 0 ? Math.round((totals.sent * 1_000) / elapsedMs) : 0,
      problems,
      perDevice: Object.fromEntries(
        devices.map((d) => [
          d.plan.deviceId,
          {
            status: d.status,
            ...(d.refusedCode === undefined ? {} : { refusedCode: d.refusedCode }),
            badCredentials: d.plan.badCredentials,
            clockSkewMs: d.plan.clockSkewMs,
            ...d.counters,
            telemetryPubacked: d.telemetryPubacked.count(),
            telemetryPubackedSeqs: d.telemetryPubacked.toRanges(),
          },
        ]),
      ),
    };
  }

  return {
    stats: () => ({
      ...totals,
      errorAnswers: { ...totals.errorAnswers },
      elapsedMs: now() - (startedAt ?? createdAt),
      devices: devices.length,
      connected: devices.filter((d) => d.link.isConnected()).length,
      refused: devices.filter((d) => d.status === 'refused').length,
    }),
    stop,
    done: run(),
  };
}
