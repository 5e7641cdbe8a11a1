import { ErrorCode, PasswordHashSchema, isOutpostError } from '@outpost/shared';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  canPublish,
  canSubscribe,
  canUseWill,
  createDeviceAuthenticator,
  hashPassword,
  verifyPassword,
  type AuthResult,
  type DeviceAuthenticator,
} from './device-auth.js';

// Low scrypt cost keeps the suite fast; the format and code paths are the same as N = 2^14.
const COST = { costLog2: 4 };

async function expectHashError(promise: Promise<unknown>): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isOutpostError(error, ErrorCode.PASSWORD_HASH_INVALID)).toBe(true);
}

describe('hashPassword / verifyPassword', () => {
  it('makes a hash in the config format with the default parameters', async () => {
    const hash = await hashPassword('s3cret');
    expect(PasswordHashSchema.safeParse(hash).success).toBe(true);
    const [scheme, n, r, p, salt, key] = hash.split('$');
    expect([scheme, n, r, p]).toEqual(['scrypt', '16384', '8', '1']);
    expect(Buffer.from(salt ?? '', 'base64')).toHaveLength(16);
    expect(Buffer.from(key ?? '', 'base64')).toHaveLength(32);
    expect(hash).not.toContain('s3cret');
    expect(await verifyPassword('s3cret', hash)).toBe(true);
  });

  it('salts every hash', async () => {
    const [a, b] = await Promise.all([hashPassword('same', COST), hashPassword('same', COST)]);
    expect(a).not.toBe(b);
    expect(a.startsWith('scrypt$16$8$1$')).toBe(true);
  });

  it('accepts the right password as string or UTF-8 bytes and refuses others', async () => {
    const hash = await hashPassword('pässwörd', COST);
    expect(await verifyPassword('pässwörd', hash)).toBe(true);
    expect(await verifyPassword(Buffer.from('pässwörd', 'utf8'), hash)).toBe(true);
    expect(await verifyPassword('passwörd', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
    expect(await verifyPassword(Buffer.from('pässwörd', 'latin1'), hash)).toBe(false);
  });

  it('throws PASSWORD_HASH_INVALID for a malformed hash', async () => {
    const good = await hashPassword('x', COST);
    const [, , , , salt = '', key = ''] = good.split('$');
    const malformed = [
      '',
      'plain-text-password',
      `bcrypt$16$8$1$${salt}$${key}`,
      `scrypt$16$8$1$${salt}`,
      `scrypt$15$8$1$${salt}$${key}`, // N not a power of two
      `scrypt$1$8$1$${salt}$${key}`,
      `scrypt$16$0$1$${salt}$${key}`,
      `scrypt$16$8$0$${salt}$${key}`,
      `scrypt$1073741824$8$1$${salt}$${key}`, // would need 1 TiB
      `scrypt$16$8$1$${salt}$${key}x`, // not canonical base64
      `scrypt$16$8$1$AAAA$${key}`, // 3-byte salt
      `scrypt$16$8$1$${salt}$AAAA`, // 3-byte key
    ];
    for (const hash of malformed) await expectHashError(verifyPassword('x', hash));
  });

  it('refuses a cost outside the supported range', async () => {
    await expect(hashPassword('x', { costLog2: 0 })).rejects.toThrow(RangeError);
    await expect(hashPassword('x', { costLog2: 1.5 })).rejects.toThrow(RangeError);
    await expect(hashPassword('x', { costLog2: 24 })).rejects.toThrow(RangeError);
  });
});

describe('createDeviceAuthenticator', () => {
  let sensorHash: string;
  let pumpHash: string;
  const pw = (text: string): Buffer => Buffer.from(text, 'utf8');

  beforeAll(async () => {
    [sensorHash, pumpHash] = await Promise.all([hashPassword('sensor-pw', COST), hashPassword('pump-pw', COST)]);
  });

  function make(allowAnonymous: boolean): DeviceAuthenticator {
    return createDeviceAuthenticator({
      devices: [
        { id: 'sensor-1', passwordHash: sensorHash },
        { id: 'pump.2', passwordHash: pumpHash },
      ],
      allowAnonymous,
    });
  }

  function refused(result: AuthResult): { returnCode: number; reason: string } {
    if (result.ok) throw new Error(`expected a refusal, got device ${result.deviceId}`);
    return { returnCode: result.returnCode, reason: result.reason };
  }

  it('accepts a configured device with its password and ClientId', async () => {
    const auth = make(false);
    expect(await auth.authenticate({ clientId: 'sensor-1', username: 'sensor-1', password: pw('sensor-pw') })).toMatchObject({ ok: true, deviceId: 'sensor-1' });
    expect(await auth.authenticate({ clientId: 'pump.2', username: 'pump.2', password: pw('pump-pw') })).toMatchObject({ ok: true, deviceId: 'pump.2' });
  });

  it('refuses an empty ClientId with 2 in every mode (MQTT 3.1.3-8)', async () => {
    for (const allowAnonymous of [false, true]) {
      const auth = make(allowAnonymous);
      expect(refused(await auth.authenticate({ clientId: '', username: 'sensor-1', password: pw('sensor-pw') })).returnCode).toBe(2);
      expect(refused(await auth.authenticate({ clientId: '' })).returnCode).toBe(2);
      expect(refused(await auth.authenticate({ clientId: '', certificateCommonName: 'sensor-1' })).returnCode).toBe(2);
    }
  });

  it('answers 4 with the same reason for an unknown user, a wrong or a missing password', async () => {
    const auth = make(true);
    const unknown = refused(await auth.authenticate({ clientId: 'ghost', username: 'ghost', password: pw('sensor-pw') }));
    const wrong = refused(await auth.authenticate({ clientId: 'sensor-1', username: 'sensor-1', password: pw('nope') }));
    const missing = refused(await auth.authenticate({ clientId: 'sensor-1', username: 'sensor-1' }));
    const otherDevicesPassword = refused(await auth.authenticate({ clientId: 'sensor-1', username: 'sensor-1', password: pw('pump-pw') }));
    for (const result of [unknown, wrong, missing, otherDevicesPassword]) expect(result).toEqual(unknown);
    expect(unknown.returnCode).toBe(4);
    expect(unknown.reason).not.toContain('ghost');
  });

  it('binds the ClientId to the authenticated device: another ClientId is 2', async () => {
    const auth = make(false);
    const result = refused(await auth.authenticate({ clientId: 'pump.2', username: 'sensor-1', password: pw('sensor-pw') }));
    expect(result.returnCode).toBe(2);
  });

  it('authenticates a verified certificate CN as that device', async () => {
    const auth = make(false);
    expect(await auth.authenticate({ clientId: 'cam-9', certificateCommonName: 'cam-9' })).toMatchObject({ ok: true, deviceId: 'cam-9' });
    expect(await auth.authenticate({ clientId: 'sensor-1', certificateCommonName: 'sensor-1' })).toMatchObject({ ok: true, deviceId: 'sensor-1' });
    expect(refused(await auth.authenticate({ clientId: 'cam-8', certificateCommonName: 'cam-9' })).returnCode).toBe(2);
    expect(refused(await auth.authenticate({ clientId: 'cam-9', username: 'sensor-1', password: pw('sensor-pw'), certificateCommonName: 'cam-9' })).returnCode).toBe(4);
    expect(refused(await auth.authenticate({ clientId: 'cam 9', certificateCommonName: 'cam 9' })).returnCode).toBe(5);
  });

  it('refuses anonymous devices with 5 unless allowed', async () => {
    expect(refused(await make(false).authenticate({ clientId: 'anon-1' })).returnCode).toBe(5);
    expect(await make(true).authenticate({ clientId: 'anon-1' })).toMatchObject({ ok: true, deviceId: 'anon-1' });
  });

  it('refuses an anonymous device claiming a credentialed id (5) or an id outside the pattern (2)', async () => {
    const auth = make(true);
    expect(refused(await auth.authenticate({ clientId: 'sensor-1' })).returnCode).toBe(5);
    expect(refused(await auth.authenticate({ clientId: 'has/slash' })).returnCode).toBe(2);
    expect(refused(await auth.authenticate({ clientId: 'x'.repeat(65) })).returnCode).toBe(2);
    expect(refused(await auth.authenticate({ clientId: 'anon-1', password: pw('x') })).returnCode).toBe(4);
  });

  it('serves a repeated login from the cache with the same answer', async () => {
    const auth = make(false);
    const input = { clientId: 'sensor-1', username: 'sensor-1', password: pw('sensor-pw') };
    const results = [await auth.authenticate(input), ...(await Promise.all(Array.from({ length: 20 }, () => auth.authenticate(input))))];
    for (const result of results) expect(result).toMatchObject({ ok: true, deviceId: 'sensor-1' });
    // A cached success must not make a wrong password pass.
    expect(refused(await auth.authenticate({ ...input, password: pw('sensor-pw ') })).returnCode).toBe(4);
  });

  it('honours a changed hash after a successful, cached login', async () => {
    const auth = make(false);
    const oldLogin = { clientId: 'sensor-1', username: 'sensor-1', password: pw('sensor-pw') };
    expect((await auth.authenticate(oldLogin)).ok).toBe(true);
    const rotated = await hashPassword('rotated-pw', COST);
    auth.update({ devices: [{ id: 'sensor-1', passwordHash: rotated }], allowAnonymous: false });
    expect(refused(await auth.authenticate(oldLogin)).returnCode).toBe(4);
    expect(await auth.authenticate({ ...oldLogin, password: pw('rotated-pw') })).toMatchObject({ ok: true, deviceId: 'sensor-1' });
    // Removed devices are unknown users now.
    expect(refused(await auth.authenticate({ clientId: 'pump.2', username: 'pump.2', password: pw('pump-pw') })).returnCode).toBe(4);
  });

  it('rejects a config with a malformed hash or a duplicate id up front', async () => {
    expect(() => createDeviceAuthenticator({ devices: [{ id: 'a', passwordHash: 'scrypt$3$8$1$AAAA$AAAA' }], allowAnonymous: false })).toThrow(
      expect.objectContaining({ code: ErrorCode.PASSWORD_HASH_INVALID }),
    );
    const hash = await hashPassword('x', COST);
    expect(() =>
      createDeviceAuthenticator({
        devices: [
          { id: 'a', passwordHash: hash },
          { id: 'a', passwordHash: hash },
        ],
        allowAnonymous: false,
      }),
    ).toThrow(expect.objectContaining({ code: ErrorCode.CONFIG_INVALID }));
    const auth = createDeviceAuthenticator({ devices: [{ id: 'a', passwordHash: hash }], allowAnonymous: false });
    expect(() => auth.update({ devices: [{ id: 'a', passwordHash: 'nope' }], allowAnonymous: true })).toThrow(
      expect.objectContaining({ code: ErrorCode.PASSWORD_HASH_INVALID }),
    );
    // A failed update leaves the old settings in place.
    expect(await auth.authenticate({ clientId: 'a', username: 'a', password: pw('x') })).toMatchObject({ ok: true, deviceId: 'a' });
    expect(refused(await auth.authenticate({ clientId: 'anon' })).returnCode).toBe(5);
  });
});

describe('ACL (DESIGN section 4: only under devices/{own id}/)', () => {
  const publishTable: Array<[topic: string, allowed: boolean]> = [
    ['devices/a/telemetry', true],
    ['devices/a/x', true],
    ['devices/a/x/y/z', true],
    ['devices/a/telemetry/extra', true],
    ['devices/a/../b', true], // MQTT has no `..`: a literal level under devices/a/
    ['devices/a', false],
    ['devices/a/', false],
    ['devices/ab/x', false],
    ['devices/b/telemetry', false],
    ['devices/A/x', false],
    ['devices//a/x', false],
    ['/devices/a/x', false],
    ['devices/a/inference', false],
    ['devices/a/errors', false],
    ['devices/a/errors/x', false],
    ['devices/a/inference/', false],
    ['devices/a/+', false],
    ['devices/a/#', false],
    ['devices/a/x\u0000', false],
    ['$SYS/broker/uptime', false],
    ['telemetry', false],
  ];

  it.each(publishTable)('publish %j -> %s', (topic, allowed) => {
    expect(canPublish('a', topic)).toBe(allowed);
    expect(canUseWill('a', topic)).toBe(allowed);
  });

  const subscribeTable: Array<[filter: string, allowed: boolean]> = [
    ['devices/a/#', true],
    ['devices/a/+', true],
    ['devices/a/telemetry', true],
    ['devices/a/inference', true],
    ['devices/a/errors', true],
    ['devices/a/+/x/#', true],
    ['devices/a/../b', true],
    ['#', false],
    ['+/a/#', false],
    ['devices/#', false],
    ['devices/+/telemetry', false],
    ['devices/+/#', false],
    ['devices/a', false],
    ['devices/a/', false],
    ['devices/ab/#', false],
    ['devices/a#', false],
    ['devices/a+/x', false],
    ['devices/a/x#', false],
    ['devices/a/#/x', false],
    ['devices/a/x+', false],
    ['$SYS/#', false],
    ['$share/g/devices/a/#', false],
    ['devices/a/\u0000', false],
  ];

  it.each(subscribeTable)('subscribe %j -> %s', (filter, allowed) => {
    expect(canSubscribe('a', filter)).toBe(allowed);
  });

  it('handles device ids with regex-special characters literally', () => {
    expect(canPublish('a.b', 'devices/a.b/x')).toBe(true);
    expect(canPublish('a.b', 'devices/aXb/x')).toBe(false);
    expect(canSubscribe('a.b', 'devices/aXb/#')).toBe(false);
  });

  it('refuses everything for a device id outside the pattern instead of throwing', () => {
    expect(canPublish('', 'devices//x')).toBe(false);
    expect(canPublish('a/b', 'devices/a/b/x')).toBe(false);
    expect(canSubscribe('+', 'devices/+/#')).toBe(false);
    expect(canUseWill('#', 'devices/#/x')).toBe(false);
  });
});

describe('stillValid: live sessions re-checked after a config change', () => {
  it('keeps certificate sessions, drops a removed device or a changed password, and anonymous ones once refused', async () => {
    const hash = await hashPassword('pw', { costLog2: 10 });
    const auth = createDeviceAuthenticator({ devices: [{ id: 'sensor-1', passwordHash: hash }], allowAnonymous: true });
    const password = await auth.authenticate({ clientId: 'sensor-1', username: 'sensor-1', password: Buffer.from('pw') });
    const anonymous = await auth.authenticate({ clientId: 'anon-1' });
    const certificate = await auth.authenticate({ clientId: 'cam-1', certificateCommonName: 'cam-1' });
    if (!password.ok || !anonymous.ok || !certificate.ok) throw new Error('setup failed');
    expect([auth.stillValid('sensor-1', password.via), auth.stillValid('anon-1', anonymous.via), auth.stillValid('cam-1', certificate.via)]).toEqual([true, true, true]);
    auth.update({ devices: [{ id: 'sensor-1', passwordHash: await hashPassword('new', { costLog2: 10 }) }, { id: 'anon-1', passwordHash: hash }], allowAnonymous: true });
    expect([auth.stillValid('sensor-1', password.via), auth.stillValid('anon-1', anonymous.via), auth.stillValid('cam-1', certificate.via)]).toEqual([false, false, true]);
    auth.update({ devices: [{ id: 'sensor-1', passwordHash: hash }], allowAnonymous: false });
    expect([auth.stillValid('sensor-1', password.via), auth.stillValid('anon-9', anonymous.via)]).toEqual([true, false]);
  });
});
