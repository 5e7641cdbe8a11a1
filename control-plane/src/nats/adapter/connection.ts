// The connection: connect, status and close, and the NatsClient the rest of the control plane
// holds. Each capability is a function of this folder that takes what it needs of the
// connection (declarations.ts, consumers.ts, kv-bucket.ts); Client only hands it over.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { readFile } from 'node:fs/promises';
import { connect, credsAuthenticator, errors as natsErrors, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { ErrorCode, OutpostError, readSecretFile, redactUrl, type ControlPlaneNatsConfig, type Logger } from '@outpost/shared';
import type {
  ConsumeOptions,
  ConsumerLag,
  ConsumerSpec,
  Consumption,
  KvBucket,
  KvSpec,
  MessageHandler,
  NatsClient,
  NatsStatus,
  ObjectStoreBucket,
  ObjectStoreSpec,
  RequestOutcome,
  ServiceRequest,
  StoredMessage,
  StreamAck,
  StreamPublishOptions,
  Subscription,
  StreamSpec,
  TailMessage,
  TailOptions,
} from '../types.js';
import { consume, readConsumerLag, tail, type ConsumerContext } from './consumers.js';
import { ensureConsumer, ensureStream } from './declarations.js';
import { openKvBucket } from './kv-bucket.js';
import { openObjectStore } from './object-store.js';
import { publishToStream, readLast } from './streams.js';

/** JetStream API requests (declarations, KV reads and writes) fail after this. */
const JS_API_TIMEOUT_MS = 5_000;

/**
 * Connects to NATS. Reconnects forever (nats.js gives up after 10 attempts by default) with
 * `reconnectWaitMs` plus up to `reconnectJitterMs` between attempts, and pings every
 * `pingIntervalMs`, so a dead link is found within pingIntervalMs * (maxPingOut + 1).
 *
 * @throws OutpostError NATS_UNAVAILABLE when the first connect fails within connectTimeoutMs.
 */
export async function connectNats(config: ControlPlaneNatsConfig, logger: Logger): Promise<NatsClient> {
  // Read before connecting: a creds or key file others may read stops start-up (SECRET_FILE_UNSAFE).
  const creds = config.credsFile === undefined ? undefined : await readSecretFile(config.credsFile, 'NATS creds file');
  const tls =
    config.tls === undefined
      ? undefined
      : {
          ca: await readFile(config.tls.caFile, 'utf8'),
          ...(config.tls.certFile === undefined ? {} : { cert: await readFile(config.tls.certFile, 'utf8') }),
          ...(config.tls.keyFile === undefined ? {} : { key: await readSecretFile(config.tls.keyFile, 'NATS client key') }),
        };
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: config.servers,
      name: config.name,
      user: config.user,
      pass: config.pass,
      token: config.token,
      ...(creds === undefined ? {} : { authenticator: credsAuthenticator(Buffer.from(creds)) }),
      ...(tls === undefined ? {} : { tls }),
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
  readonly #consumers: ConsumerContext;
  readonly #listeners: ((status: NatsStatus) => void)[] = [];
  #connected = true;
  #closing: Promise<void> | undefined;

  constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, logger: Logger) {
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
    this.#logger = logger;
    this.#consumers = { js, isClosed: () => nc.isClosed(), logger };
    // A throw inside the status iterator must not become an unhandled rejection.
    this.#watchStatus().catch((err: unknown) => logger.error({ err }, 'NATS status watch ended'));
    nc.closed()
      .then((err) => {
        this.#connected = false;
        if (err !== undefined && this.#closing === undefined) logger.error({ err }, 'NATS connection closed for good');
        this.#emit({ type: 'closed' });
      })
      .catch((err: unknown) => logger.error({ err }, 'NATS close handling failed'));
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

  ensureStream(spec: StreamSpec): Promise<void> {
    return ensureStream(this.#jsm, spec, this.#logger);
  }

  ensureConsumer(spec: ConsumerSpec): Promise<void> {
    return ensureConsumer(this.#jsm, spec, this.#logger);
  }

  openKv(spec: KvSpec): Promise<KvBucket> {
    return openKvBucket(this.#js, this.#jsm, spec, this.#logger);
  }

  openObjectStore(spec: ObjectStoreSpec): Promise<ObjectStoreBucket> {
    return openObjectStore(this.#js, spec, this.#logger);
  }

  publish(subject: string, data?: Uint8Array): void {
    this.#nc.publish(subject, data);
  }

  publishToStream(subject: string, data: Uint8Array, options?: StreamPublishOptions): Promise<StreamAck> {
    return publishToStream(this.#js, subject, data, options);
  }

  readLast(stream: string, count: number, options: { beforeSeq?: number } = {}): Promise<StoredMessage[]> {
    return readLast(this.#js, this.#jsm, stream, count, options.beforeSeq);
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<RequestOutcome> {
    try {
      const reply = await this.#nc.request(subject, data, { timeout: timeoutMs });
      return { type: 'reply', reply: { data: reply.data, header: (name) => (reply.headers?.has(name) ? reply.headers.get(name) : undefined) } };
    } catch (error) {
      if ((error instanceof natsErrors.RequestError && error.isNoResponders()) || error instanceof natsErrors.NoRespondersError) return { type: 'no-responders' };
      if (error instanceof natsErrors.TimeoutError || (error instanceof natsErrors.RequestError && error.cause instanceof natsErrors.TimeoutError)) return { type: 'timeout' };
      throw error;
    }
  }

  serve(subject: string, queue: string, handler: (request: ServiceRequest) => void): Subscription {
    const sub = this.#nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (err !== null) {
          this.#logger.warn({ err, subject }, 'service subscription error');
          return;
        }
        handler({
          subject: msg.subject,
          data: msg.data,
          respond: (data, headers) => {
            let h;
            if (headers !== undefined) {
              h = natsHeaders();
              for (const [k, v] of Object.entries(headers)) h.set(k, v);
            }
            msg.respond(data, h === undefined ? undefined : { headers: h });
          },
        });
      },
    });
    return { stop: () => sub.unsubscribe() };
  }

  consume(stream: string, durable: string, handler: MessageHandler, options: ConsumeOptions): Consumption {
    return consume(this.#consumers, stream, durable, handler, options);
  }

  tail(stream: string, options: TailOptions, handler: (message: TailMessage) => void): Consumption {
    return tail(this.#consumers, stream, options, handler);
  }

  consumerLag(stream: string, durable: string): Promise<ConsumerLag> {
    return readConsumerLag(this.#jsm, stream, durable);
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
