import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { Lane, type AgentConfigInput } from '@outpost/shared';
import { hashPassword, type Agent } from '@outpost/agent';
import { startInProcessAgent, testAgentConfig } from '../harness/agent-process.js';
import { closed, connectDevice, publish, telemetryPayload, type DeviceOptions } from '../harness/devices.js';
import { metricValue } from '../harness/metrics.js';
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
}

const PASSWORD_DEVICE = { id: 'dev-pw', password: 'dev-pw-secret' };

let certsDir: TempDir;
let pki: Pki;
let passwordHash: string;
let dataDir: TempDir;
let agent: Agent | undefined;
const clients: MqttClient[] = [];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: certsDir.path, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A P-256 key and a CSR for `subject`. */
function newKeyAndCsr(name: string, subject: string): void {
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
}

/** A self-signed CA certificate `${name}.crt` with its key `${name}.key`. */
function newCa(name: string): void {
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

/** Signs `${name}.csr` with CA `ca` into `${name}.crt`, with the given v3 extensions. */
function sign(name: string, ca: string, extensions: string): void {
  writeFileSync(join(certsDir.path, `${name}.ext`), `${extensions}\n`);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`]);
}

function makePki(): Pki {
  newCa('test-ca');
  newCa('foreign-ca');
  newKeyAndCsr('server', '/CN=localhost');
  sign('server', 'test-ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  newKeyAndCsr('client', '/CN=dev-tls');
  sign('client', 'test-ca', 'extendedKeyUsage=clientAuth');
  newKeyAndCsr('foreign-client', '/CN=dev-tls');
  sign('foreign-client', 'foreign-ca', 'extendedKeyUsage=clientAuth');
  const at = (file: string): string => join(certsDir.path, file);
  const read = (file: string): Buffer => readFileSync(at(file));
  return {
    caCert: at('test-ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    foreignClientCert: read('foreign-client.crt'),
    foreignClientKey: read('foreign-client.key'),
  };
}

async function startTlsAgent(requireClientCert: boolean): Promise<Agent> {
  const broker: AgentConfigInput['broker'] = {
    mode: 'embedded',
    port: 0,
    allowAnonymous: false,
    devices: [{ id: PASSWORD_DEVICE.id, passwordHash }],
    tls: { port: 0, certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caCert, requireClientCert },
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
  it('listens on its own TLS port next to plain TCP', async () => {
    const a = await startTlsAgent(false);
    expect(a.tlsPort).toBeGreaterThan(0);
    expect(a.mqttPort).toBeGreaterThan(0);
    expect(a.tlsPort).not.toBe(a.mqttPort);
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
