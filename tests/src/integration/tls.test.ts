import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { Lane, type AgentConfigInput } from '@outpost/shared';
import { hashPassword, type Agent } from '@outpost/agent';
import { startInProcessAgent, testAgentConfig } from '../harness/agent-process.js';
import { closed, connectDevice, publish, telemetryPayload, type DeviceOptions } from '../harness/devices.js';
import { metricValue } from '../harness/metrics.js';
import { createPki, type CertFiles } from '../harness/pki.js';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';

// The embedded broker's TLS listener with real certificates made by the openssl CLI: a
// throwaway CA, a server certificate for 127.0.0.1/localhost, and client certificates whose
// CN is the device id (mTLS, DESIGN section 4).

interface Pki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** CN=dev-tls, signed by the CA. */
  clientCert: Buffer;
  clientKey: Buffer;
  /** CN=dev-tls too, but signed by a CA the agent does not know. */
  foreignClientCert: Buffer;
  foreignClientKey: Buffer;
  /** A server certificate from the same CA for gateway-7.example only. */
  otherHost: CertFiles;
}

const PASSWORD_DEVICE = { id: 'dev-pw', password: 'dev-pw-secret' };

let certsDir: TempDir;
let pki: Pki;
let passwordHash: string;
let dataDir: TempDir;
let agent: Agent | undefined;
const clients: MqttClient[] = [];

function makePki(): Pki {
  const ours = createPki(certsDir.path, 'test-ca');
  const server = ours.server('server');
  const client = ours.client('client', 'dev-tls');
  const foreign = createPki(certsDir.path, 'foreign-ca').client('foreign-client', 'dev-tls');
  return {
    caCert: ours.caCert,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: readFileSync(client.cert),
    clientKey: readFileSync(client.key),
    foreignClientCert: readFileSync(foreign.cert),
    foreignClientKey: readFileSync(foreign.key),
    otherHost: ours.server('other-host', ['gateway-7.example']),
  };
}

async function startTlsAgent(requireClientCert: boolean, options: { plaintext?: boolean; server?: CertFiles } = {}): Promise<Agent> {
  const broker: AgentConfigInput['broker'] = {
    mode: 'embedded',
    port: 0,
    allowAnonymous: false,
    devices: [{ id: PASSWORD_DEVICE.id, passwordHash }],
    tls: { port: 0, certFile: options.server?.cert ?? pki.serverCert, keyFile: options.server?.key ?? pki.serverKey, caFile: pki.caCert, requireClientCert },
    ...(options.plaintext === undefined ? {} : { plaintext: options.plaintext }),
  };
  agent = await startInProcessAgent(testAgentConfig(join(dataDir.path, 'data'), { broker }));
  return agent;
}

function tlsUrl(a: Agent): string {
  if (a.tlsPort === undefined) throw new Error('the agent has no TLS listener');
  return `mqtts://127.0.0.1:${a.tlsPort}`;
}

/** Connects over TLS trusting the test CA (unless `ca` is overridden); tracked for cleanup. */
async function connectTls(a: Agent, options: DeviceOptions): Promise<MqttClient> {
  const client = await connectDevice(tlsUrl(a), { ca: readFileSync(pki.caCert), rejectUnauthorized: true, ...options });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  certsDir = await createTempDir('outpost-tls-certs-');
  pki = makePki();
  passwordHash = await hashPassword(PASSWORD_DEVICE.password, { costLog2: 10 });
});

afterAll(async () => {
  await certsDir.remove();
});

beforeEach(async () => {
  dataDir = await createTempDir('outpost-tls-data-');
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.end(true);
  await agent?.close();
  agent = undefined;
  await dataDir.remove();
});

