// The only file that imports aedes. Its callback hooks become async/await here.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { parseDeviceTopic, type EmbeddedBrokerConfig, type Logger } from '@outpost/shared';
import type { Ingest } from '../ingest/ingest.js';
import type { RateLimiter } from '../ingest/rate-limiter.js';
import type { AgentMetrics } from '../metrics.js';
import { canPublish, canSubscribe, canUseWill, type AuthenticatedVia, type DeviceAuthenticator } from './device-auth.js';
import { guardPackets, type GuardedDuplex } from './packet-guard.js';

/**
 * Where a dead-lettered or refused QoS 0 publish is routed instead of its own topic, so local
 * subscribers never see a payload the agent rejected. Devices cannot subscribe here (ACL).
 */
const DISCARD_TOPIC = '$outpost/discard';

export interface EmbeddedBroker {
  /** Plain TCP port; undefined when it does not listen in plaintext (TLS only). */
  readonly mqttPort: number | undefined;
  readonly tlsPort: number | undefined;
  /** Publishes from the agent itself (inference results, error answers); not subject to ACL. */
  publish(topic: string, payload: Buffer | string, qos?: 0 | 1): Promise<void>;
  connectedClients(): number;
  /**
   * Takes a changed config without a restart: device credentials and anonymous access apply
   * to the next CONNECT, and a live session the new settings would refuse is closed; a new
   * `maxPacketBytes` applies to new connections, and with `closeAll` every device connection
   * is closed so that it reconnects under it. Returns how many connections were closed.
   */
  reconfigure(next: { devices: EmbeddedBrokerConfig['devices']; allowAnonymous: boolean; maxPacketBytes: number; closeAll: boolean }): number;
  /** Stops listening, closes every client, closes aedes. Idempotent. */
  close(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  config: EmbeddedBrokerConfig;
  /** Folder that relative TLS file paths are resolved against. */
  authenticator: DeviceAuthenticator;
  ingest: Ingest;
  /** Paces each device's QoS 1/2 publishes (backpressure); the same limiter drops QoS 0 over the rate in ingest. */
  rateLimiter: RateLimiter;
  metrics: AgentMetrics;
  logger: Logger;
}

interface Session {
  deviceId: string;
  via: AuthenticatedVia;
}

/** One publish waiting for its turn to be answered (see `answers` below). */
interface Answer {
  /** aedes' authorizePublish callback: writes the PUBACK (QoS 1), or closes the connection on an error. */
  readonly callback: (error: Error | null) => void;
  /** Undefined until decided. */
  error: Error | null | undefined;
  /** Work that may start only once every earlier publish of the client is answered (QoS 2). */
  start: (() => void) | undefined;
  readonly qos2: boolean;
}

/** The answers of one client, oldest first; `head` is the first not yet given. */
interface AnswerQueue {
  items: Answer[];
  head: number;
  /** Set while the queue waits for aedes to store a QoS 2 packet it was just answered for. */
  paused: boolean;
  flushing: boolean;
  again: boolean;
}

/** Starts aedes behind a packet guard on TCP (and TLS when configured). */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { config, authenticator, ingest, rateLimiter, metrics, logger } = options;
  /** Read per new connection: a reconfigure changes it for connections made afterwards. */
  let maxPacketBytes = config.maxPacketBytes;
  const sessions = new WeakMap<Client, Session>();
  /**
   * The answers of each client, in publish order. aedes handles the publishes of one socket
   * read concurrently and writes each PUBACK as soon as its authorizePublish calls back, so a
   * publish answered at once (another topic, a dead letter) would overtake one waiting for its
   * commit. Answers are given in publish order instead (MQTT-4.6.0-2), while the commits
   * themselves still start at once and share transactions. A queue of plain objects rather than
   * a promise chain: at tens of thousands of publishes a second the chain's promises and
   * microtasks cost more than the publish's share of the commit.
   */
  const answers = new WeakMap<Client, AnswerQueue>();
  /** Facts from the CONNECT packet that aedes does not keep for the authenticate hook. */
  const connectFacts = new WeakMap<Client, { emptyClientId: boolean; willTopic: string | undefined }>();
  /** Peer certificate CN per guarded connection (mTLS). */
  const certificateNames = new WeakMap<Duplex, string>();

