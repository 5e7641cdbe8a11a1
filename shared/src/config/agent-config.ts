import { z } from 'zod';
import { TrustedKeySchema } from '../model/manifest.js';
import { DeviceIdSchema } from '../schemas/device.js';
import { AgentIdSchema } from '../schemas/uplink.js';

export const DEFAULT_MQTT_PORT = 1883;
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024;
export const DEFAULT_MAX_BUFFER_BYTES = 512 * 1024 * 1024;
export const DEFAULT_DEAD_LETTER_MAX_ROWS = 10_000;
export const DEFAULT_MAX_RECORDS_PER_COMMIT = 1_000;
export const DEFAULT_RATE_LIMIT_MSGS_PER_S = 1_000;
/** Devices whose recent messages the agent remembers to recognise resends. */
export const DEFAULT_RESEND_WINDOW_DEVICES = 4_096;
export const DEFAULT_HTTP_PORT = 9464;

const PortSchema = z.number().int().min(0).max(65535);
const HostSchema = z.string().min(1);

/** `scrypt$N$r$p$saltB64$hashB64`, made by `outpost-agent hash-password`. */
export const PasswordHashSchema = z
  .string()
  .regex(/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/, 'must be a hash made by `outpost-agent hash-password` (scrypt$N$r$p$salt$hash)');

export const DeviceCredentialSchema = z.strictObject({
  id: DeviceIdSchema,
  passwordHash: PasswordHashSchema,
});

export const TlsConfigSchema = z.strictObject({
  port: PortSchema,
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** CA bundle for client certificates (mTLS); a device's certificate CN is its id. */
  caFile: z.string().min(1).optional(),
  requireClientCert: z.boolean().default(false),
});

const EmbeddedBrokerSchema = z.strictObject({
  mode: z.literal('embedded'),
  host: HostSchema.default('127.0.0.1'),
  port: PortSchema.default(DEFAULT_MQTT_PORT),
  tls: TlsConfigSchema.optional(),
  /**
   * Listen on plain TCP (`port`) too. Default: only without `tls`; with it, devices must use
   * TLS unless this says otherwise.
   */
  plaintext: z.boolean().optional(),
  /** A packet declaring more bytes than this closes its connection before it is buffered. */
  maxPacketBytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(DEFAULT_MAX_PACKET_BYTES),
  /** Accept devices without credentials; their ClientId is their device id. */
  allowAnonymous: z.boolean().default(false),
  devices: z.array(DeviceCredentialSchema).default([]),
});

const BridgeSchema = z.strictObject({
  mode: z.literal('bridge'),
  /** Site broker URL, e.g. mqtt://broker.local:1883 or mqtts://... */
  url: z.string().regex(/^mqtts?:\/\/.+/, 'must be an mqtt:// or mqtts:// URL'),
  clientId: z.string().min(1).max(128),
  username: z.string().optional(),
  password: z.string().optional(),
  caFile: z.string().optional(),
  /** Telemetry filters to subscribe to; default every device. */
  topics: z.array(z.string().min(1)).min(1).default(['devices/+/telemetry']),
});

/** 2,000 ~200-byte records gzip to well under NATS's 1 MiB max_payload. */
export const DEFAULT_UPLINK_BATCH_MAX_RECORDS = 2_000;
export const DEFAULT_UPLINK_MAX_IN_FLIGHT_BATCHES = 32;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;

/** TLS of the NATS connection: the CA that signed the server's certificate, and a client certificate when the server asks for one. */
export const NatsClientTlsSchema = z
  .strictObject({
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
  })
  .refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), { message: 'certFile and keyFile go together', path: ['keyFile'] });

