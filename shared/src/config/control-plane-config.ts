import { z } from 'zod';
import { TrustedKeySchema } from '../model/manifest.js';
import { TOKEN_NAME_PATTERN, TokenRole, TokenRoleSchema } from '../schemas/api.js';

export const DEFAULT_CONTROL_PLANE_HTTP_PORT = 8080;
export const DEFAULT_NATS_SERVERS: readonly string[] = ['nats://127.0.0.1:4222'];
/** The uplink stream is the log of record: telemetry history kept this long by default. */
export const DEFAULT_UPLINK_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** The audit log of mutating API calls keeps an entry this long by default (90 days). */
export const DEFAULT_AUDIT_MAX_AGE_MS = 90 * 24 * 60 * 60 * 1000;
/** Heartbeats and eviction reports are consumed within seconds; an hour leaves room for an outage. */
export const DEFAULT_AGENT_EVENTS_MAX_AGE_MS = 60 * 60 * 1000;
/** JetStream drops a repeated Nats-Msg-Id only inside this window (FACTS: 2.5 s apart with a 1 s window was stored twice). */
export const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
/** 3 missed heartbeats at the agent's 10 s interval. */
export const DEFAULT_OFFLINE_AFTER_MS = 30_000;
/** An agent whose oldest buffered record is older than this is degraded (its uplink does not keep up). */
export const DEFAULT_DEGRADED_BUFFER_AGE_MS = 5 * 60 * 1000;
/** An agent whose outbox holds more than this fraction of its byte bound is degraded (evictions are near). */
export const DEFAULT_DEGRADED_BUFFER_FILL_RATIO = 0.9;
/** Messages one pull asks for. */
export const DEFAULT_INGEST_FETCH_BATCH = 256;
/** A message not acked within this is redelivered (to any replica). */
export const DEFAULT_INGEST_ACK_WAIT_MS = 30_000;
/** Unacked messages the server hands out per consumer, over all replicas. */
export const DEFAULT_INGEST_MAX_ACK_PENDING = 1_000;
/** A batch that decompresses to more than this is refused (gzip bomb). */
export const DEFAULT_INGEST_MAX_BATCH_BYTES = 16 * 1024 * 1024;
export const DEFAULT_NATS_PING_INTERVAL_MS = 10_000;
export const DEFAULT_NATS_MAX_PING_OUT = 2;
export const DEFAULT_NATS_RECONNECT_WAIT_MS = 1_000;
export const DEFAULT_NATS_RECONNECT_JITTER_MS = 1_000;
export const DEFAULT_NATS_CONNECT_TIMEOUT_MS = 5_000;
/** The recent window of telemetry and inference results each replica keeps per device. */
export const DEFAULT_LIVE_RECENT_WINDOW_MS = 10 * 60 * 1000;
/** 10 minutes of one reading every 200 ms. */
export const DEFAULT_LIVE_MAX_POINTS_PER_DEVICE = 3_000;
/**
 * Devices in the recent window; beyond it the least recently updated device is forgotten. A
 * point with two metrics costs about 300 bytes of heap (measured), so the window's worst case
 * is about maxDevices x maxPointsPerDevice x 300 B: 1000 x 3000 -> 0.9 GB.
 */
export const DEFAULT_LIVE_MAX_DEVICES = 1_000;
/** How long anomalies stay listed by `GET /api/anomalies`. */
export const DEFAULT_LIVE_ANOMALY_RETENTION_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_LIVE_MAX_ANOMALIES = 10_000;
/** A comment line on every event stream this often keeps proxies from closing an idle one. */
export const DEFAULT_SSE_KEEPALIVE_MS = 15_000;
/** Events queued for one event-stream client that does not read; beyond it the client is disconnected. */
export const DEFAULT_SSE_MAX_QUEUED_EVENTS = 1_000;
export const DEFAULT_SSE_MAX_CLIENTS = 100;
/** How often the lag of the durable consumers is read for /metrics. */
export const DEFAULT_CONSUMER_LAG_POLL_INTERVAL_MS = 5_000;