  const aedes = await Aedes.createBroker({
    // MQTT 3.1.3-8 and DESIGN 4: the ClientId is the device identity, so it can never be empty.
    preConnect(client, packet, callback) {
      connectFacts.set(client, { emptyClientId: packet.clientId === '', willTopic: packet.will?.topic });
      callback(null, true);
    },
    authenticate(client, username, password, callback) {
      const facts = connectFacts.get(client);
      authenticator
        .authenticate({
          clientId: facts?.emptyClientId === true ? '' : client.id,
          username,
          password,
          certificateCommonName: certificateNames.get(client.conn as Duplex),
        })
        .then((result) => {
          if (result.ok && facts?.willTopic !== undefined && !canUseWill(result.deviceId, facts.willTopic)) {
            return { ok: false as const, returnCode: 5 as const, reason: `will topic ${facts.willTopic} is outside devices/${result.deviceId}/` };
          }
          return result;
        })
        .then(
          (result) => {
            if (result.ok) {
              const { deviceId } = result;
              sessions.set(client, { deviceId, via: result.via });
              // From now on the device's QoS 1/2 publishes are read at its rate, never faster.
              (client.conn as GuardedDuplex).pacePublishes(() => rateLimiter.takeOrWait(deviceId));
              callback(null, true);
              return;
            }
            metrics.authRefused.inc({ code: String(result.returnCode) });
            logger.info({ clientId: client.id, returnCode: result.returnCode, reason: result.reason }, 'device connection refused');
            callback(Object.assign(new Error(result.reason), { returnCode: result.returnCode }), false);
          },
          (error: unknown) => {
            logger.error({ err: error, clientId: client.id }, 'authentication failed unexpectedly');
            callback(Object.assign(new Error('authentication failed'), { returnCode: 5 }), false);
          },
        );
    },
    authorizePublish(client, packet, callback) {
      // client is null only for wills aedes publishes on behalf of a client long gone.
      if (client === null) return callback(null);
      const session = sessions.get(client);
      if (session === undefined || !canPublish(session.deviceId, packet.topic)) {
        metrics.aclDenied.inc({ action: 'publish' });
        return callback(new Error(`not authorized to publish to ${packet.topic}`));
      }
      let queue = answers.get(client);
      if (queue === undefined) {
        queue = { items: [], head: 0, paused: false, flushing: false, again: false };
        answers.set(client, queue);
      }
      const q = queue;
      const answer: Answer = { callback, error: undefined, start: undefined, qos2: packet.qos === 2 };
      q.items.push(answer);
      const decide = (error: Error | null): void => {
        answer.error = error;
        flush(q);
      };
      const payload = packet.payload as Buffer;
      if (parseDeviceTopic(packet.topic)?.rest !== 'telemetry') {
        decide(null); // local traffic under its own prefix
      } else if (packet.retain && payload.length === 0) {
        // MQTT-3.3.1-10: an empty retained publish clears the retained message; it is no reading.
        decide(null);
      } else if (packet.qos === 2) {
        // MQTT-4.3.3-2: a QoS 2 PUBLISH sent again before PUBREL (same packet id) is one message.
        // aedes checks that only after this hook, so the check is made here too, once every
        // earlier publish of the client has been answered and stored by aedes.
        answer.start = () => {
          isAwaitingPubrel(client, packet).then(
            (awaiting) => (awaiting ? decide(null) : ingestTelemetry(session, packet, payload, decide)),
            () => ingestTelemetry(session, packet, payload, decide),
          );
        };
        flush(q);
      } else {
        // Started now, so publishes of one read share a commit; only the answer waits its turn.
        ingestTelemetry(session, packet, payload, decide);
      }
    },
    authorizeSubscribe(client, subscription, callback) {
      const session = sessions.get(client);
      if (session === undefined || !canSubscribe(session.deviceId, subscription.topic)) {
        metrics.aclDenied.inc({ action: 'subscribe' });
        return callback(null, null); // SUBACK 0x80 for this filter, connection stays
      }
      callback(null, subscription);
    },
  });

  /** True when a QoS 2 publish with this packet id is stored and still waits for its PUBREL. */
  async function isAwaitingPubrel(client: Client, packet: PublishPacket): Promise<boolean> {
    try {
      return (await (aedes as unknown as { persistence: IncomingPersistence }).persistence.incomingGetPacket(client, packet)) !== undefined;
    } catch {
      return false; // aedes-persistence rejects for an unknown packet id
    }
  }

  /** Gives the answers at the head of a client's queue that are decided, in order. */
  function flush(q: AnswerQueue): void {
    if (q.flushing) {
      q.again = true; // a callback led aedes to decide more: the running loop picks them up
      return;
    }
    q.flushing = true;
    try {
      do {
        q.again = false;
        while (!q.paused && q.head < q.items.length) {
          const answer = q.items[q.head]!;
          if (answer.start !== undefined) {
            const start = answer.start;
            answer.start = undefined;
            start();
          }
          if (answer.error === undefined) break;
          q.head++;
          answer.callback(answer.error);
          if (answer.qos2) {
            // aedes stores a QoS 2 packet (for the check above) a few promise steps after the callback.
            q.paused = true;
            setImmediate(() => {
              q.paused = false;
              flush(q);
            });
          }
        }
        if (q.head === q.items.length) {
          q.items.length = 0;
          q.head = 0;
        } else if (q.head > 1024 && q.head * 2 > q.items.length) {
          q.items = q.items.slice(q.head);
          q.head = 0;
        }
      } while (q.again);
    } finally {
      q.flushing = false;
    }
  }

