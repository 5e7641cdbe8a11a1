// The control plane's only import of the @nats-io modules: connection, stream and consumer
// declarations, pull consumption and KV, behind the interfaces of ./types.ts.
import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { ConsumerConfig, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg, StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { setTimeout as delay } from 'node:timers/promises';
import { ErrorCode, OutpostError, redactUrl, type ControlPlaneNatsConfig, type Logger } from '@outpost/shared';
import type {
  ConsumeOptions,
  ConsumerLag,
  ConsumerSpec,
  Consumption,
  KvBucket,
  KvChange,
  KvSpec,
  MessageHandler,
  NatsClient,
  NatsStatus,
  StreamMessage,
  StreamSpec,
  TailMessage,
  TailOptions,
} from './types.js';

const NS_PER_MS = 1_000_000;
const nanos = (ms: number): number => ms * NS_PER_MS;
/** JetStream API requests (declarations, KV reads and writes) fail after this. */
const JS_API_TIMEOUT_MS = 5_000;
/** consume() reports the consumer missing this many times in a row: re-declare it. */
const CONSUMER_MISSING_REDECLARE_AFTER = 3;
const CONSUME_RESTART_WAIT_MS = 1_000;

function isApiError(err: unknown, ...codes: number[]): err is JetStreamApiError {
  return err instanceof JetStreamApiError && codes.includes(err.code);
}

/**
 * Connects to NATS. Reconnects forever (nats.js gives up after 10 attempts by default) with
 * `reconnectWaitMs` plus up to `reconnectJitterMs` between attempts, and pings every
 * `pingIntervalMs`, so a dead link is found within pingIntervalMs * (maxPingOut + 1).
 *
 * @throws OutpostError NATS_UNAVAILABLE when the first connect fails within connectTimeoutMs.
 */
export async function connectNats(config: ControlPlaneNatsConfig, logger: Logger): Promise<NatsClient> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: config.servers,
      name: config.name,
      user: config.user,
      pass: config.pass,
      token: config.token,
      maxReconnectAttempts: -1,
      reconnectTimeWait: config.reconnectWaitMs,
      reconnectJitter: config.reconnectJitterMs,
      pingInterval: config.pingIntervalMs,
      maxPingOut: config.maxPingOut,
      timeout: config.connectTimeoutMs,
    });
  } catch (cause) {
    const servers = config.servers.map(redactUrl);
    throw new OutpostError(ErrorCode.NATS_UNAVAILABLE, `cannot connect to NATS at ${servers.join(', ')}: ${(cause as Error).message}`, {
      cause,
      details: { servers },
    });
  }
  const js = jetstream(nc, { timeout: JS_API_TIMEOUT_MS });
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, { timeout: JS_API_TIMEOUT_MS });
  } catch (cause) {
    await nc.close();
    throw new OutpostError(ErrorCode.NATS_UNAVAILABLE, `NATS at ${nc.getServer()} has no JetStream: ${(cause as Error).message}`, { cause });
  }
  logger.info({ server: nc.getServer() }, 'connected to NATS');
  return new Client(nc, js, jsm, logger);
}

class Client implements NatsClient {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #logger: Logger;
  readonly #listeners: ((status: NatsStatus) => void)[] = [];
  #connected = true;
  #closing: Promise<void> | undefined;

  constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, logger: Logger) {
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
    this.#logger = logger;
    // A throw inside the status iterator must not become an unhandled rejection.
    this.#watchStatus().catch((err: unknown) => logger.error({ err }, 'NATS status watch ended'));
    void nc.closed().then((err) => {
      this.#connected = false;
      if (err !== undefined && this.#closing === undefined) logger.error({ err }, 'NATS connection closed for good');
      this.#emit({ type: 'closed' });
    });
  }

  async #watchStatus(): Promise<void> {
    for await (const status of this.#nc.status()) {
      switch (status.type) {
        case 'disconnect':
          this.#connected = false;
          this.#logger.warn({ server: status.server }, 'NATS disconnected');
          this.#emit({ type: 'disconnected', server: status.server });
          break;
        case 'reconnecting':
          this.#logger.debug('NATS reconnecting');
          this.#emit({ type: 'reconnecting' });
          break;
        case 'reconnect':
          this.#connected = true;
          this.#logger.info({ server: status.server }, 'NATS reconnected');
          this.#emit({ type: 'reconnected', server: status.server });
          break;
        case 'staleConnection':
          this.#logger.warn('NATS connection stale (no PONG); reconnecting');
          this.#emit({ type: 'stale-connection' });
          break;
        case 'error':
          this.#logger.warn({ err: status.error }, 'NATS server error');
          this.#emit({ type: 'server-error', message: status.error.message });
          break;
        case 'ldm':
          this.#logger.warn({ server: status.server }, 'NATS server entering lame duck mode');
          break;
        case 'slowConsumer':
          this.#logger.warn({ subject: status.sub.getSubject(), pending: status.pending }, 'NATS slow consumer');
          break;
        default:
          break;
      }
    }
  }

  #emit(status: NatsStatus): void {
    for (const listener of this.#listeners) listener(status);
  }

  isConnected(): boolean {
    return this.#connected && !this.#nc.isClosed();
  }

  onStatus(listener: (status: NatsStatus) => void): void {
    this.#listeners.push(listener);
  }

  async ensureStream(spec: StreamSpec): Promise<void> {
    const wanted = {
      subjects: spec.subjects,
      max_age: nanos(spec.maxAgeMs),
      max_bytes: spec.maxBytes ?? -1,
      duplicate_window: nanos(spec.duplicateWindowMs),
      num_replicas: spec.replicas,
    } satisfies Partial<StreamConfig>;
    let existing = await this.#streamInfo(spec.name);
    if (existing === undefined) {
      try {
        await this.#jsm.streams.add({
          name: spec.name,
          ...wanted,
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          discard: DiscardPolicy.Old,
        });
        this.#logger.info({ stream: spec.name }, 'stream created');
        return;
      } catch (err) {
        // Another replica created it in between: 2.9 answers "name already in use" or "subjects
        // overlap with an existing stream", depending on timing. Verify what it created below.
        existing = await this.#streamInfo(spec.name);
        if (existing === undefined) throw err;
      }
    }
    const c = existing.config;
    const differs =
      c.max_age !== wanted.max_age ||
      c.max_bytes !== wanted.max_bytes ||
      c.duplicate_window !== wanted.duplicate_window ||
      c.num_replicas !== wanted.num_replicas ||
      [...c.subjects].sort().join(' ') !== [...wanted.subjects].sort().join(' ');
    if (differs) {
      await this.#jsm.streams.update(spec.name, { ...c, ...wanted });
      this.#logger.warn({ stream: spec.name, was: { max_age: c.max_age, max_bytes: c.max_bytes, subjects: c.subjects }, now: wanted }, 'stream config updated');
    }
  }

  async #streamInfo(name: string) {
    try {
      return await this.#jsm.streams.info(name);
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.StreamNotFound)) return undefined;
      throw err;
    }
  }

  async #consumerInfo(stream: string, durable: string) {
    try {
      return await this.#jsm.consumers.info(stream, durable);
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.ConsumerNotFound)) return undefined;
      throw err;
    }
  }

  async ensureConsumer(spec: ConsumerSpec): Promise<void> {
    const wanted = { ack_wait: nanos(spec.ackWaitMs), max_ack_pending: spec.maxAckPending, description: spec.description };
    let info = await this.#consumerInfo(spec.stream, spec.durable);
    if (info === undefined) {
      const config: Partial<ConsumerConfig> = {
        durable_name: spec.durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        // Never give a batch up: an unaccounted batch would be silent loss.
        max_deliver: -1,
        ...wanted,
      };
      try {
        await this.#jsm.consumers.add(spec.stream, config);
        this.#logger.info({ stream: spec.stream, consumer: spec.durable }, 'consumer created');
        return;
      } catch (err) {
        info = await this.#consumerInfo(spec.stream, spec.durable);
        if (info === undefined) throw err;
      }
    }
    const c = info.config;
    if (c.ack_wait !== wanted.ack_wait || c.max_ack_pending !== wanted.max_ack_pending) {
      await this.#jsm.consumers.update(spec.stream, spec.durable, wanted);
      this.#logger.warn({ stream: spec.stream, consumer: spec.durable, ...wanted }, 'consumer config updated');
    }
  }

  async openKv(spec: KvSpec): Promise<KvBucket> {
    const open = (): Promise<KV> => new Kvm(this.#js).create(spec.bucket, { history: 1, replicas: spec.replicas, storage: StorageType.File, description: spec.description });
    let kv: KV;
    try {
      kv = await open();
    } catch (err) {
      // Two replicas racing: both saw no bucket, the other's create won. Opening again finds it.
      this.#logger.debug({ err, bucket: spec.bucket }, 'KV create raced; opening again');
      kv = await open();
    }
    return new Bucket(spec.bucket, kv, this.#jsm, this.#logger);
  }

  consume(stream: string, durable: string, handler: MessageHandler, options: ConsumeOptions): Consumption {
    let stopped = false;
    let messages: ConsumerMessages | undefined;
    const stopSignal = new AbortController();
    const log = this.#logger.child({ stream, consumer: durable });

    const runOnce = async (): Promise<void> => {
      const consumer = await this.#js.consumers.get(stream, durable);
      const iter = await consumer.consume({ max_messages: options.maxMessages });
      messages = iter;
      if (stopped) {
        // Not close(): its promise settles only once the iterator is iterated to its end.
        iter.stop();
        return;
      }
      (async () => {
        for await (const note of iter.status()) {
          if (note.type !== 'next' && note.type !== 'heartbeat') log.debug({ note }, 'consumer notification');
          if (note.type === 'consumer_not_found' || note.type === 'stream_not_found') {
            log.warn({ note: note.type }, 'consumer missing on the server');
            if (note.type === 'stream_not_found' || note.count >= CONSUMER_MISSING_REDECLARE_AFTER) iter.stop();
          } else if (note.type === 'heartbeats_missed') {
            log.debug({ count: note.count }, 'pull heartbeats missed; re-pulling');
          } else if (note.type === 'consumer_deleted') {
            log.warn('consumer deleted on the server');
            iter.stop();
          }
        }
      })().catch((err: unknown) => log.warn({ err }, 'consumer status watch ended'));
      for await (const msg of iter) {
        const wrapped = wrapMessage(msg);
        try {
          const held = handler(wrapped);
          if (held !== undefined) await held;
        } catch (err) {
          // A bug in a handler must not stop consumption; the message comes back later.
          log.error({ err, subject: msg.subject, streamSeq: msg.seq }, 'message handler failed');
          msg.nak(CONSUME_RESTART_WAIT_MS);
        }
      }
    };

    const loop = (async () => {
      while (!stopped) {
        try {
          await runOnce();
        } catch (err) {
          if (!stopped) log.warn({ err }, 'consumer stopped; starting again');
        }
        if (stopped || this.#nc.isClosed()) break;
        await delay(CONSUME_RESTART_WAIT_MS, undefined, { signal: stopSignal.signal }).catch(() => undefined);
        if (stopped) break;
        await options.redeclare().catch((err: unknown) => log.warn({ err }, 're-declaring the consumer failed'));
      }
    })();

    return {
      async stop() {
        stopped = true;
        // Ends the restart pause at once, and the for-await in runOnce (or runOnce sees `stopped` once its iterator exists).
        stopSignal.abort();
        messages?.stop();
        await loop;
      },
    };
  }

  tail(stream: string, options: TailOptions, handler: (message: TailMessage) => void): Consumption {
    let stopped = false;
    let messages: ConsumerMessages | undefined;
    let lastSeq = 0;
    const stopSignal = new AbortController();
    const log = this.#logger.child({ stream, tail: options.filterSubject });

    const runOnce = async (): Promise<void> => {
      // nats.js resets an ordered consumer by itself after a missed heartbeat, but a consumer
      // created with a start time fails every reset (it keeps the start time next to the start
      // sequence) and its iterator ends; it also ends when the consumer is deleted. Each new
      // consumer therefore starts after the last message read, by sequence.
      const start = lastSeq > 0 ? { opt_start_seq: lastSeq + 1 } : { opt_start_time: new Date(options.startTimeMs()).toISOString() };
      const consumer = await this.#js.consumers.get(stream, { filter_subjects: options.filterSubject, ...start });
      const iter = await consumer.consume();
      messages = iter;
      if (stopped) {
        iter.stop();
        return;
      }
      for await (const msg of iter) {
        lastSeq = msg.seq;
        try {
          handler({
            subject: msg.subject,
            data: msg.data,
            header: (name) => (msg.headers?.has(name) ? msg.headers.get(name) : undefined),
            streamSeq: msg.seq,
            storedAtMs: Number(msg.timestampNanos / 1_000_000n),
            pending: msg.info.pending,
          });
        } catch (err) {
          log.error({ err, subject: msg.subject, streamSeq: msg.seq }, 'tail handler failed');
        }
      }
    };

    const loop = (async () => {
      while (!stopped) {
        try {
          await runOnce();
        } catch (err) {
          if (!stopped) log.warn({ err }, 'tail stopped; starting again');
        }
        if (stopped || this.#nc.isClosed()) break;
        log.debug({ lastSeq }, 'tail ended; starting again after the last message read');
        await delay(CONSUME_RESTART_WAIT_MS, undefined, { signal: stopSignal.signal }).catch(() => undefined);
      }
    })();

    return {
      async stop() {
        stopped = true;
        stopSignal.abort();
        messages?.stop();
        await loop;
      },
    };
  }

  async consumerLag(stream: string, durable: string): Promise<ConsumerLag> {
    const info = await this.#jsm.consumers.info(stream, durable);
    return { pending: info.num_pending, ackPending: info.num_ack_pending, redelivered: info.num_redelivered };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#nc.drain();
      } catch {
        await this.#nc.close();
      }
    })();
    return this.#closing;
  }
}

