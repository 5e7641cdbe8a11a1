// The peer of the e2e bench, run as its own process: what a user builds by hand to get device
// data from an MQTT broker into JetStream. mqtt.js subscribes devices/+/telemetry at QoS 1;
// each message is js.publish()ed on its own (no batching), pipelined with a window of
// unacknowledged JetStream publishes; when the window is full, mqtt.js is held (its PUBACK to
// the broker and the next message wait). No validation, no durability of its own.
//
// `node forwarder.js <mqttUrl> <natsUrl> <subjectPrefix> <window>`; prints one JSON line
// `{"event":"forwarder-ready"}` once subscribed; exits on SIGTERM or when stdin closes.
import mqtt from 'mqtt';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';

async function main(): Promise<void> {
  const [mqttUrl, natsUrl, prefix, windowText] = process.argv.slice(2);
  if (mqttUrl === undefined || natsUrl === undefined || prefix === undefined) throw new Error('usage: forwarder <mqttUrl> <natsUrl> <subjectPrefix> <window>');
  const window = Number(windowText ?? '1000');
  const nc = await connect({ servers: natsUrl });
  const js = jetstream(nc);
  let inFlight = 0;
  let failed = 0;
  let held: (() => void) | undefined;

  const client = mqtt.connect(mqttUrl, { clientId: 'bench-forwarder', clean: true, reconnectPeriod: 0, keepalive: 60 });
  // mqtt.js sends the QoS 1 PUBACK to the broker and reads the next message once `done` is called.
  client.handleMessage = (packet, done) => {
    const deviceId = packet.topic.split('/')[1] ?? 'unknown';
    inFlight++;
    js.publish(`${prefix}.${deviceId}`, packet.payload as Uint8Array).then(
      () => undefined,
      () => {
        failed++;
      },
    ).finally(() => {
      inFlight--;
      const h = held;
      if (h !== undefined && inFlight < window) {
        held = undefined;
        h();
      }
    });
    if (inFlight < window) done();
    else held = () => done();
  };
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync('devices/+/telemetry', { qos: 1 });
  process.stdout.write(`${JSON.stringify({ event: 'forwarder-ready' })}\n`);

  const stop = async (): Promise<void> => {
    client.end(true);
    await nc.close().catch(() => undefined);
    process.stdout.write(`${JSON.stringify({ event: 'forwarder-stopped', failed })}\n`);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.stdin.on('end', () => void stop());
  process.stdin.resume();
}

main().catch((error: unknown) => {
  console.error('forwarder failed:', error);
  process.exit(1);
});