const UplinkSchema = z.strictObject({
  /** NATS server URLs, e.g. tls://cloud.example:4222; default the enrolment bundle's. */
  servers: z.array(z.string().regex(/^(nats|tls):\/\/.+/, 'must be a nats:// or tls:// URL')).min(1).optional(),
  /**
   * The enrolment bundle `outpostctl agents enroll` wrote for this agent (a secret, mode 0600):
   * its NATS credentials, servers, CA, inbox prefix, labels and trusted model keys.
   */
  enrollmentFile: z.string().min(1).optional(),
  /** A NATS creds file (user JWT and seed; mode 0600), when not from an enrolment bundle. */
  credsFile: z.string().min(1).optional(),
  tls: NatsClientTlsSchema.optional(),
  user: z.string().optional(),
  pass: z.string().optional(),
  token: z.string().optional(),
  /**
   * JetStream API prefix. An agent in its own account reaches the control plane's JetStream
   * through an import under another prefix (DESIGN section 4); default `$JS.API`.
   */
  apiPrefix: z.string().min(1).default('$JS.API'),
  /** Inbox prefix, so replies can be routed to this agent only; default `_INBOX`. */
  inboxPrefix: z.string().min(1).default('_INBOX'),
  batchMaxRecords: z.number().int().min(1).max(5_000).default(DEFAULT_UPLINK_BATCH_MAX_RECORDS),
  maxInFlightBatches: z.number().int().min(1).max(256).default(DEFAULT_UPLINK_MAX_IN_FLIGHT_BATCHES),
  heartbeatIntervalMs: z.number().int().min(100).default(DEFAULT_HEARTBEAT_INTERVAL_MS),
  /**
   * nats.js sends a ping every pingIntervalMs and declares the link stale at the first tick
   * that finds maxPingOut pings unanswered, so a hung server is found within
   * pingIntervalMs * (maxPingOut + 1): 6 s * 3 = 18 s by default, inside the 30 s an operator is promised.
   */
  pingIntervalMs: z.number().int().min(100).default(6_000),
  maxPingOut: z.number().int().min(1).default(2),
  connectTimeoutMs: z.number().int().min(100).default(5_000),
  publishTimeoutMs: z.number().int().min(100).default(10_000),
  /** The desired state is read again this often even without a notice (the safety net of rollouts). */
  desiredRecheckMs: z.number().int().min(100).default(30_000),
  reconnectBaseWaitMs: z.number().int().min(10).default(250),
  reconnectMaxWaitMs: z.number().int().min(10).default(10_000),
});

/**
 * Crash points for chaos tests: the agent SIGKILLs itself at the named uplink step, after
 * `afterBatches` batches. Never set in production configs.
 */
const FaultsSchema = z.strictObject({
  crashAt: z.enum(['after-commit-before-publish', 'after-publish-before-ack', 'after-ack-before-delete']),
  afterBatches: z.number().int().min(0).default(0),
});

/** Rows scored in one onnxruntime call at most. */
export const DEFAULT_INFERENCE_MAX_BATCH_SIZE = 256;
/** How long the first queued row waits for more rows before its batch is sent, ms. */
export const DEFAULT_INFERENCE_MAX_BATCH_WAIT_MS = 2;
/** Rows waiting for a batch at most; beyond, new rows are counted as unscored (ingest never waits). */
export const DEFAULT_INFERENCE_MAX_QUEUED_ROWS = 20_000;
/** First restart delay of a crashed inference process; doubles per consecutive crash, ms. */
export const DEFAULT_INFERENCE_RESTART_INITIAL_DELAY_MS = 100;
export const DEFAULT_INFERENCE_RESTART_MAX_DELAY_MS = 10_000;
/** Start of an inference process, model load and self-test together, ms. */
export const DEFAULT_INFERENCE_SELF_TEST_TIMEOUT_MS = 15_000;
/** One batch; a process that takes longer is killed and restarted, ms. */
export const DEFAULT_INFERENCE_BATCH_TIMEOUT_MS = 5_000;
/** V8 old-space limit of the inference process (its onnxruntime memory is native, outside it), MB. */
export const DEFAULT_INFERENCE_CHILD_MAX_OLD_SPACE_MB = 64;
/** Devices with a feature window at most; the least recently seen device's window goes first. */
export const DEFAULT_INFERENCE_MAX_DEVICE_WINDOWS = 10_000;
/** Largest .onnx file the agent reads, bytes. */
export const DEFAULT_INFERENCE_MAX_MODEL_BYTES = 64 * 1024 * 1024;
/**
 * What of the scores goes upstream (every score always goes to its device locally):
 * `summaries`, the anomalies and one summary per device and interval (count, mean, max, model);
 * `every-score`, every scored row as an `inference` record besides.
 */
export const InferenceUpstream = { summaries: 'summaries', everyScore: 'every-score' } as const;
export type InferenceUpstream = (typeof InferenceUpstream)[keyof typeof InferenceUpstream];
export const DEFAULT_INFERENCE_UPSTREAM: InferenceUpstream = InferenceUpstream.summaries;
/** Interval of the per-device score summaries sent upstream, ms. */
export const DEFAULT_INFERENCE_SUMMARY_INTERVAL_MS = 10_000;

/** A model's two files: the .onnx graph and its signed manifest (JSON), relative to the config file. */
const ModelFilesSchema = z.strictObject({ onnxPath: z.string().min(1), manifestPath: z.string().min(1) });

/**
 * A device's open anomaly episode closes (reason `silent`) when none of its windows was scored for
 * this long, ms: a device that stops sending in the middle of a fault still gets its closed record.
 */
export const DEFAULT_INFERENCE_EPISODE_SILENCE_MS = 60_000;