/** Hex SHA-256 of an operator token, as `outpostctl token hash` prints it. */
export const TOKEN_SHA256_PATTERN = /^[0-9a-f]{64}$/;

const PortSchema = z.number().int().min(0).max(65535);
const PositiveMs = z.number().int().positive();

/** TLS of a NATS client: the server certificate checked against `caFile` (and its host name), optionally a client certificate. */
export const NatsTlsSchema = z
  .strictObject({
    caFile: z.string().min(1),
    certFile: z.string().min(1).optional(),
    /** 0600: refused when others may read it. */
    keyFile: z.string().min(1).optional(),
  })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), { message: 'certFile and keyFile go together', path: ['keyFile'] });

const NatsSchema = z
  .strictObject({
    /** e.g. `nats://nats-1:4222`; several for a cluster. */
    servers: z.array(z.string().min(1)).min(1).default([...DEFAULT_NATS_SERVERS]),
    user: z.string().min(1).optional(),
    pass: z.string().min(1).optional(),
    token: z.string().min(1).optional(),
    /** A creds file (JWT + seed) of a user of the OUTPOST account (`outpost-control-plane setup` writes one); 0600. */
    credsFile: z.string().min(1).optional(),
    /** TLS to the servers: the CA that signed their certificate, and a client certificate when they ask for one. */
    tls: NatsTlsSchema.optional(),
    /** Client name shown in the server's connection list. */
    name: z.string().min(1).default('outpost-control-plane'),
    /** With maxPingOut 2, a dead link is found within pingIntervalMs * 3. */
    pingIntervalMs: PositiveMs.default(DEFAULT_NATS_PING_INTERVAL_MS),
    maxPingOut: z.number().int().min(1).default(DEFAULT_NATS_MAX_PING_OUT),
    /** Wait between reconnect attempts, plus up to reconnectJitterMs at random (a fleet of replicas does not reconnect in lockstep). */
    reconnectWaitMs: PositiveMs.default(DEFAULT_NATS_RECONNECT_WAIT_MS),
    reconnectJitterMs: z.number().int().nonnegative().default(DEFAULT_NATS_RECONNECT_JITTER_MS),
    /** The first connect fails start-up after this long. */
    connectTimeoutMs: PositiveMs.default(DEFAULT_NATS_CONNECT_TIMEOUT_MS),
  })
  .superRefine((nats, ctx) => {
    if ((nats.user === undefined) !== (nats.pass === undefined)) {
      ctx.addIssue({ code: 'custom', path: [nats.user === undefined ? 'user' : 'pass'], message: 'user and pass go together' });
    }
    if (nats.token !== undefined && nats.user !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['token'], message: 'use either token or user/pass, not both' });
    }
    if (nats.credsFile !== undefined && (nats.user !== undefined || nats.token !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['credsFile'], message: 'use either credsFile, user/pass or token' });
    }
  });

const StreamsSchema = z
  .strictObject({
    /** How long the uplink stream (the telemetry log of record) keeps a batch. */
    uplinkMaxAgeMs: PositiveMs.default(DEFAULT_UPLINK_MAX_AGE_MS),
    /** Optional byte bound of the uplink stream; the oldest batches go first. */
    uplinkMaxBytes: z.number().int().positive().optional(),
    agentEventsMaxAgeMs: PositiveMs.default(DEFAULT_AGENT_EVENTS_MAX_AGE_MS),
    /** How long the audit stream (OUTPOST_AUDIT) keeps an entry of a mutating API call. */
    auditMaxAgeMs: PositiveMs.default(DEFAULT_AUDIT_MAX_AGE_MS),
    /** Optional byte bound of the audit stream; the oldest entries go first. */
    auditMaxBytes: z.number().int().positive().optional(),
    duplicateWindowMs: PositiveMs.default(DEFAULT_DUPLICATE_WINDOW_MS),
    /** JetStream replicas of the streams and KV buckets (3 on a cluster). */
    replicas: z.number().int().min(1).max(5).default(1),
  })
  .superRefine((streams, ctx) => {
    // JetStream refuses a duplicate window longer than the stream's max age.
    for (const key of ['uplinkMaxAgeMs', 'agentEventsMaxAgeMs', 'auditMaxAgeMs'] as const) {
      if (streams.duplicateWindowMs > streams[key]) {
        ctx.addIssue({ code: 'custom', path: ['duplicateWindowMs'], message: `must not exceed ${key} (${streams[key]} ms)` });
      }
    }
  });

