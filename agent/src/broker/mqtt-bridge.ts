// The only file that imports mqtt.js: bridge mode, where the agent is a client of an existing
// site broker instead of embedding its own.
import { readFile } from 'node:fs/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { errorsTopic, parseDeviceTopic, type BridgeConfig, type DeviceError, type Logger } from '@outpost/shared';
import type { Ingest } from '../ingest/ingest.js';

/** Pause before reconnecting, ms; mqtt.js retries forever at this period. */
export const DEFAULT_BRIDGE_RECONNECT_MS = 1_000;

export interface MqttBridge {
  /** True while connected to the site broker. */
  connected(): boolean;
  close(): Promise<void>;
}

export interface MqttBridgeOptions {
  config: BridgeConfig;
  ingest: Ingest;
  logger: Logger;
}

class BridgeRefusal extends Error {}

/**
 * Subscribes to the site broker with a persistent session (clean: false, fixed ClientId) and
 * acknowledges each QoS 1 message only after its outbox commit (mqtt.js `customHandleAcks`).
 * A message that cannot be committed is left unacknowledged and the connection is dropped, so
 * the site broker redelivers it on reconnect.
 *
 * Limit: mqtt.js handles incoming packets one at a time (the next is parsed after the
 * previous one's ack), so bridge throughput is bounded by commit latency, unlike the embedded
 * broker where a whole socket read is committed together.
 */
export async function startMqttBridge(options: MqttBridgeOptions): Promise<MqttBridge> {
  const { config, ingest, logger } = options;
  const ca = config.caFile === undefined ? undefined : await readFile(config.caFile);
  const answer = (deviceId: string, error: DeviceError): void => {
    client.publish(errorsTopic(deviceId), JSON.stringify(error), { qos: 0 });
  };

  const client: MqttClient = mqtt.connect(config.url, {
    clientId: config.clientId,
    clean: false,
    reconnectPeriod: DEFAULT_BRIDGE_RECONNECT_MS,
    username: config.username,
    password: config.password,
    ca,
    customHandleAcks(topic, message, _packet, done) {
      const parsed = parseDeviceTopic(topic);
      if (parsed?.rest !== 'telemetry') return done(0); // not ours to store
      ingest.handleTelemetry(parsed.deviceId, topic, message).then((outcome) => {
        if (outcome.type === 'refused' && outcome.reason === 'storage-failed') {
          done(new BridgeRefusal('outbox could not commit; leaving the message unacknowledged'));
          return;
        }
        if (outcome.type === 'dead-lettered') answer(parsed.deviceId, { ts: Date.now(), reason: outcome.reason, topic });
        done(0);
      }, done);
    },
  });

  client.on('connect', (connack) => {
    logger.info({ url: config.url, sessionPresent: connack.sessionPresent }, 'bridge connected to site broker');
    // Subscribing again is harmless with a present session and picks up changed topics.
    client.subscribe(config.topics, { qos: 1 }, (error) => {
      if (error) logger.error({ err: error, topics: config.topics }, 'bridge subscribe failed');
    });
  });
  client.on('error', (error) => {
    if (error instanceof BridgeRefusal) {
      logger.warn({ err: error }, 'bridge dropping connection so the site broker redelivers');
      client.stream.destroy();
      return;
    }
    logger.warn({ err: error, url: config.url }, 'bridge connection error');
  });
  client.on('offline', () => logger.warn({ url: config.url }, 'bridge offline; reconnecting'));

  let closing: Promise<void> | undefined;
  return {
    connected: () => client.connected,
    close() {
      closing ??= new Promise<void>((resolve) => {
        client.end(false, {}, () => resolve());
      });
      return closing;
    },
  };
}