/**
 * Local ONNX inference (DESIGN section 2). Off by default, so configs written before it keep
 * working; without `model` an enabled agent waits for one (`swapModel`, SIGHUP after the files
 * appear).
 */
const InferenceSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** The model loaded at start: a .onnx file and its signed manifest (JSON), relative to the config file. */
    model: ModelFilesSchema.optional(),
    /**
     * More models loaded at start, side by side with `model`: one per device kind (the set of
     * metrics a model reads; a second model of the same kind replaces the first). Each device
     * goes to the model of its kind, chosen by the metrics of its first message (routeDevice).
     */
    models: z.array(ModelFilesSchema).max(16).default([]),
    /** Public keys whose manifest signatures the agent accepts. */
    trustedKeys: z.array(TrustedKeySchema).default([]),
    /** Overrides the model manifest's threshold: a score above it is an anomaly. */
    threshold: z.number().finite().optional(),
    maxBatchSize: z.number().int().min(1).max(4096).default(DEFAULT_INFERENCE_MAX_BATCH_SIZE),
    maxBatchWaitMs: z.number().min(0).max(1_000).default(DEFAULT_INFERENCE_MAX_BATCH_WAIT_MS),
    maxQueuedRows: z.number().int().min(1).max(1_000_000).default(DEFAULT_INFERENCE_MAX_QUEUED_ROWS),
    restartInitialDelayMs: z.number().int().min(1).default(DEFAULT_INFERENCE_RESTART_INITIAL_DELAY_MS),
    restartMaxDelayMs: z.number().int().min(1).default(DEFAULT_INFERENCE_RESTART_MAX_DELAY_MS),
    selfTestTimeoutMs: z.number().int().min(100).default(DEFAULT_INFERENCE_SELF_TEST_TIMEOUT_MS),
    batchTimeoutMs: z.number().int().min(10).default(DEFAULT_INFERENCE_BATCH_TIMEOUT_MS),
    childMaxOldSpaceMb: z.number().int().min(16).max(4096).default(DEFAULT_INFERENCE_CHILD_MAX_OLD_SPACE_MB),
    maxDeviceWindows: z.number().int().min(1).max(1_000_000).default(DEFAULT_INFERENCE_MAX_DEVICE_WINDOWS),
    maxModelBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(DEFAULT_INFERENCE_MAX_MODEL_BYTES),
    /** What goes upstream: anomalies and per-device score summaries (default), or every score besides. */
    upstream: z.enum([InferenceUpstream.summaries, InferenceUpstream.everyScore]).default(DEFAULT_INFERENCE_UPSTREAM),
    /** Interval of the per-device score summaries, ms. */
    summaryIntervalMs: z.number().int().min(100).max(3_600_000).default(DEFAULT_INFERENCE_SUMMARY_INTERVAL_MS),
    /** An open anomaly episode of a device with no scored window for this long closes (reason `silent`), ms. */
    episodeSilenceMs: z.number().int().min(1_000).max(86_400_000).default(DEFAULT_INFERENCE_EPISODE_SILENCE_MS),
  })
  .superRefine((inference, ctx) => {
    if (inference.restartMaxDelayMs < inference.restartInitialDelayMs) {
      ctx.addIssue({ code: 'custom', path: ['restartMaxDelayMs'], message: 'must be at least restartInitialDelayMs' });
    }
    const keyIds = inference.trustedKeys.map((k) => k.keyId);
    keyIds.forEach((keyId, i) => {
      if (keyIds.indexOf(keyId) !== i) ctx.addIssue({ code: 'custom', path: ['trustedKeys', i, 'keyId'], message: `duplicate keyId ${keyId}` });
    });
  });

