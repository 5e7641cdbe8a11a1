// The only file that imports mqtt.js: bridge mode, where the agent is a client of an existing
// site broker instead of embedding its own.
import { readFile } from 'node:fs/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { parseDeviceTopic, redactUrl, type BridgeConfig, type Logger } from '@outpost/shared';
import type { Ingest } from '../ingest/ingest.js';

/** Pause before reconnecting, ms; mqtt.js retries forever at this period. */
export const DEFAULT_BRIDGE_RECONNECT_MS = 1_000;

export interface MqttBridge {
  /** True while connected to the site broker. */
  connected(): boolean;
  /** Publishes on the site broker (the agent's answers on devices/{id}/errors); QoS 0. */
  publish(topic: string, payload: string): void;
  close(): Promise<void>;
}

export interface MqttBridgeOptions {
  config: BridgeConfig;
  ingest: Ingest;
  logger: Logger;
}

/**
 * Subscribes to the site broker with a persistent session (clean: false, fixed ClientId) and
 * acknowledges each QoS 1 message only after its outbox commit. A message that cannot be
 * committed is left unacknowledged and the connection is dropped, so the site broker
 * redelivers it on reconnect (MQTT 3.1.1 section 4.4).
 *
 * The commit runs in mqtt.js `handleMessage`, which the client awaits before it writes the
 * PUBACK. Not `customHandleAcks`: mqtt.js 5 calls that only for MQTT 5 and, for 3.1.1, puts
 * an immediate acknowledgement in its place, so nothing would reach the outbox.
 *
 * Limit: mqtt.js handles incoming packets one at a time (the next is parsed after the
 * previous one's ack), so bridge throughput is bounded by commit latency, unlike the embedded
 * broker where a whole socket read is committed together.
 */
export async function startMqttBridge(options: MqttBridgeOptions): Promise<MqttBridge> {
  const { config, ingest, logger } = options;
  const ca = config.caFile === undefined ? undefined : await readFile(config.caFile);
  const client: MqttClient = mqtt.connect(config.url, {
    clientId: config.clientId,
    clean: false,
    reconnectPeriod: DEFAULT_BRIDGE_RECONNECT_MS,
    username: config.username,
    password: config.password,
    ca,
  });
  // Set in the same tick as connect(): no packet can arrive before it.
  client.handleMessage = (packet, callback) => {
    const topic = packet.topic;
    const parsed = parseDeviceTopic(topic);
    if (parsed?.rest !== 'telemetry') return callback(); // not ours to store
    const message = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    void ingest.handleTelemetry(parsed.deviceId, topic, message, { qos: packet.qos }).then((outcome) => {
      switch (outcome.type) {
        case 'accepted':
          return callback();
        case 'dead-lettered': // committed as a dead letter; ingest answered the device
          return callback();
        case 'resend': // the site broker redelivered a message already committed: stored once
          return callback();
        case 'refused':
          // QoS 0 is never redelivered: dropping the connection would not bring it back.
          if (packet.qos === 0) return callback();
          logger.warn({ deviceId: parsed.deviceId, topic }, 'outbox could not commit; dropping the bridge connection so the site broker redelivers');
          // No PUBACK for this message (the callback gets an error), and a new connection on
          // which the broker resends every unacknowledged QoS 1 message of the session.
          callback(new Error('outbox could not commit; message left unacknowledged'));
          client.stream.destroy();
          return;
      }
    });
  };

  client.on('connect', (connack) => {
    logger.info({ url: redactUrl(config.url), sessionPresent: connack.sessionPresent }, 'bridge connected to site broker');
    // Subscribing again is harmless with a present session and picks up changed topics.
    client.subscribe(config.topics, { qos: 1 }, (error) => {
      if (error) logger.error({ err: error, topics: config.topics }, 'bridge subscribe failed');
    });
  });
  client.on('error', (error) => logger.warn({ err: error, url: redactUrl(config.url) }, 'bridge connection error'));
  client.on('offline', () => logger.warn({ url: redactUrl(config.url) }, 'bridge offline; reconnecting'));

  let closing: Promise<void> | undefined;
  return {
    connected: () => client.connected,
    publish(topic, payload) {
      client.publish(topic, payload, { qos: 0 });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        client.end(false, {}, () => resolve());
      });
      return closing;
    },
  };
}
