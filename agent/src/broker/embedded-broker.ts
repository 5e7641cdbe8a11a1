// The only file that imports aedes. Its callback hooks become async/await here.
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import { parseDeviceTopic, type EmbeddedBrokerConfig, type Logger } from '@outpost/shared';
import type { Ingest } from '../ingest/ingest.js';
import type { AgentMetrics } from '../metrics.js';
import { canPublish, canSubscribe, canUseWill, type DeviceAuthenticator } from './device-auth.js';
import { guardPackets } from './packet-guard.js';

/**
 * Where a dead-lettered or refused QoS 0 publish is routed instead of its own topic, so local
 * subscribers never see a payload the agent rejected. Devices cannot subscribe here (ACL).
 */
const DISCARD_TOPIC = '$outpost/discard';

export interface EmbeddedBroker {
  readonly mqttPort: number;
  readonly tlsPort: number | undefined;
  /** Publishes from the agent itself (inference results, error answers); not subject to ACL. */
  publish(topic: string, payload: Buffer | string, qos?: 0 | 1): Promise<void>;
  connectedClients(): number;
  /** Stops listening, closes every client, closes aedes. Idempotent. */
  close(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  config: EmbeddedBrokerConfig;
  /** Folder that relative TLS file paths are resolved against. */
  authenticator: DeviceAuthenticator;
  ingest: Ingest;
  metrics: AgentMetrics;
  logger: Logger;
}

interface Session {
  deviceId: string;
}

/** Starts aedes behind a packet guard on TCP (and TLS when configured). */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { config, authenticator, ingest, metrics, logger } = options;
  const sessions = new WeakMap<Client, Session>();
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
              sessions.set(client, { deviceId: result.deviceId });
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
      const parsed = parseDeviceTopic(packet.topic);
      if (parsed?.rest !== 'telemetry') return callback(null); // local traffic under its own prefix
      // The PUBACK of a QoS 1 publish is written only after this callback (aedes runs
      // authorizePublish before enqueuePublish), so the record is committed before the ack.
      void ingest.handleTelemetry(session.deviceId, packet.topic, packet.payload as Buffer).then((outcome) => {
        switch (outcome.type) {
          case 'accepted':
            return callback(null);
          case 'dead-lettered':
            packet.topic = DISCARD_TOPIC;
            return callback(null);
          case 'refused':
            if (packet.qos === 0) {
              packet.topic = DISCARD_TOPIC;
              return callback(null);
            }
            // MQTT 3.1.1 has no negative PUBACK: closing the connection without one makes the
            // device resend, where acknowledging would lose the message.
            return callback(new Error(`publish refused: ${outcome.reason}`));
        }
      });
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
    const guarded = guardPackets(socket, {
      maxPacketBytes: config.maxPacketBytes,
      onViolation(violation) {
        metrics.guardClosed.inc({ reason: violation.reason });
        logger.warn({ ...violation, maxPacketBytes: config.maxPacketBytes }, 'mqtt connection closed by packet guard');
      },
    });
    if (certificateCommonName !== undefined) certificateNames.set(guarded, certificateCommonName);
    aedes.handle(guarded);
  }

  const tcpServer = net.createServer((socket) => {
    socket.setNoDelay(true);
    handleSocket(socket);
  });
  await listen(tcpServer, config.port, config.host);

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
    mqttPort: (tcpServer.address() as AddressInfo).port,
    tlsPort: tlsServer === undefined ? undefined : (tlsServer.address() as AddressInfo).port,
    publish(topic, payload, qos = 0) {
      return new Promise((resolve, reject) => {
        const packet: PublishPacket = { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos, retain: false, dup: false };
        aedes.publish(packet, (error) => (error ? reject(error) : resolve()));
      });
    },
    connectedClients: () => live.size,
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

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