function wrapMessage(msg: JsMsg): StreamMessage {
  const info = msg.info;
  return {
    subject: msg.subject,
    data: msg.data,
    header: (name) => (msg.headers?.has(name) ? msg.headers.get(name) : undefined),
    streamSeq: info.streamSequence,
    deliveryCount: info.deliveryCount,
    storedAtMs: Number(msg.timestampNanos / 1_000_000n),
    ack: () => msg.ack(),
    nak: (delayMs) => msg.nak(delayMs),
    working: () => msg.working(),
    term: (reason) => msg.term(reason),
  };
}

/** nats.js names a bucket's stream `KV_<bucket>`. */
const KV_STREAM_PREFIX = 'KV_';

class Bucket implements KvBucket {
  readonly name: string;
  readonly #kv: KV;
  readonly #jsm: JetStreamManager;
  readonly #logger: Logger;

  constructor(name: string, kv: KV, jsm: JetStreamManager, logger: Logger) {
    this.name = name;
    this.#kv = kv;
    this.#jsm = jsm;
    this.#logger = logger;
  }

  async get(key: string) {
    const entry = await this.#kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return undefined;
    return { value: entry.value, revision: entry.revision };
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    try {
      return await this.#kv.create(key, value);
    } catch (err) {
      throw this.#mapConflict(err, key);
    }
  }