const OperatorTokenSchema = z.strictObject({
  /** Who holds the token, so a token can be found and removed; the token itself is never stored. The audit log names it. */
  name: z.string().regex(TOKEN_NAME_PATTERN, 'must be 1 to 64 letters, digits or _.@-'),
  /**
   * `viewer`: reads only (every GET of /api, the event stream, rollout dry runs). `operator`
   * (the default, so configs written before roles keep working): also publishes models,
   * creates and steers rollouts, enrols and revokes agents.
   */
  role: TokenRoleSchema.default(TokenRole.operator),
  /** Hex SHA-256 of the token (`outpostctl token hash` reads a token on stdin and prints it). */
  sha256: z
    .string()
    .transform((s) => s.toLowerCase())
    .pipe(z.string().regex(TOKEN_SHA256_PATTERN, 'must be the 64 hex digits of a SHA-256 (outpostctl token hash)')),
});

const AuthSchema = z
  .strictObject({
    /** API bearer tokens, by hash, each with its role. None: every route is open to anyone (logged as a warning at start). */
    tokens: z.array(OperatorTokenSchema).default([]),
    /** Which routes answer without a token. */
    public: z
      .strictObject({
        healthz: z.boolean().default(true),
        metrics: z.boolean().default(true),
        /** The dashboard's files (its API calls still carry the token). */
        dashboard: z.boolean().default(true),
        /** GET /api/openapi.json */
        openapi: z.boolean().default(true),
      })
      .prefault({}),
  })
  .superRefine((auth, ctx) => {
    const seen = new Map<string, number>();
    auth.tokens.forEach((token, index) => {
      for (const [key, value] of [['name', token.name], ['sha256', token.sha256]] as const) {
        const id = `${key}:${value}`;
        if (seen.has(id)) ctx.addIssue({ code: 'custom', path: ['tokens', index, key], message: `same ${key} as tokens.${seen.get(id)}` });
        else seen.set(id, index);
      }
    });
  });

const SseSchema = z.strictObject({
  keepaliveMs: z.number().int().min(1_000).default(DEFAULT_SSE_KEEPALIVE_MS),
  /** Events waiting for one slow client; more and it is disconnected (and counted). */
  maxQueuedEvents: z.number().int().min(10).max(1_000_000).default(DEFAULT_SSE_MAX_QUEUED_EVENTS),
  /** Open event streams per replica; one more is refused with 429. */
  maxClients: z.number().int().min(1).max(100_000).default(DEFAULT_SSE_MAX_CLIENTS),
});

const LiveSchema = z.strictObject({
  /** Telemetry and inference results kept per device for /series, rebuilt from the uplink stream at start. */
  recentWindowMs: z.number().int().min(1_000).max(24 * 60 * 60 * 1000).default(DEFAULT_LIVE_RECENT_WINDOW_MS),
  maxPointsPerDevice: z.number().int().min(10).max(1_000_000).default(DEFAULT_LIVE_MAX_POINTS_PER_DEVICE),
  maxDevices: z.number().int().min(1).max(1_000_000).default(DEFAULT_LIVE_MAX_DEVICES),
  /** Anomalies (events lane) kept for /api/anomalies, rebuilt from the uplink stream at start. */
  anomalyRetentionMs: z.number().int().min(1_000).default(DEFAULT_LIVE_ANOMALY_RETENTION_MS),
  maxAnomalies: z.number().int().min(1).max(1_000_000).default(DEFAULT_LIVE_MAX_ANOMALIES),
});

/** How often a replica looks at the rollouts, ms. */
export const DEFAULT_ROLLOUT_TICK_MS = 1_000;

