import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export interface DeviceOptions extends IClientOptions {
  /** Wait at most this long for the CONNACK; default 5 000 ms. */
  connectTimeoutMs?: number;
}

/**
 * Connects one MQTT client (a simulated device) and resolves on CONNACK, or rejects with the
 * broker's refusal (e.g. `Connection refused: Bad username or password`). No reconnects
 * unless the test asks for them.
 */
export function connectDevice(url: string, options: DeviceOptions): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: options.connectTimeoutMs ?? 5_000, ...options });
    const onError = (error: Error): void => {
      client.end(true);
      reject(error);
    };
    const onClose = (): void => {
      client.end(true);
      reject(new Error(`connection to ${url} closed before CONNACK`));
    };
    client.once('error', onError);
    client.once('close', onClose);
    client.once('connect', () => {
      client.off('error', onError);
      client.off('close', onClose);
      resolve(client);
    });
  });
}

/** A telemetry payload of about 200 bytes, the size the benchmarks use. */
export function telemetryPayload(seq: number, ts = Date.now()): string {
  return JSON.stringify({ ts, seq, metrics: { temperature: 21.5 + (seq % 10) / 10, humidity: 40.25, pressure: 1013.2, vibration: 0.012, current: 1.52, voltage: 229.8 } });
}

/** Publishes and resolves on PUBACK (QoS 1) or when written (QoS 0). */
export function publish(client: MqttClient, topic: string, payload: string | Buffer, qos: 0 | 1 = 1): Promise<void> {
  return new Promise((resolve, reject) => {
    client.publish(topic, payload, { qos }, (error) => (error ? reject(error) : resolve()));
  });
}

/** Resolves with the next message on `topic` (subscribing first). */
export async function nextMessage(client: MqttClient, topic: string): Promise<Buffer> {
  const message = new Promise<Buffer>((resolve) => {
    const onMessage = (t: string, payload: Buffer): void => {
      if (t !== topic) return;
      client.off('message', onMessage);
      resolve(payload);
    };
    client.on('message', onMessage);
  });
  await client.subscribeAsync(topic, { qos: 0 });
  return message;
}

/** Resolves when the client's connection is closed by the other side. */
export function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    if (!client.connected) return resolve();
    client.once('close', () => resolve());
  });
}

export interface LoadDevice {
  deviceId: string;
  client: MqttClient;
}

export interface SteadyLoad {
  /** Device seqs whose PUBACK arrived, per device, in ack order. */
  readonly acked: Map<string, number[]>;
  ackedCount(): number;
  /** Resolves once at least `n` publishes in all were acknowledged. */
  whenAcked(n: number): Promise<void>;
  /** Stops publishing; pending publishes keep their callbacks. */
  stop(): void;
}

/**
 * QoS 1 telemetry from every device at `ratePerDevicePerS`, paced in 10 ms ticks, with device
 * seqs counting on from `firstSeq` (per device, so a test can run several loads in a row).
 */
export function startSteadyLoad(devices: readonly LoadDevice[], ratePerDevicePerS: number, firstSeq: Map<string, number> = new Map()): SteadyLoad {
  const tickMs = 10;
  const acked = new Map<string, number[]>(devices.map((d) => [d.deviceId, []]));
  let count = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  let credit = 0;
  const timer = setInterval(() => {
    credit += (ratePerDevicePerS * tickMs) / 1000;
    const n = Math.floor(credit);
    credit -= n;
    for (const { deviceId, client } of devices) {
      for (let i = 0; i < n && client.connected; i++) {
        const seq = firstSeq.get(deviceId) ?? 0;
        firstSeq.set(deviceId, seq + 1);
        client.publish(`devices/${deviceId}/telemetry`, telemetryPayload(seq), { qos: 1 }, (error) => {
          if (error) return;
          acked.get(deviceId)!.push(seq);
          count++;
          for (const w of waiters.filter((x) => count >= x.n)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve();
          }
        });
      }
    }
  }, tickMs);
  return {
    acked,
    ackedCount: () => count,
    whenAcked: (n) => (count >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    stop: () => clearInterval(timer),
  };
}