  put(key: string, value: Uint8Array): Promise<number> {
    return this.#kv.put(key, value);
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number> {
    try {
      return await this.#kv.update(key, value, revision);
    } catch (err) {
      throw this.#mapConflict(err, key, revision);
    }
  }

  #mapConflict(err: unknown, key: string, revision?: number): unknown {
    if (isApiError(err, JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown)) {
      return new OutpostError(ErrorCode.KV_CONFLICT, `${this.name}/${key} was written by someone else (expected revision ${revision ?? 'none'})`, {
        cause: err,
        details: { bucket: this.name, key, revision },
      });
    }
    return err;
  }

  /**
   * Lists keys with one stream-info request filtered by subject (paged by nats.js), not with
   * `kv.keys()`: that push consumer ends on `pending === 0` or an idle heartbeat, and while
   * keys are being overwritten (history 1) it can miss the former and wait for the latter,
   * about 30 s. Deleted keys are listed too; `get` returns undefined for them.
   */
  async keys(filter = '>'): Promise<string[]> {
    const prefix = `$KV.${this.name}.`;
    const info = await this.#jsm.streams.info(`${KV_STREAM_PREFIX}${this.name}`, { subjects_filter: `${prefix}${filter}` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  }

  async watch(onChange: (change: KvChange) => void) {
    const iter = await this.#kv.watch();
    void (async () => {
      try {
        for await (const e of iter) {
          onChange(
            e.operation === 'PUT'
              ? { type: 'put', key: e.key, entry: { value: e.value, revision: e.revision } }
              : { type: 'delete', key: e.key, revision: e.revision },
          );
        }
      } catch (err) {
        this.#logger.warn({ err, bucket: this.name }, 'KV watch ended');
      }
    })();
    return { stop: () => iter.stop() };
  }
}