export const ControlPlaneConfigSchema = z.strictObject({
  nats: NatsSchema.prefault({}),
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: PortSchema.default(DEFAULT_CONTROL_PLANE_HTTP_PORT),
      auth: AuthSchema.prefault({}),
      /** The dashboard's built files; default control-plane/dist/dashboard (made by `npm run build`). */
      dashboardDir: z.string().min(1).optional(),
      sse: SseSchema.prefault({}),
    })
    .prefault({}),
  live: LiveSchema.prefault({}),
  streams: StreamsSchema.prefault({}),
  fleet: z
    .strictObject({
      /** An agent without a heartbeat for this long reads offline. */
      offlineAfterMs: PositiveMs.default(DEFAULT_OFFLINE_AFTER_MS),
      degradedBufferAgeMs: PositiveMs.default(DEFAULT_DEGRADED_BUFFER_AGE_MS),
      degradedBufferFillRatio: z.number().gt(0).max(1).default(DEFAULT_DEGRADED_BUFFER_FILL_RATIO),
    })
    .prefault({}),
  ingest: z
    .strictObject({
      fetchBatch: z.number().int().min(1).max(10_000).default(DEFAULT_INGEST_FETCH_BATCH),
      ackWaitMs: z.number().int().min(1_000).default(DEFAULT_INGEST_ACK_WAIT_MS),
      maxAckPending: z.number().int().min(1).default(DEFAULT_INGEST_MAX_ACK_PENDING),
      maxBatchBytes: z.number().int().min(1024).default(DEFAULT_INGEST_MAX_BATCH_BYTES),
      /** How often the lag of the durable consumers is read for /metrics. */
      lagPollIntervalMs: z.number().int().min(100).default(DEFAULT_CONSUMER_LAG_POLL_INTERVAL_MS),
    })
    .prefault({}),
  /**
   * NATS decentralized auth (DESIGN section 4), as `outpost-control-plane setup` wrote it: with
   * it the control plane enrols agents (mints their NATS users) and revokes them. Every file 0600.
   */
  security: z
    .strictObject({
      /** accounts.json: the public keys of the operator's accounts. */
      accountsFile: z.string().min(1),
      /** Seed of the AGENTS account signing key (mints agents' users). */
      agentsSigningKeyFile: z.string().min(1),
      /** Seed of the operator signing key (re-signs the AGENTS account with revocations). */
      operatorSigningKeyFile: z.string().min(1),
      /** Creds of a system-account user (pushes account JWTs to the servers). */
      systemCredsFile: z.string().min(1),
      /** NATS URLs agents get in their bundle; default `nats.servers`. */
      agentServers: z.array(z.string().regex(/^(nats|tls):\/\/.+/, 'must be a nats:// or tls:// URL')).min(1).optional(),
      /** CA agents get in their bundle to check the servers' certificate; default `nats.tls.caFile`. */
      agentCaFile: z.string().min(1).optional(),
    })
    .optional(),
  rollouts: z
    .strictObject({
      /** How often each replica looks at every rollout (writes desired state, takes the next step). */
      tickMs: z.number().int().min(50).max(60_000).default(DEFAULT_ROLLOUT_TICK_MS),
      /**
       * Keys whose model signatures the control plane accepts at upload; empty: it checks a
       * manifest's form and digest only (agents always verify signatures themselves).
       */
      trustedKeys: z.array(TrustedKeySchema).default([]),
    })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
});

/** What a user writes in the control plane's config file. */
export type ControlPlaneConfigInput = z.input<typeof ControlPlaneConfigSchema>;
/** The validated config with every default filled in. */
export type ControlPlaneConfig = z.output<typeof ControlPlaneConfigSchema>;
export type ControlPlaneNatsConfig = ControlPlaneConfig['nats'];
export type ControlPlaneStreamsConfig = ControlPlaneConfig['streams'];
export type ControlPlaneFleetConfig = ControlPlaneConfig['fleet'];
export type ControlPlaneIngestConfig = ControlPlaneConfig['ingest'];
export type ControlPlaneHttpConfig = ControlPlaneConfig['http'];
export type ControlPlaneAuthConfig = ControlPlaneHttpConfig['auth'];
export type ControlPlaneLiveConfig = ControlPlaneConfig['live'];
export type ControlPlaneRolloutsConfig = ControlPlaneConfig['rollouts'];