describe('embedded broker over TLS', () => {
  it('listens on TLS only, unless plain TCP is asked for too (plaintext: true, on its own port)', async () => {
    const only = await startTlsAgent(false);
    expect(only.tlsPort).toBeGreaterThan(0);
    expect(only.mqttPort).toBeUndefined();
    await only.close();
    const both = await startTlsAgent(false, { plaintext: true });
    expect(both.tlsPort).toBeGreaterThan(0);
    expect(both.mqttPort).toBeGreaterThan(0);
    expect(both.tlsPort).not.toBe(both.mqttPort);
  });

  it('a plaintext MQTT CONNECT to the TLS port gets no CONNACK and no session', async () => {
    const a = await startTlsAgent(false);
    await expect(
      connectDevice(`mqtt://127.0.0.1:${a.tlsPort}`, { clientId: PASSWORD_DEVICE.id, username: PASSWORD_DEVICE.id, password: PASSWORD_DEVICE.password, connectTimeout: 3_000 }),
    ).rejects.toThrow();
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_broker_clients_connected')).toBe(0);
  });

  it('a device checking the host name refuses a broker whose certificate names another host', async () => {
    const a = await startTlsAgent(false, { server: pki.otherHost });
    const error = await connectDevice(tlsUrl(a), { clientId: PASSWORD_DEVICE.id, username: PASSWORD_DEVICE.id, password: PASSWORD_DEVICE.password, ca: readFileSync(pki.caCert), rejectUnauthorized: true }).then(
      (client) => {
        clients.push(client);
        return undefined;
      },
      (err: unknown) => err as NodeJS.ErrnoException,
    );
    expect(error?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    expect(await a.outbox.read(Lane.telemetry, 0, 10)).toHaveLength(0);
  });

  it('takes a QoS 1 publish from a password device over mqtts into the outbox', async () => {
    const a = await startTlsAgent(false);
    const device = await connectTls(a, { clientId: PASSWORD_DEVICE.id, username: PASSWORD_DEVICE.id, password: PASSWORD_DEVICE.password });
    await publish(device, 'devices/dev-pw/telemetry', telemetryPayload(1, 1_700_000_000_000));
    // PUBACK means committed: no wait needed.
    const records = await a.outbox.read(Lane.telemetry, 0, 10);
    expect(records.map((r) => [r.deviceId, r.deviceSeq, r.ts])).toEqual([['dev-pw', 1, 1_700_000_000_000]]);
  });

  it('refuses a wrong password over mqtts', async () => {
    const a = await startTlsAgent(false);
    await expect(connectTls(a, { clientId: PASSWORD_DEVICE.id, username: PASSWORD_DEVICE.id, password: 'wrong' })).rejects.toMatchObject({ code: 4 });
  });

  it('authenticates a CA-signed client certificate as the device named by its CN', async () => {
    const a = await startTlsAgent(false);
    const device = await connectTls(a, { clientId: 'dev-tls', cert: pki.clientCert, key: pki.clientKey });
    await publish(device, 'devices/dev-tls/telemetry', telemetryPayload(7, 1_700_000_000_000));
    const records = await a.outbox.read(Lane.telemetry, 0, 10);
    expect(records.map((r) => [r.deviceId, r.deviceSeq])).toEqual([['dev-tls', 7]]);

    // The CN is the identity for the ACL too: another device's topic is not its to publish.
    const gone = closed(device);
    device.publish('devices/dev-pw/telemetry', telemetryPayload(8), { qos: 1 });
    await gone;
    expect(await a.outbox.read(Lane.telemetry, 0, 10)).toHaveLength(1);
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_broker_acl_denied_total', { action: 'publish' })).toBe(1);
  });

  it('refuses the certificate of dev-tls with another ClientId: identifier rejected', async () => {
    const a = await startTlsAgent(false);
    await expect(connectTls(a, { clientId: 'other-id', cert: pki.clientCert, key: pki.clientKey })).rejects.toMatchObject({ code: 2 });
    expect(metricValue(await a.metrics.registry.metrics(), 'outpost_broker_auth_refused_total', { code: '2' })).toBe(1);
  });

  it('does not take the CN of a certificate from an unknown CA as an identity', async () => {
    const a = await startTlsAgent(false);
    // The TLS handshake passes (client certificates are optional here), but the certificate is
    // unverified, so the device is anonymous, which this broker refuses: not authorized.
    await expect(connectTls(a, { clientId: 'dev-tls', cert: pki.foreignClientCert, key: pki.foreignClientKey })).rejects.toMatchObject({ code: 5 });
  });

  it('fails the connection of a client that does not trust the CA', async () => {
    const a = await startTlsAgent(false);
    const error = await connectDevice(tlsUrl(a), {
      clientId: PASSWORD_DEVICE.id,
      username: PASSWORD_DEVICE.id,
      password: PASSWORD_DEVICE.password,
      rejectUnauthorized: true,
    }).then(
      (client) => {
        clients.push(client);
        return undefined;
      },
      (err: unknown) => err as NodeJS.ErrnoException,
    );
    expect(error?.code).toMatch(/^(SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)$/);
    expect(await a.outbox.read(Lane.telemetry, 0, 10)).toHaveLength(0);
  });

  it('with requireClientCert, refuses a client without a certificate and accepts one with', async () => {
    const a = await startTlsAgent(true);
    // TLS 1.3: the client's handshake completes first, then the server's alert arrives.
    await expect(connectTls(a, { clientId: PASSWORD_DEVICE.id, username: PASSWORD_DEVICE.id, password: PASSWORD_DEVICE.password })).rejects.toMatchObject({
      code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
    });
    const device = await connectTls(a, { clientId: 'dev-tls', cert: pki.clientCert, key: pki.clientKey });
    await publish(device, 'devices/dev-tls/telemetry', telemetryPayload(1));
    expect((await a.outbox.read(Lane.telemetry, 0, 10)).map((r) => r.deviceId)).toEqual(['dev-tls']);
  });
});
