import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { jetstream, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { connect, credsAuthenticator, headers as natsHeaders, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import {
  BATCH_ENCODING,
  batchMsgId,
  ControlPlaneConfigSchema,
  ENCODING_HEADER,
  heartbeatSubject,
  parseConfig,
  uplinkSubject,
  type AgentDetailResponse,
  type ControlPlaneConfigInput,
  type DeviceDetailResponse,
  type EnrollmentBundle,
  type Heartbeat,
  type InferenceResult,
  type Lane,
  type Logger,
  type ServerEvent,
  type UplinkBatch,
  type UplinkRecord,
} from '@outpost/shared';
import { startControlPlane, type ControlPlane } from '@outpost/control-plane';
import type { NatsServer } from './nats-server.js';
import { startServiceProcess, type ServiceProcess } from './service-process.js';
import { waitFor } from './wait.js';

/** The built control-plane entry point. */
export const CONTROL_PLANE_MAIN = fileURLToPath(new URL('../../../control-plane/dist/main.js', import.meta.url));
/** The built operator CLI. */
export const OUTPOSTCTL_MAIN = fileURLToPath(new URL('../../../control-plane/dist/cli/main.js', import.meta.url));

/**
 * A test config: NATS of the test (a URL, or the server: a secured one gives its creds, CA
 * and the `security` section), an ephemeral HTTP port, quiet logs.
 */
export function testControlPlaneConfig(nats: string | NatsServer, overrides: Partial<ControlPlaneConfigInput> = {}): ControlPlaneConfigInput {
  const security = typeof nats === 'string' ? undefined : nats.security;
  const connection = security === undefined ? { servers: [typeof nats === 'string' ? nats : nats.url] } : security.controlPlaneNats();
  return {
    nats: { ...connection, reconnectWaitMs: 250, reconnectJitterMs: 250 },
    ...(security === undefined ? {} : { security: security.controlPlaneSecurity() }),
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
    ...overrides,
  };
}

/** Hex SHA-256 of an operator token, as `http.auth.tokens[].sha256` wants it. */
export function operatorTokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** `http.auth` with one operator token (`name` holds `token`); `publicRoutes` overrides which routes skip auth. */
export function operatorAuth(token: string, name = 'test-operator', publicRoutes: Partial<Record<'healthz' | 'metrics' | 'dashboard' | 'openapi', boolean>> = {}) {
  return { tokens: [{ name, sha256: operatorTokenSha256(token) }], public: publicRoutes };
}

export async function startInProcessControlPlane(input: ControlPlaneConfigInput, logger?: Logger): Promise<ControlPlane> {
  return startControlPlane(parseConfig(ControlPlaneConfigSchema, input, 'test control-plane config'), logger === undefined ? {} : { logger });
}

export interface ControlPlaneProcess extends ServiceProcess {
  readonly httpPort: number;
}

/** Runs `outpost-control-plane --config <file>` as a child process a test can kill -9. */
export async function startControlPlaneProcess(input: ControlPlaneConfigInput, dir: string): Promise<ControlPlaneProcess> {
  const service = await startServiceProcess({
    main: CONTROL_PLANE_MAIN,
    config: input,
    configFile: join(dir, `control-plane-${Date.now()}-${process.hrtime.bigint()}.json`),
    readyEvent: 'control-plane-ready',
  });
  return Object.assign(service, { httpPort: service.ready['httpPort'] as number });
}

/** A small client of the control plane's HTTP API for tests; `token` goes out as a bearer token. */
export function controlPlaneApi(httpPort: number, token?: string) {
  const base = `http://127.0.0.1:${httpPort}`;
  const headers = token === undefined ? undefined : { authorization: `Bearer ${token}` };
  const get = async <T>(path: string): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${base}${path}`, { headers });
    return { status: response.status, body: (await response.json()) as T };
  };
  return {
    get,
    agent: (agentId: string) => get<AgentDetailResponse>(`/api/agents/${encodeURIComponent(agentId)}`),
    device: (agentId: string, deviceId: string) => get<DeviceDetailResponse>(`/api/agents/${encodeURIComponent(agentId)}/devices/${encodeURIComponent(deviceId)}`),
  };
}

// ---------------------------------------------------------------------------------------
// A fake agent: publishes what the agent's uplink would (same subjects, headers and msg ids).
// ---------------------------------------------------------------------------------------

export const FAKE_EPOCH = 'epoch0001';

export interface FakeAgent {
  readonly agentId: string;
  /** A batch of `records` from agent seq `firstSeq` on (each record's seq is set here). */
  batch(lane: Lane, firstSeq: number, records: Omit<UplinkRecord, 'seq'>[]): UplinkBatch;
  publishBatch(batch: UplinkBatch): Promise<PubAck>;
  heartbeat(overrides?: Partial<Heartbeat>): Promise<PubAck>;
  /** The NATS connection itself, for what a compromised agent might try. */
  readonly connection: NatsConnection;
  close(): Promise<void>;
}

/** A telemetry record of `deviceId` at device time `ts`. */
export function telemetryRecord(deviceId: string, ts: number, metrics: Record<string, number>, deviceSeq?: number): Omit<UplinkRecord, 'seq'> {
  return { deviceId, ts, receivedAtMs: ts + 1, ...(deviceSeq === undefined ? {} : { deviceSeq }), kind: 'telemetry', body: { ts, ...(deviceSeq === undefined ? {} : { seq: deviceSeq }), metrics } };
}

/**
 * An `inference` (telemetry lane) or `anomaly` (events lane) record with an InferenceResult
 * body; the agent gives it the device seq of the newest telemetry in the scored window.
 */
export function inferenceRecord(
  deviceId: string,
  result: InferenceResult & { threshold?: number },
  kind: 'inference' | 'anomaly' = result.anomaly ? 'anomaly' : 'inference',
  deviceSeq?: number,
): Omit<UplinkRecord, 'seq'> {
  return { deviceId, ts: result.ts, receivedAtMs: result.ts + 2, ...(deviceSeq === undefined ? {} : { deviceSeq }), kind, body: result };
}

/** A fake agent on `nats`: a URL of an open server, or connection options (e.g. {@link bundleConnectionOptions} of an enrolment bundle). */
export async function connectFakeAgent(nats: string | ConnectionOptions, agentId: string, epoch = FAKE_EPOCH): Promise<FakeAgent> {
  const nc: NatsConnection = await connect({ ...(typeof nats === 'string' ? { servers: [nats] } : nats), maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const js: JetStreamClient = jetstream(nc, { timeout: 5_000 });
  return {
    agentId,
    batch(lane, firstSeq, records) {
      return { agentId, epoch, lane, firstSeq, lastSeq: firstSeq + records.length - 1, records: records.map((r, k) => ({ ...r, seq: firstSeq + k })) };
    },
    publishBatch(batch) {
      const h = natsHeaders();
      h.set(ENCODING_HEADER, BATCH_ENCODING);
      const msgID = batchMsgId(batch.agentId, batch.epoch, batch.lane, batch.firstSeq, batch.lastSeq);
      return js.publish(uplinkSubject(batch.agentId, batch.lane), gzipSync(JSON.stringify(batch)), { msgID, headers: h });
    },
    heartbeat(overrides = {}) {
      const hb: Heartbeat = {
        agentId,
        epoch,
        ts: Date.now(),
        labels: { site: 'lab' },
        versions: { agent: '0.1.0' },
        buffer: { records: { events: 0, telemetry: 3 }, bytes: 2048, maxBytes: 1 << 20, evictedRecords: { events: 0, telemetry: 0 } },
        ingest: { accepted: 10, rejected: 0, devicesConnected: 2 },
        ...overrides,
      };
      return js.publish(heartbeatSubject(agentId), JSON.stringify(hb));
    },
    connection: nc,
    close: () => nc.close(),
  };
}

/** nats.js options that connect as the agent an enrolment bundle was written for: its creds, its inbox prefix, its CA. */
export function bundleConnectionOptions(bundle: EnrollmentBundle): ConnectionOptions {
  return {
    servers: bundle.servers,
    authenticator: credsAuthenticator(Buffer.from(bundle.creds)),
    inboxPrefix: bundle.inboxPrefix,
    ...(bundle.caPem === undefined ? {} : { tls: { ca: bundle.caPem } }),
  };
}

// ---------------------------------------------------------------------------------------
// GET /api/events read with fetch, as the dashboard reads it.
// ---------------------------------------------------------------------------------------

export interface EventStream {
  readonly status: number;
  readonly contentType: string | null;
  /** Every event so far, in order. */
  readonly events: ServerEvent[];
  /** Comment lines (keepalives) so far. */
  comments(): number;
  /** The first event (from the start) matching `match`, waiting for it up to `timeoutMs` (default 10 s). */
  next(match: (event: ServerEvent) => boolean, what: string, timeoutMs?: number): Promise<ServerEvent>;
  /** Resolves when the server ended the stream (or `close` was called). */
  readonly ended: Promise<void>;
  close(): void;
}

/**
 * Opens `GET /api/events[?query]` with fetch and parses the stream as it arrives. A non-200
 * answer is returned with no events (its body is left unread).
 */
export async function openEventStream(httpPort: number, options: { token?: string; query?: string } = {}): Promise<EventStream> {
  const abort = new AbortController();
  const response = await fetch(`http://127.0.0.1:${httpPort}/api/events${options.query === undefined ? '' : `?${options.query}`}`, {
    headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
    signal: abort.signal,
  });
  const events: ServerEvent[] = [];
  let comments = 0;
  let ended: Promise<void> = Promise.resolve();
  if (response.status === 200 && response.body !== null) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    ended = (async () => {
      let buffer = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type: string | undefined;
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) comments++;
              else if (line.startsWith('event: ')) type = line.slice('event: '.length);
              else if (line.startsWith('data: ')) data += line.slice('data: '.length);
            }
            if (type !== undefined) events.push({ type, data: JSON.parse(data) } as ServerEvent);
          }
        }
      } catch {
        // Aborted by close(), or the server cut the connection: the stream has ended either way.
      }
    })();
  }
  let isEnded = false;
  void ended.then(() => (isEnded = true));
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    events,
    comments: () => comments,
    next: (match, what, timeoutMs = 10_000) =>
      waitFor(
        () => {
          const found = events.find(match);
          if (found === undefined && isEnded) throw new Error(`the event stream ended before ${what}`);
          return found;
        },
        { what, timeoutMs },
      ),
    ended,
    close: () => abort.abort(),
  };
}

// ---------------------------------------------------------------------------------------
// The built operator CLI, run as a script would run it.
// ---------------------------------------------------------------------------------------

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node control-plane/dist/cli/main.js ...args` with only `env` as its OUTPOST_* and
 * NO_COLOR environment (the test's own are not passed on), writes `stdin` and closes it.
 */
export async function runOutpostctl(args: readonly string[], options: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OUTPOST_') && k !== 'NO_COLOR'));
  const child = spawn(process.execPath, [OUTPOSTCTL_MAIN, ...args], { env: { ...env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'], timeout: options.timeoutMs ?? 30_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(options.stdin ?? '');
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode) => resolve(exitCode));
  });
  return { code, stdout, stderr };
}
