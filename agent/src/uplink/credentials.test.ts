import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfigSchema, ErrorCode, generateSigningKey, isOutpostError, parseConfig, writeSecretFile, type AgentConfigInput, type EnrollmentBundle } from '@outpost/shared';
import { readUplinkCredentials } from './credentials.js';

const SEED = 'SUAEXAMPLESEEDTHATMUSTNEVERBEPRINTED';
const KEY = generateSigningKey('k1').trustedKey;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-creds-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function bundle(overrides: Partial<EnrollmentBundle> = {}): EnrollmentBundle {
  return {
    v: 1,
    agentId: 'gw-1',
    servers: ['tls://nats.example:4222'],
    creds: `-----BEGIN NATS USER JWT-----\neyJ0eXAi\n------END NATS USER JWT------\n-----BEGIN USER NKEY SEED-----\n${SEED}\n------END USER NKEY SEED------\n`,
    inboxPrefix: '_INBOX_gw-1',
    caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    trustedKeys: [KEY],
    labels: { site: 'north', line: '1' },
    userPublicKey: 'UABC',
    issuedAtMs: 1_700_000_000_000,
    ...overrides,
  };
}

function config(uplink: NonNullable<AgentConfigInput['uplink']>, extra: Partial<AgentConfigInput> = {}) {
  return parseConfig(AgentConfigSchema, { agentId: 'gw-1', dataDir: dir, uplink, ...extra }, 'test');
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isOutpostError(err)) throw new Error(`expected an OutpostError, got ${String(err)}`);
  return { code: err.code, message: err.message };
}

describe('readUplinkCredentials', () => {
  it('takes servers, creds, CA and inbox prefix from the bundle, and merges its labels and trusted keys under the config’s own', async () => {
    const file = join(dir, 'bundle.json');
    await writeSecretFile(file, JSON.stringify(bundle()));
    const { config: merged, credentials } = await readUplinkCredentials(config({ enrollmentFile: file }, { labels: { line: '2' }, inference: { enabled: true, trustedKeys: [] } }));
    expect(credentials).toEqual({ servers: ['tls://nats.example:4222'], inboxPrefix: '_INBOX_gw-1', creds: bundle().creds, tls: { ca: bundle().caPem } });
    expect(merged.labels).toEqual({ site: 'north', line: '2' });
    expect(merged.inference.trustedKeys).toEqual([KEY]);
  });

  it('servers in the config win over the bundle’s', async () => {
    const file = join(dir, 'bundle.json');
    await writeSecretFile(file, JSON.stringify(bundle()));
    const { credentials } = await readUplinkCredentials(config({ enrollmentFile: file, servers: ['tls://10.0.0.1:4222'] }));
    expect(credentials?.servers).toEqual(['tls://10.0.0.1:4222']);
  });

  it('refuses a bundle others may read (SECRET_FILE_UNSAFE, naming the file and the fix)', async () => {
    const file = join(dir, 'bundle.json');
    await writeFile(file, JSON.stringify(bundle()));
    await chmod(file, 0o644);
    const { code, message } = await failure(readUplinkCredentials(config({ enrollmentFile: file })));
    expect(code).toBe(ErrorCode.SECRET_FILE_UNSAFE);
    expect(message).toContain(`chmod 600 ${file}`);
  });

  it('refuses a creds file others may read', async () => {
    const file = join(dir, 'agent.creds');
    await writeFile(file, bundle().creds, { mode: 0o640 });
    await chmod(file, 0o640);
    expect((await failure(readUplinkCredentials(config({ servers: ['nats://127.0.0.1:4222'], credsFile: file })))).code).toBe(ErrorCode.SECRET_FILE_UNSAFE);
  });

  it('refuses a bundle written for another agent', async () => {
    const file = join(dir, 'bundle.json');
    await writeSecretFile(file, JSON.stringify(bundle({ agentId: 'gw-2' })));
    const { code, message } = await failure(readUplinkCredentials(config({ enrollmentFile: file })));
    expect(code).toBe(ErrorCode.CONFIG_INVALID);
    expect(message).toMatch(/^uplink\.enrollmentFile: .* was written for agent gw-2, not gw-1$/);
  });

  it('never quotes the file in its errors: a broken bundle holds a seed', async () => {
    const file = join(dir, 'bundle.json');
    await writeSecretFile(file, `{"creds": "${SEED}", oops`);
    const broken = await failure(readUplinkCredentials(config({ enrollmentFile: file })));
    expect(broken.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(broken.message).not.toContain(SEED);
    await writeSecretFile(file, JSON.stringify({ ...bundle(), v: 2 }));
    const wrong = await failure(readUplinkCredentials(config({ enrollmentFile: file })));
    expect(wrong.message).toContain('bad keys: v');
    expect(wrong.message).not.toContain(SEED);
  });

  it('inference without a trusted key anywhere is refused after the merge', async () => {
    const file = join(dir, 'bundle.json');
    await writeSecretFile(file, JSON.stringify(bundle({ trustedKeys: [] })));
    const { code, message } = await failure(readUplinkCredentials(config({ enrollmentFile: file }, { inference: { enabled: true } })));
    expect(code).toBe(ErrorCode.CONFIG_INVALID);
    expect(message).toContain('inference.trustedKeys');
  });
});

describe('agent config: uplink', () => {
  it('wants servers unless an enrolment bundle brings them, and not a creds file beside a bundle', () => {
    expect(() => config({} as never)).toThrow(/uplink\.servers: required unless uplink\.enrollmentFile/);
    expect(() => config({ enrollmentFile: 'b.json', credsFile: 'x.creds' })).toThrow(/uplink\.credsFile: the enrolment bundle brings the credentials/);
    expect(() => config({ servers: ['nats://h:4222'], tls: { certFile: 'c.pem' } })).toThrow(/uplink\.tls\.keyFile: certFile and keyFile go together/);
  });
});
