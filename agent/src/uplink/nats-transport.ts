// The agent's only import of the @nats-io modules: a small transport the uplink drives.
import { connect, credsAuthenticator, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
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
export function createNatsTransport(config: UplinkConfig, credentials: UplinkCredentials, logger: Logger): UplinkTransport {
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
      servers: credentials.servers,
      name: `outpost-agent`,
      user: config.user,
      pass: config.pass,
      token: config.token,
      ...(credentials.creds === undefined ? {} : { authenticator: credsAuthenticator(Buffer.from(credentials.creds)) }),
      ...(credentials.tls === undefined ? {} : { tls: credentials.tls }),
      inboxPrefix: credentials.inboxPrefix,
      maxReconnectAttempts: -1,
      reconnectDelayHandler: backoffMs,
      pingInterval: config.pingIntervalMs,
      maxPingOut: config.maxPingOut,
      timeout: config.connectTimeoutMs,
    });

  const subscriptions: { subject: string; listener: () => void }[] = [];
  const listen = (conn: NatsConnection, subject: string, listener: () => void): void => {
    conn.subscribe(subject, {
      callback: (err) => {
        if (err === null) listener();
        else logger.warn({ err, subject }, 'subscription error');
      },
    });
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
      subscriptions.push({ subject, listener });
      if (nc !== undefined && !nc.isClosed()) listen(nc, subject, listener);
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