export const AgentConfigSchema = z.strictObject({
  agentId: AgentIdSchema,
  /** Where the outbox database lives; created if missing. */
  dataDir: z.string().min(1),
  labels: z.record(z.string().regex(/^[a-z0-9_.-]{1,63}$/, 'label names are lowercase [a-z0-9_.-]'), z.string().max(256)).default({}),
  broker: z.discriminatedUnion('mode', [EmbeddedBrokerSchema, BridgeSchema]).default({
    mode: 'embedded',
    host: '127.0.0.1',
    port: DEFAULT_MQTT_PORT,
    maxPacketBytes: DEFAULT_MAX_PACKET_BYTES,
    allowAnonymous: false,
    devices: [],
  }),
  outbox: z
    .strictObject({
      /** `power` (synchronous=FULL) survives power loss; `process` (NORMAL) survives a process kill. */
      durability: z.enum(['power', 'process']).default('power'),
      maxBytes: z.number().int().min(64 * 1024).default(DEFAULT_MAX_BUFFER_BYTES),
      deadLetterMaxRows: z.number().int().min(1).default(DEFAULT_DEAD_LETTER_MAX_ROWS),
      maxRecordsPerCommit: z.number().int().min(1).max(5_000).default(DEFAULT_MAX_RECORDS_PER_COMMIT),
      /**
       * Hard cap on the database file, for a gateway whose disk is shared. Past it commits fail
       * like on a full disk: publishes stay unacknowledged (devices resend), nothing is lost.
       */
      maxFileBytes: z.number().int().min(64 * 1024).optional(),
    })
    .default({ durability: 'power', maxBytes: DEFAULT_MAX_BUFFER_BYTES, deadLetterMaxRows: DEFAULT_DEAD_LETTER_MAX_ROWS, maxRecordsPerCommit: DEFAULT_MAX_RECORDS_PER_COMMIT }),
  ingest: z
    .strictObject({
      /**
       * Per-device token bucket of the embedded broker; 0 turns it off. A device over it is read
       * more slowly (QoS 1/2) or has its QoS 0 publishes dropped and counted; never disconnected.
       * Bridge mode leaves limits to the site broker.
       */
      rateLimitMsgsPerS: z.number().min(0).default(DEFAULT_RATE_LIMIT_MSGS_PER_S),
      rateLimitBurst: z.number().int().min(1).optional(),
      /**
       * Devices whose recent messages are remembered to recognise resends (the last 256 seqs
       * each, about 4 KiB per device); beyond it the least recently heard from are forgotten.
       */
      resendWindowDevices: z.number().int().min(1).max(1_000_000).default(DEFAULT_RESEND_WINDOW_DEVICES),
    })
    .default({ rateLimitMsgsPerS: DEFAULT_RATE_LIMIT_MSGS_PER_S, resendWindowDevices: DEFAULT_RESEND_WINDOW_DEVICES }),
  /** Where the outbox drains to; without it the agent buffers only. */
  uplink: UplinkSchema.optional(),
  faults: FaultsSchema.optional(),
  inference: InferenceSchema.prefault({}),
  http: z
    .strictObject({ host: HostSchema.default('127.0.0.1'), port: PortSchema.default(DEFAULT_HTTP_PORT) })
    .default({ host: '127.0.0.1', port: DEFAULT_HTTP_PORT }),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
}).superRefine((config, ctx) => {
  // The enrolment bundle brings the trusted keys and the servers.
  const enrolled = config.uplink?.enrollmentFile !== undefined;
  if (config.inference.enabled && config.inference.trustedKeys.length === 0 && !enrolled) {
    ctx.addIssue({ code: 'custom', path: ['inference', 'trustedKeys'], message: 'needs at least one key when inference is enabled (no model could ever load), or an uplink.enrollmentFile that brings them' });
  }
  if (config.uplink !== undefined && config.uplink.servers === undefined && !enrolled) {
    ctx.addIssue({ code: 'custom', path: ['uplink', 'servers'], message: 'required unless uplink.enrollmentFile names an enrolment bundle' });
  }
  if (config.uplink?.credsFile !== undefined && enrolled) {
    ctx.addIssue({ code: 'custom', path: ['uplink', 'credsFile'], message: 'the enrolment bundle brings the credentials: give credsFile or enrollmentFile, not both' });
  }
  if (config.broker.mode === 'embedded' && config.broker.plaintext === false && config.broker.tls === undefined) {
    ctx.addIssue({ code: 'custom', path: ['broker', 'plaintext'], message: 'false needs broker.tls: the broker would not listen at all' });
  }
  // One packet must always fit with room to spare, or a device could resend it forever.
  if (config.broker.mode === 'embedded' && config.outbox.maxBytes < 4 * config.broker.maxPacketBytes) {
    ctx.addIssue({
      code: 'custom',
      path: ['outbox', 'maxBytes'],
      message: `must be at least 4 x broker.maxPacketBytes (${4 * config.broker.maxPacketBytes} bytes)`,
    });
  }
});

/** What a user writes in the agent's config file. */
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;
/** The validated config with every default filled in. */
export type AgentConfig = z.output<typeof AgentConfigSchema>;
export type EmbeddedBrokerConfig = z.output<typeof EmbeddedBrokerSchema>;
export type BridgeConfig = z.output<typeof BridgeSchema>;
export type TlsConfig = z.output<typeof TlsConfigSchema>;
export type UplinkConfig = z.output<typeof UplinkSchema>;
export type NatsClientTlsConfig = z.output<typeof NatsClientTlsSchema>;
export type FaultsConfig = z.output<typeof FaultsSchema>;
export type InferenceConfig = z.output<typeof InferenceSchema>;
