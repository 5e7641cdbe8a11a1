// What every doctor check gets and gives: the context the earlier checks filled in, and one
// DoctorCheck (ok / warn / fail / skip, a one-line summary, a one-line remedy).
import { DoctorStatus, type AgentConfig, type DoctorCheck, type DoctorCheckId, type DoctorOrigin, type UplinkConfig } from '@outpost/shared';
import type { UplinkCredentials } from '../uplink/credentials.js';
import type { NatsProbe, NatsProbeResult } from '../uplink/nats-transport.js';

/** Below this many days before it ends, a certificate or a model's validity is a warning. */
export const DEFAULT_EXPIRY_WARNING_DAYS = 30;

/** What the doctor needs from where it runs; the local process and the running agent differ only here. */
export interface DoctorEnvironment {
  origin: DoctorOrigin;
  /** The doctor's clock, epoch ms. Injected so a test can run it 10 minutes off; never the machine's clock changed. */
  now(): number;
  /** A NATS connection as this agent: a new one (local), or the running agent's own. */
  connectNats(uplink: UplinkConfig, credentials: UplinkCredentials): Promise<NatsProbeResult>;
  /** The MQTT ports the running agent holds; undefined outside the agent. */
  ownMqttPorts?: ReadonlySet<number> | undefined;
  /** How long a NATS connect or request may take, ms. */
  natsTimeoutMs: number;
  /** The outbox's file name inside the data dir (agent.ts owns it; passed in, so the doctor does not import the agent). */
  outboxFileName: string;
}

/** Filled in by the checks as they run, read by the later ones. */
export interface DoctorContext {
  /** The config file to check; undefined for an agent started in-process from a config object (`runningConfig`). */
  readonly configFile: string | undefined;
  /** The config the running agent was started with, checked when there is no file. */
  readonly runningConfig?: AgentConfig | undefined;
  readonly env: DoctorEnvironment;
  /** The config file's agent config with the enrolment bundle's labels and keys merged in; set by the config check. */
  config?: AgentConfig;
  credentials?: UplinkCredentials | undefined;
  /** The NATS link the nats check opened; the clock check uses it, the doctor closes it. */
  nats?: NatsProbe;
}

/** One check: reads the context (and may add to it), never throws for what it finds. */
export interface DoctorStep {
  id: DoctorCheckId;
  run(ctx: DoctorContext): Promise<DoctorCheck>;
}

type Finding = Omit<DoctorCheck, 'id' | 'status'>;

export const checkOk = (id: DoctorCheckId, summary: string, details?: string[]): DoctorCheck => ({ id, status: DoctorStatus.ok, summary, ...(details === undefined || details.length === 0 ? {} : { details }) });
export const checkWarn = (id: DoctorCheckId, finding: Finding & { remedy: string }): DoctorCheck => ({ id, status: DoctorStatus.warn, ...trimmed(finding) });
export const checkFail = (id: DoctorCheckId, finding: Finding & { remedy: string }): DoctorCheck => ({ id, status: DoctorStatus.fail, ...trimmed(finding) });
export const checkSkip = (id: DoctorCheckId, summary: string): DoctorCheck => ({ id, status: DoctorStatus.skip, summary });

function trimmed(finding: Finding): Finding {
  return finding.details === undefined || finding.details.length === 0 ? { summary: finding.summary, remedy: finding.remedy } : finding;
}

/** A duration for a summary line: `12 days`, `3 h`, `40 min`, `1.5 s`, `250 ms`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs >= 2 * 86_400_000) return `${Math.floor(abs / 86_400_000)} days`;
  if (abs >= 3_600_000) return `${(abs / 3_600_000).toFixed(1)} h`;
  if (abs >= 60_000) return `${(abs / 60_000).toFixed(1)} min`;
  if (abs >= 1_000) return `${(abs / 1_000).toFixed(1)} s`;
  return `${Math.round(abs)} ms`;
}

/** Bytes for a summary line: `512 MiB`, `3.2 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 10 ? 0 : 1)} ${units[unit]}`;
}
