// The simulator's only mqtt.js file (lint enforces it): one device connection behind the
// DeviceLink interface, with mqtt.js's callbacks turned into events and counters.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { errorsTopic } from '@outpost/shared';

/** How long a graceful close (DISCONNECT) may take before the socket is simply closed. */
const GRACEFUL_END_TIMEOUT_MS = 1_000;

/** What happens on one device's link, for the runner's counters. */
export type LinkEvent =
  | { type: 'connected'; reconnect: boolean }
  /** The broker answered CONNACK with a refusal (MQTT 3.1.1 section 3.2.2.3: 4 bad user name or password, 5 not authorized). */
  | { type: 'refused'; code: number; message: string }
  /**
   * The connection closed. `inFlight` QoS 1 publishes were sent on it without a PUBACK:
   * mqtt.js keeps them in its (in-memory) outgoing store and sends them again after the reconnect.
   */
  | { type: 'closed'; inFlight: number }
  /** A message on devices/{id}/errors: the agent refused one of our publishes. */
  | { type: 'error-answer'; payload: Buffer }
  | { type: 'error'; message: string };

export interface DeviceLinkOptions {
  /** `mqtt://host:port` or `mqtts://...`. */
  url: string;
  deviceId: string;
  /** The device id when a password is set; no user name when undefined (anonymous). */
  username?: string | undefined;
  password?: string | undefined;
  /** Wait before a reconnect, ms. */
  reconnectPeriodMs: number;
  /** Give up one connect attempt after this long, ms. */
  connectTimeoutMs: number;
  onEvent(event: LinkEvent): void;
}

export interface DeviceLink {
  readonly deviceId: string;
  isConnected(): boolean;
  /** QoS 1 publishes not acknowledged yet (sent, or waiting for the link). */
  inFlight(): number;
  /**
   * Publishes; `done` runs on PUBACK (QoS 1), once written (QoS 0), or with an error when the
   * link is closed for good before that. While the link is down mqtt.js queues the publish.
   */
  publish(topic: string, body: string | Buffer, qos: 0 | 1, done: (error?: Error) => void): void;
  /** Cuts the TCP connection at once, as a failing radio would; mqtt.js reconnects after reconnectPeriodMs. */
  dropLink(): void;
  /** Ends the session: DISCONNECT when connected, or a forced close; no more reconnects. */
  close(force?: boolean): Promise<void>;
}

/**
 * Opens one device's MQTT connection (ClientId = device id, as the agent requires) with
 * automatic reconnects, subscribed to its own `devices/{id}/errors`. A refused CONNACK is
 * final: mqtt.js does not reconnect after it.
 */
export function openDeviceLink(options: DeviceLinkOptions): DeviceLink {
  const clientOptions: IClientOptions = {
    clientId: options.deviceId,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: options.reconnectPeriodMs,
    connectTimeout: options.connectTimeoutMs,
    keepalive: 30,
    ...(options.username === undefined ? {} : { username: options.username }),
    ...(options.password === undefined ? {} : { password: options.password }),
  };
  const client: MqttClient = mqtt.connect(options.url, clientOptions);
  const answers = errorsTopic(options.deviceId);
  let everConnected = false;
  let closing = false;
  /** QoS 1 publishes waiting for their PUBACK, with the connection number they were last sent on (0: none yet). */
  const pending = new Map<number, number>();
  let connection = 0;
  /** True between a CONNACK and the close of that connection (failed attempts close too). */
  let linkUp = false;
  let nextToken = 1;

  // Link up is the accepting CONNACK, not mqtt.js's 'connect' event: mqtt.js first replays its
  // outgoing store on the new connection and emits 'connect' only after that, so a link that
  // drops during the replay would otherwise never count as connected.
  client.on('packetreceive', (packet) => {
    if (packet.cmd !== 'connack' || (packet.returnCode ?? packet.reasonCode ?? 0) !== 0) return;
    connection += 1;
    linkUp = true;
    // Everything waiting for a PUBACK is replayed on this connection.
    for (const token of pending.keys()) pending.set(token, connection);
    const reconnect = everConnected;
    everConnected = true;
    options.onEvent({ type: 'connected', reconnect });
  });
  client.on('close', () => {
    if (!linkUp) return;
    linkUp = false;
    let inFlight = 0;
    for (const sentOn of pending.values()) if (sentOn === connection) inFlight += 1;
    options.onEvent({ type: 'closed', inFlight });
  });
  client.on('error', (error: Error & { code?: unknown }) => {
    if (typeof error.code === 'number' && error.message.startsWith('Connection refused')) {
      options.onEvent({ type: 'refused', code: error.code, message: error.message });
    } else {
      options.onEvent({ type: 'error', message: error.message });
    }
  });
  client.on('message', (topic, payload) => {
    if (topic === answers) options.onEvent({ type: 'error-answer', payload });
  });
  // mqtt.js re-subscribes after every reconnect of a clean session.
  client.subscribe(answers, { qos: 0 }, () => {});

  return {
    deviceId: options.deviceId,
    isConnected: () => client.connected,
    inFlight: () => pending.size,
    publish(topic, body, qos, done) {
      if (qos === 0) {
        client.publish(topic, body, { qos: 0 }, (error) => done(error ?? undefined));
        return;
      }
      const token = nextToken++;
      pending.set(token, client.connected ? connection : 0);
      client.publish(topic, body, { qos: 1 }, (error) => {
        pending.delete(token);
        done(error ?? undefined);
      });
    },
    dropLink() {
      if (!closing) client.stream.destroy();
    },
    async close(force = false) {
      closing = true;
      if (force || !client.connected) {
        await client.endAsync(true);
        return;
      }
      // A graceful end waits until mqtt.js's own outgoing table is empty; after a reconnect it
      // can keep a re-subscribe whose SUBACK it matched to nothing, and would wait forever.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.endAsync(false), new Promise<void>((resolve) => (timer = setTimeout(resolve, GRACEFUL_END_TIMEOUT_MS)))]);
      clearTimeout(timer);
      client.stream.destroy();
    },
  };
}