  /**
   * Commits a telemetry publish through ingest and says how aedes goes on: null to acknowledge
   * (a dead letter, a resend or a dropped QoS 0 publish is routed to DISCARD_TOPIC instead of
   * its own, so local subscribers see only accepted readings, each once), or the error that
   * closes the connection unacknowledged. The PUBACK of a QoS 1 publish is written only after
   * authorizePublish calls back (aedes runs it before enqueuePublish), so the record is
   * committed before the ack.
   */
  function ingestTelemetry(session: Session, packet: PublishPacket, payload: Buffer, decide: (error: Error | null) => void): void {
    ingest.submitTelemetry(session.deviceId, packet.topic, payload, { qos: packet.qos }, (outcome) => {
      switch (outcome.type) {
        case 'accepted':
          return decide(null);
        case 'dead-lettered':
        case 'resend':
          packet.topic = DISCARD_TOPIC;
          return decide(null);
        case 'refused':
          if (packet.qos === 0) {
            packet.topic = DISCARD_TOPIC;
            return decide(null);
          }
          // MQTT 3.1.1 has no negative PUBACK: closing the connection without one makes the
          // device resend, where acknowledging would lose the message.
          return decide(new Error(`publish refused: ${outcome.reason}`));
      }
    });
  }

  // Counted from our own set, not aedes' events or counter: with concurrent takeovers of one
  // ClientId aedes 1.2.0 can leave both off by one (aedes issue 1023).
  const live = new Set<Client>();
  aedes.on('client', (client) => {
    live.add(client);
    metrics.clientsConnected.set(live.size);
    client.conn.once('close', () => {
      live.delete(client);
      metrics.clientsConnected.set(live.size);
    });
  });
  aedes.on('clientError', (client, error) => logger.debug({ clientId: client.id, err: error }, 'mqtt client error'));
  aedes.on('connectionError', (client, error) => logger.debug({ clientId: client.id, err: error }, 'mqtt connection error'));

  function handleSocket(socket: Duplex, certificateCommonName?: string): void {
    const limit = maxPacketBytes;
    const guarded = guardPackets(socket, {
      maxPacketBytes: limit,
      onViolation(violation) {
        metrics.guardClosed.inc({ reason: violation.reason });
        logger.warn({ ...violation, maxPacketBytes: limit }, 'mqtt connection closed by packet guard');
      },
      onPaced(pauseMs) {
        metrics.ratePauses.inc();
        metrics.ratePausedSeconds.inc(pauseMs / 1000);
      },
    });
    if (certificateCommonName !== undefined) certificateNames.set(guarded, certificateCommonName);
    aedes.handle(guarded);
  }

  // With TLS, plain TCP only when asked for: a device must not be able to skip the handshake.
  const plaintext = config.plaintext ?? config.tls === undefined;
  let tcpServer: net.Server | undefined;
  if (plaintext) {
    tcpServer = net.createServer((socket) => {
      socket.setNoDelay(true);
      handleSocket(socket);
    });
    await listen(tcpServer, config.port, config.host);
  }

  let tlsServer: tls.Server | undefined;
  if (config.tls !== undefined) {
    const t = config.tls;
    const [cert, key, ca] = await Promise.all([readFile(t.certFile), readFile(t.keyFile), t.caFile === undefined ? undefined : readFile(t.caFile)]);
    tlsServer = tls.createServer({ cert, key, ca, requestCert: t.caFile !== undefined, rejectUnauthorized: t.requireClientCert }, (socket) => {
      socket.setNoDelay(true);
      const peer = socket.authorized ? socket.getPeerCertificate() : undefined;
      const cn = peer?.subject?.CN;
      handleSocket(socket, typeof cn === 'string' ? cn : undefined);
    });
    await listen(tlsServer, t.port, config.host);
  }

  let closing: Promise<void> | undefined;
  return {
    mqttPort: tcpServer === undefined ? undefined : (tcpServer.address() as AddressInfo).port,
    tlsPort: tlsServer === undefined ? undefined : (tlsServer.address() as AddressInfo).port,
    publish(topic, payload, qos = 0) {
      return new Promise((resolve, reject) => {
        const packet: PublishPacket = { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos, retain: false, dup: false };
        aedes.publish(packet, (error) => (error ? reject(error) : resolve()));
      });
    },
    connectedClients: () => live.size,
    reconfigure(next) {
      authenticator.update({ devices: next.devices, allowAnonymous: next.allowAnonymous });
      maxPacketBytes = next.maxPacketBytes;
      let closed = 0;
      for (const client of live) {
        const session = sessions.get(client);
        if (next.closeAll || session === undefined || !authenticator.stillValid(session.deviceId, session.via)) {
          client.close();
          closed++;
        }
      }
      if (closed > 0) logger.info({ closed, closeAll: next.closeAll }, 'device connections closed by a config change');
      return closed;
    },
    close() {
      closing ??= (async () => {
        const servers = [tcpServer, tlsServer].filter((s): s is net.Server => s !== undefined);
        const stopped = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        await Promise.all(stopped);
      })();
      return closing;
    },
  };
}

/** The part of `aedes.persistence` used here (aedes 1.2 leaves it out of its types). */
interface IncomingPersistence {
  incomingGetPacket(client: Client, packet: { messageId?: number | undefined }): Promise<unknown>;
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
