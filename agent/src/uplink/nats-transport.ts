// The agent's only import of the @nats-io modules: a small transport the uplink drives.
import { connect, credsAuthenticator, errors as natsErrors, headers as natsHeaders, type ConnectionOptions, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { createBackoff, redactUrl, sleep, type Logger, type UplinkConfig } from '@outpost/shared';
import type { UplinkCredentials } from './credentials.js';

/** A service's answer. */
export interface ServiceReply {
  data: Uint8Array;
  header(name: string): string | undefined;
}

/** What happened to the link, as the uplink sees it. */
export type TransportEvent =
  | { type: 'connected'; server: string }
  | { type: 'disconnected'; server: string }
  | { type: 'closed' };

export interface PublishAck {
  /** The stream's sequence of the stored message. */
  streamSeq: number;
  /** True when JetStream recognised the Nats-Msg-Id inside its duplicate window. */
  duplicate: boolean;
}

export interface UplinkTransport {
  /** True while a connection to a server is up. */
  connected(): boolean;
  /** Resolves when connected (at once if already). */
  whenConnected(): Promise<void>;
  /** Publishes to JetStream and resolves on the stream's ack. Pipelining is the caller's: call again before this resolves. */
  publish(subject: string, payload: Uint8Array, options: { msgId?: string; headers?: Record<string, string> }): Promise<PublishAck>;
  /** Resolves once the server has seen everything published so far (a PING/PONG round trip). */
  flush(): Promise<void>;
  onEvent(listener: (event: TransportEvent) => void): void;
  /** A request to a control-plane service (core NATS request/reply). @throws when not connected, on timeout or without a responder. */
  request(subject: string, payload: Uint8Array, timeoutMs: number): Promise<ServiceReply>;
  /** Calls `listener` for every core NATS message on `subject`, from the first connect on (nats.js subscribes again after reconnects). */
  subscribe(subject: string, listener: () => void): void;
  close(): Promise<void>;
}

/** A request the agent answers (its diagnostics), on core NATS. */
export interface IncomingRequest {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Answers once; `headers` travel as NATS headers. */
  respond(data: Uint8Array, headers?: Readonly<Record<string, string>>): void;
}

/** The uplink transport, and the requests the agent itself answers. */
export interface NatsTransport extends UplinkTransport {
  /** Calls `handler` for every request on `subject`, from the first connect on (subscribed again after reconnects). */
  serve(subject: string, handler: (request: IncomingRequest) => void): void;
  /**
   * The live connection as the doctor sees a link (its `close()` leaves the connection open),
   * or `unreachable` while disconnected.
   */
  link(): Promise<NatsProbeResult>;
}

/**
 * Connects in the background: the agent starts and buffers even when NATS is away at boot.
 * Reconnects forever with jittered exponential backoff (nats.js gives up after 10 attempts
 * by default) and finds a hung server within `pingIntervalMs * (maxPingOut + 1)` (18 s with
 * the defaults 6 s and 2): nats.js v3 (nats-core heartbeats.js) pings every pingIntervalMs,
 * any PONG clears the count of pings outstanding, and the first tick that finds maxPingOut
 * of them still unanswered disconnects (status `staleConnection`) instead of pinging again.
 * Worst case, the server hangs just after answering a ping: maxPingOut more ticks send pings,
 * the one after gives up.
 */
export function createNatsTransport(config: UplinkConfig, credentials: UplinkCredentials, logger: Logger): NatsTransport {
  const listeners: ((event: TransportEvent) => void)[] = [];
  const emit = (event: TransportEvent): void => {
    for (const l of listeners) l(event);
  };
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let isUp = false;
  let closed = false;
  let waiters: (() => void)[] = [];
  // Equal jitter: a fleet coming back after an outage does not reconnect in lockstep.
  const reconnectBackoff = createBackoff({ initialMs: config.reconnectBaseWaitMs, maxMs: config.reconnectMaxWaitMs, jitter: 'equal' });
  /** Aborted to end a wait for the next connect attempt at once (close()). */
  const closing = new AbortController();

  const setUp = (up: boolean): void => {
    isUp = up;
    if (up) {
      reconnectBackoff.reset();
      for (const w of waiters.splice(0)) w();
    }
  };

  const backoffMs = (): number => Math.round(reconnectBackoff.next());

  /** First connect: nats.js reconnects forever only once connected, so retry the first one here, abortably. */
  const connectFirst = async (): Promise<NatsConnection | undefined> => {
    for (;;) {
      if (closed) return undefined;
      try {
        return await connectOnce();
      } catch (error) {
        logger.warn({ err: error, servers: credentials.servers.map(redactUrl) }, 'uplink cannot connect yet; buffering');
        await sleep(backoffMs(), closing.signal);
      }
    }
  };

  const connectOnce = (): Promise<NatsConnection> =>
    connect({
      ...connectionOptions(config, credentials, 'outpost-agent'),
      maxReconnectAttempts: -1,
      reconnectDelayHandler: backoffMs,
      pingInterval: config.pingIntervalMs,
      maxPingOut: config.maxPingOut,
      timeout: config.connectTimeoutMs,
    });

  const subscriptions: { subject: string; listener: (msg: Msg) => void }[] = [];
  const listen = (conn: NatsConnection, subject: string, listener: (msg: Msg) => void): void => {
    conn.subscribe(subject, {
      callback: (err, msg) => {
        if (err === null) listener(msg);
        else logger.warn({ err, subject }, 'subscription error');
      },
    });
  };
  const addSubscription = (subject: string, listener: (msg: Msg) => void): void => {
    subscriptions.push({ subject, listener });
    if (nc !== undefined && !nc.isClosed()) listen(nc, subject, listener);
  };

  const ready = (async () => {
    nc = await connectFirst();
    if (nc === undefined) return;
    if (closed) {
      await nc.close();
      return;
    }
    js = jetstream(nc, { apiPrefix: config.apiPrefix, timeout: config.publishTimeoutMs });
    for (const { subject, listener } of subscriptions) listen(nc, subject, listener);
    const server = nc.getServer();
    setUp(true);
    logger.info({ server }, 'uplink connected');
    emit({ type: 'connected', server });
    const conn = nc;
    (async () => {
      for await (const status of conn.status()) {
        if (status.type === 'disconnect') {
          setUp(false);
          logger.warn({ server: status.server }, 'uplink disconnected; buffering');
          emit({ type: 'disconnected', server: status.server });
        } else if (status.type === 'reconnect') {
          setUp(true);
          logger.info({ server: status.server }, 'uplink reconnected');
          emit({ type: 'connected', server: status.server });
        } else if (status.type === 'staleConnection') {
          logger.warn('uplink connection stale (no PONG); reconnecting');
        }
      }
    })().catch((err: unknown) => logger.error({ err }, 'uplink status watch ended'));
    void conn.closed().then(() => {
      setUp(false);
      emit({ type: 'closed' });
    });
  })().catch((error: unknown) => {
    if (!closed) logger.error({ err: error }, 'uplink connection failed for good');
  });

  return {
    connected: () => isUp,
    whenConnected() {
      if (isUp) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    async publish(subject, payload, options) {
      if (js === undefined || !isUp) throw new Error('uplink not connected');
      let h;
      if (options.headers !== undefined) {
        h = natsHeaders();
        for (const [k, v] of Object.entries(options.headers)) h.set(k, v);
      }
      const ack = await js.publish(subject, payload, { msgID: options.msgId, headers: h });
      return { streamSeq: ack.seq, duplicate: ack.duplicate };
    },
    async flush() {
      await nc?.flush();
    },
    onEvent(listener) {
      listeners.push(listener);
    },
    async request(subject, payload, timeoutMs) {
      if (nc === undefined || !isUp) throw new Error('uplink not connected');
      const reply = await nc.request(subject, payload, { timeout: timeoutMs });
      return { data: reply.data, header: (name) => (reply.headers?.has(name) ? reply.headers.get(name) : undefined) };
    },
    subscribe(subject, listener) {
      addSubscription(subject, () => listener());
    },
    serve(subject, handler) {
      addSubscription(subject, (msg) => handler(toIncomingRequest(msg)));
    },
    async link() {
      const conn = nc;
      if (conn === undefined || !isUp) return { type: 'unreachable', message: 'the agent is not connected to NATS now (it reconnects on its own)' };
      try {
        return { type: 'connected', probe: linkOf(conn, await conn.rtt(), async () => undefined) };
      } catch (error) {
        return { type: 'failed', message: (error as Error).message };
      }
    },
    async close() {
      closed = true;
      waiters = [];
      closing.abort();
      await ready;
      if (nc !== undefined && !nc.isClosed()) await nc.close();
    },
  };
}

/** The nats.js options of the agent's identity: servers, credentials, TLS, inbox prefix. */
function connectionOptions(config: UplinkConfig, credentials: UplinkCredentials, name: string): ConnectionOptions {
  return {
    servers: credentials.servers,
    name,
    user: config.user,
    pass: config.pass,
    token: config.token,
    ...(credentials.creds === undefined ? {} : { authenticator: credsAuthenticator(Buffer.from(credentials.creds)) }),
    ...(credentials.tls === undefined ? {} : { tls: credentials.tls }),
    inboxPrefix: credentials.inboxPrefix,
  };
}

function toIncomingRequest(msg: Msg): IncomingRequest {
  return {
    subject: msg.subject,
    data: msg.data,
    respond(data, headers) {
      let h;
      if (headers !== undefined) {
        h = natsHeaders();
        for (const [k, v] of Object.entries(headers)) h.set(k, v);
      }
      msg.respond(data, h === undefined ? undefined : { headers: h });
    },
  };
}

// ---------------------------------------------------------------------------------------
// One connection attempt with the agent's own credentials, for `outpost-agent doctor`.
// ---------------------------------------------------------------------------------------

/** How a request ended: a reply, nobody subscribed (NATS 503), or no reply in time. */
export type RequestOutcome = { type: 'reply'; reply: ServiceReply } | { type: 'no-responders' } | { type: 'timeout' };

/** A connection the doctor opened; close it when done. */
export interface NatsProbe {
  /** The server it is connected to (host:port). */
  readonly server: string;
  /** One PING/PONG round trip, ms. */
  readonly rttMs: number;
  request(subject: string, payload: Uint8Array, timeoutMs: number): Promise<RequestOutcome>;
  close(): Promise<void>;
}

/** What one connection attempt gave: a connection, or why there is none. */
export type NatsProbeResult =
  | { type: 'connected'; probe: NatsProbe }
  /** Nothing answered: refused, no route, timeout. */
  | { type: 'unreachable'; message: string }
  /** The server refused the credentials (unknown, revoked or expired user). */
  | { type: 'auth-refused'; message: string }
  /** The TLS handshake failed (unknown CA, wrong host name, expired certificate, plaintext server). */
  | { type: 'tls-failed'; message: string }
  | { type: 'failed'; message: string };

/** Node's TLS verification error codes (tls.TLSSocket#authorizationError and the handshake's). */
const TLS_ERROR = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|CERT_|HOSTNAME_)/;

/**
 * Connects once, without reconnecting, with the credentials the agent itself uses, measures a
 * round trip, and hands the connection back for requests. Never throws for a connection that
 * cannot be made: the result says why, for the doctor to explain.
 */
export async function probeNats(config: UplinkConfig, credentials: UplinkCredentials, timeoutMs: number): Promise<NatsProbeResult> {
  let nc: NatsConnection;
  try {
    nc = await connect({ ...connectionOptions(config, credentials, 'outpost-agent-doctor'), reconnect: false, timeout: timeoutMs });
  } catch (error) {
    return classifyConnectError(error);
  }
  try {
    return { type: 'connected', probe: linkOf(nc, await nc.rtt(), () => nc.close()) };
  } catch (error) {
    await nc.close().catch(() => undefined);
    return { type: 'failed', message: (error as Error).message };
  }
}

function linkOf(nc: NatsConnection, rttMs: number, close: () => Promise<void>): NatsProbe {
  return {
    server: nc.getServer(),
    rttMs,
    async request(subject, payload, timeoutMs) {
      try {
        const reply = await nc.request(subject, payload, { timeout: timeoutMs });
        return { type: 'reply', reply: { data: reply.data, header: (name) => (reply.headers?.has(name) ? reply.headers.get(name) : undefined) } };
      } catch (error) {
        if ((error instanceof natsErrors.RequestError && error.isNoResponders()) || error instanceof natsErrors.NoRespondersError) return { type: 'no-responders' };
        if (error instanceof natsErrors.TimeoutError || (error instanceof natsErrors.RequestError && error.cause instanceof natsErrors.TimeoutError)) return { type: 'timeout' };
        throw error;
      }
    },
    close,
  };
}

function classifyConnectError(error: unknown): NatsProbeResult {
  const message = (error as Error).message;
  if (error instanceof natsErrors.AuthorizationError || error instanceof natsErrors.UserAuthenticationExpiredError) return { type: 'auth-refused', message };
  const codes = [error, (error as { cause?: unknown }).cause].map((e) => (e as { code?: unknown } | undefined)?.code).filter((c): c is string => typeof c === 'string');
  if (codes.some((c) => TLS_ERROR.test(c))) return { type: 'tls-failed', message: `${message} (${codes.join(', ')})` };
  if (error instanceof natsErrors.TimeoutError || error instanceof natsErrors.ConnectionError) return { type: 'unreachable', message: codes.length === 0 ? message : `${message} (${codes.join(', ')})` };
  return { type: 'failed', message };
}
