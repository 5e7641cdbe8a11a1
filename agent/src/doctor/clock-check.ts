// Clock skew, measured honestly: one request/reply round trip over NATS to the control plane's
// time service (`outpost.svc.time.{agentId}`), which answers with its clock. The skew is the
// agent's clock at the round trip's midpoint minus the control plane's answer, and it is known
// only to within half the round trip (the answer was stamped somewhere inside it), so the
// judgement uses the smallest skew the measurement allows: network delay is never blamed on
// the clock.
//
// Why the control plane's clock and not the NATS server's: nats-server 2.9 tells a client no
// time. Its INFO has no timestamp, a JetStream PubAck carries stream and sequence only, message
// timestamps are read through the JetStream API (which the agents' account does not have, by
// design: DESIGN section 4), and `$SYS.REQ.SERVER.PING` (which has one) needs the system
// account. The control plane is also the clock the agent's timestamps are judged by (fleet
// freshness, rollout deadlines), so its clock is the reference that matters.
import { DoctorCheckId, SERVICE_ERROR_HEADER, TimeReplySchema, timeServiceSubject } from '@outpost/shared';
import { checkFail, checkOk, checkSkip, checkWarn, formatDuration, type DoctorStep } from './check.js';

const id = DoctorCheckId.clock;

/** A skew at least this large (beyond the measurement's uncertainty) is a warning, ms. */
export const DEFAULT_CLOCK_WARN_MS = 2_000;
/** A skew at least this large (beyond the measurement's uncertainty) fails, ms. */
export const DEFAULT_CLOCK_FAIL_MS = 60_000;

export interface ClockSkew {
  /** The agent's clock minus the reference's: positive when the agent is ahead, ms. */
  skewMs: number;
  /** The true skew lies within skewMs ± this (half the round trip), ms. */
  uncertaintyMs: number;
}

/**
 * The skew from one round trip: the local clock read when the request left (`sentAtMs`), the
 * round trip measured on a monotonic clock (`roundTripMs`), and the reference's answer.
 */
export function measureClockSkew(sentAtMs: number, roundTripMs: number, referenceNowMs: number): ClockSkew {
  const uncertaintyMs = Math.max(0, roundTripMs) / 2;
  return { skewMs: sentAtMs + uncertaintyMs - referenceNowMs, uncertaintyMs };
}

/** The smallest skew the measurement allows, ms (0 when it cannot tell the clocks apart). */
export function leastSkewMs(skew: ClockSkew): number {
  return Math.max(0, Math.abs(skew.skewMs) - skew.uncertaintyMs);
}

/** ok / warn / fail for a measured skew (thresholds in ms). */
export function judgeClockSkew(skew: ClockSkew, warnMs = DEFAULT_CLOCK_WARN_MS, failMs = DEFAULT_CLOCK_FAIL_MS): 'ok' | 'warn' | 'fail' {
  const least = leastSkewMs(skew);
  if (least >= failMs) return 'fail';
  if (least >= warnMs) return 'warn';
  return 'ok';
}

const notMeasured = (summary: string, remedy: string) => checkWarn(id, { summary: `clock skew not measured: ${summary}`, remedy });

export const clockCheck: DoctorStep = {
  id,
  async run(ctx) {
    const { config, nats } = ctx;
    if (config === undefined) return checkSkip(id, 'not checked: the config is invalid');
    if (nats === undefined) return checkSkip(id, 'not measured: needs a NATS connection (see the nats check)');
    const subject = timeServiceSubject(config.agentId);
    const sentAtMs = ctx.env.now();
    const started = performance.now();
    let outcome;
    try {
      outcome = await nats.request(subject, new Uint8Array(0), ctx.env.natsTimeoutMs);
    } catch (error) {
      return notMeasured(`the request to ${subject} failed: ${(error as Error).message}`, 'run the doctor again; check the nats check');
    }
    const roundTripMs = performance.now() - started;
    if (outcome.type === 'no-responders') return notMeasured(`no control plane answers ${subject}`, 'start the control plane, or upgrade it (its time service answers the doctor)');
    if (outcome.type === 'timeout') return notMeasured(`no answer on ${subject} within ${ctx.env.natsTimeoutMs} ms`, 'the control plane is overloaded or NATS is slow: run the doctor again');
    const refused = outcome.reply.header(SERVICE_ERROR_HEADER);
    const parsed = refused === undefined ? TimeReplySchema.safeParse(safeJson(outcome.reply.data)) : undefined;
    if (parsed === undefined || !parsed.success) return notMeasured(`the control plane's answer on ${subject} is not a time${refused === undefined ? '' : ` (${refused})`}`, 'upgrade the control plane: its time service answers { nowMs }');

    const skew = measureClockSkew(sentAtMs, roundTripMs, parsed.data.nowMs);
    const way = skew.skewMs > 0 ? 'ahead of' : 'behind';
    const measured = `${formatDuration(skew.skewMs)} ${way} the control plane's (± ${formatDuration(skew.uncertaintyMs)}, round trip ${formatDuration(roundTripMs)})`;
    const remedy = 'turn on time sync on the gateway (timedatectl set-ntp true: systemd-timesyncd or chrony) and check the control plane host\'s too';
    switch (judgeClockSkew(skew)) {
      case 'fail':
        return checkFail(id, { summary: `this clock is ${measured}: timestamps, model expiry and rollout deadlines go wrong`, remedy });
      case 'warn':
        return checkWarn(id, { summary: `this clock is ${measured}`, remedy });
      default:
        return checkOk(id, `in step with the control plane's clock: ${formatDuration(skew.skewMs)} apart, ± ${formatDuration(skew.uncertaintyMs)}`);
    }
  },
};

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    return undefined;
  }
}
