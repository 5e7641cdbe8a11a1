import { createHmac, randomBytes, scrypt, timingSafeEqual, type BinaryLike } from 'node:crypto';
import { ErrorCode, OutpostError, deviceTopicPrefix, isValidDeviceId } from '@outpost/shared';

// Device authentication and authorization for the embedded broker (DESIGN section 4), kept
// free of aedes so it reads and tests as plain functions; the aedes adapter calls these.

/** scrypt cost N = 2^14 (16 MiB with r = 8), the default of `hashPassword`. */
export const DEFAULT_SCRYPT_COST_LOG2 = 14;
export const DEFAULT_SCRYPT_BLOCK_SIZE = 8;
export const DEFAULT_SCRYPT_PARALLELIZATION = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;

// Bounds on what a stored hash may ask for, so a corrupt or hostile config cannot make every
// CONNECT allocate gigabytes: scrypt needs about 128 * N * r bytes.
const MAX_SCRYPT_MEMORY_BYTES = 256 * 1024 * 1024;
const MAX_SCRYPT_PARALLELIZATION = 16;
const MIN_SALT_BYTES = 8;
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 64;

const HASH_PATTERN = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

interface ScryptParams {
  costN: number;
  blockSize: number;
  parallelization: number;
}

interface ParsedHash extends ScryptParams {
  salt: Buffer;
  key: Buffer;
}

export interface HashPasswordOptions {
  /** log2 of the scrypt cost N; default 14 (N = 16384). */
  costLog2?: number;
}

/**
 * Hashes a device password for the agent config: `scrypt$N$r$p$saltB64$hashB64` with a
 * random 16-byte salt and a 32-byte key (N = 2^14, r = 8, p = 1 unless `costLog2` is given).
 * The result matches `PasswordHashSchema` in shared.
 */
export async function hashPassword(password: string, options: HashPasswordOptions = {}): Promise<string> {
  const costLog2 = options.costLog2 ?? DEFAULT_SCRYPT_COST_LOG2;
  if (!Number.isInteger(costLog2) || costLog2 < 1 || costLog2 > 30) {
    throw new RangeError(`costLog2 must be an integer in [1, 30], got ${costLog2}`);
  }
  const params: ScryptParams = {
    costN: 2 ** costLog2,
    blockSize: DEFAULT_SCRYPT_BLOCK_SIZE,
    parallelization: DEFAULT_SCRYPT_PARALLELIZATION,
  };
  const problem = checkParams(params);
  if (problem !== undefined) throw new RangeError(`costLog2 ${costLog2}: ${problem}`);
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(password, salt, KEY_BYTES, params);
  return `scrypt$${params.costN}$${params.blockSize}$${params.parallelization}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/**
 * Checks a password against a hash made by `hashPassword`, in constant time over the key.
 * A string password is taken as UTF-8, as MQTT clients send it.
 * @throws OutpostError PASSWORD_HASH_INVALID when `encoded` is not such a hash.
 */
export async function verifyPassword(password: string | Buffer, encoded: string): Promise<boolean> {
  return verifyParsed(password, parsePasswordHash(encoded));
}

async function verifyParsed(password: BinaryLike, parsed: ParsedHash): Promise<boolean> {
  const derived = await deriveKey(password, parsed.salt, parsed.key.length, parsed);
  return timingSafeEqual(derived, parsed.key);
}

function deriveKey(password: BinaryLike, salt: Buffer, keyBytes: number, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      password,
      salt,
      keyBytes,
      {
        N: params.costN,
        r: params.blockSize,
        p: params.parallelization,
        // Node refuses above 32 MiB by default; allow what the parameters need, with headroom.
        maxmem: 2 * 128 * params.costN * params.blockSize + 1024 * 1024,
      },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

function checkParams(params: ScryptParams): string | undefined {
  const { costN, blockSize, parallelization } = params;
  if (!Number.isSafeInteger(costN) || costN < 2 || (costN & (costN - 1)) !== 0) return 'N must be a power of two >= 2';
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) return 'r must be >= 1';
  if (!Number.isSafeInteger(parallelization) || parallelization < 1 || parallelization > MAX_SCRYPT_PARALLELIZATION) {
    return `p must be in [1, ${MAX_SCRYPT_PARALLELIZATION}]`;
  }
  if (128 * costN * blockSize > MAX_SCRYPT_MEMORY_BYTES) return `128 * N * r must not exceed ${MAX_SCRYPT_MEMORY_BYTES} bytes`;
  return undefined;
}

/** Strict base64: `Buffer.from` skips junk silently, so re-encode and compare. */
function decodeBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

function parsePasswordHash(encoded: string): ParsedHash {
  const invalid = (why: string): OutpostError =>
    // The hash itself is not secret enough to matter, but keep it out of messages anyway.
    new OutpostError(ErrorCode.PASSWORD_HASH_INVALID, `invalid password hash: ${why}`);
  const match = HASH_PATTERN.exec(encoded);
  if (match === null) throw invalid('expected scrypt$N$r$p$saltB64$hashB64');
  const [, n = '', r = '', p = '', saltB64 = '', keyB64 = ''] = match;
  const params: ScryptParams = { costN: Number(n), blockSize: Number(r), parallelization: Number(p) };
  const problem = checkParams(params);
  if (problem !== undefined) throw invalid(problem);
  const salt = decodeBase64(saltB64);
  if (salt === undefined || salt.length < MIN_SALT_BYTES) throw invalid(`salt must be base64 of at least ${MIN_SALT_BYTES} bytes`);
  const key = decodeBase64(keyB64);
  if (key === undefined || key.length < MIN_KEY_BYTES || key.length > MAX_KEY_BYTES) {
    throw invalid(`hash must be base64 of ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes`);
  }
  return { ...params, salt, key };
}

/** MQTT 3.1.1 CONNACK return codes the authenticator answers with (section 3.2.2.3). */
export const ConnackReturnCode = {
  identifierRejected: 2,
  badUserNameOrPassword: 4,
  notAuthorized: 5,
} as const;
export type ConnackReturnCode = (typeof ConnackReturnCode)[keyof typeof ConnackReturnCode];

/** How a device proved who it is; a config change re-checks live sessions by it. */
export type AuthenticatedVia = { type: 'certificate' } | { type: 'password'; passwordHash: string } | { type: 'anonymous' };

export type AuthResult =
  | { ok: true; deviceId: string; via: AuthenticatedVia }
  | { ok: false; returnCode: ConnackReturnCode; reason: string };

export interface AuthenticateInput {
  clientId: string;
  username?: string | undefined;
  password?: Buffer | undefined;
  /** CN of a client certificate the TLS layer has verified (mTLS); never an unverified one. */
  certificateCommonName?: string | undefined;
}

export interface DeviceCredential {
  id: string;
  /** A `hashPassword` result. */
  passwordHash: string;
}

export interface DeviceAuthenticatorOptions {
  devices: readonly DeviceCredential[];
  /** Accept devices without credentials; their ClientId is their device id. */
  allowAnonymous: boolean;
}

export interface DeviceAuthenticator {
  /** Decides one CONNECT. Never logs or keeps the plaintext password. */
  authenticate(input: AuthenticateInput): Promise<AuthResult>;
  /**
   * Replaces devices and `allowAnonymous` (a config change). Verified passwords stay cached
   * only while their device keeps the same hash.
   * @throws OutpostError PASSWORD_HASH_INVALID or CONFIG_INVALID, leaving the old settings in place.
   */
  update(options: DeviceAuthenticatorOptions): void;
  /**
   * Whether a session authenticated `via` would still be let in under the current settings:
   * false for a device removed, whose password changed, or anonymous where that is no longer allowed.
   */
  stillValid(deviceId: string, via: AuthenticatedVia): boolean;
}

// Unknown user and wrong password must not be told apart by a client (which ids exist is
// not its business), so they share this text and both pay one scrypt.
const BAD_CREDENTIALS = 'bad user name or password';

interface Settings {
  devices: Map<string, { passwordHash: string; parsed: ParsedHash }>;
  allowAnonymous: boolean;
  /** Same scrypt parameters as a configured device, to spend the same time on an unknown user. */
  decoy: ParsedHash | undefined;
}

function resolveSettings(options: DeviceAuthenticatorOptions): Settings {
  const devices: Settings['devices'] = new Map();
  for (const [index, device] of options.devices.entries()) {
    if (!isValidDeviceId(device.id)) {
      throw new OutpostError(ErrorCode.CONFIG_INVALID, `devices.${index}.id: invalid device id ${JSON.stringify(device.id)}`);
    }
    if (devices.has(device.id)) {
      throw new OutpostError(ErrorCode.CONFIG_INVALID, `devices.${index}.id: duplicate device id ${JSON.stringify(device.id)}`);
    }
    let parsed: ParsedHash;
    try {
      parsed = parsePasswordHash(device.passwordHash);
    } catch (err) {
      throw new OutpostError(ErrorCode.PASSWORD_HASH_INVALID, `devices.${index}.passwordHash: ${(err as Error).message}`, {
        cause: err,
        details: { deviceId: device.id },
      });
    }
    devices.set(device.id, { passwordHash: device.passwordHash, parsed });
  }
  const first = devices.values().next();
  const decoy =
    first.done === true
      ? undefined
      : { ...first.value.parsed, salt: randomBytes(first.value.parsed.salt.length), key: randomBytes(first.value.parsed.key.length) };
  return { devices, allowAnonymous: options.allowAnonymous, decoy };
}

function refuse(returnCode: ConnackReturnCode, reason: string): AuthResult {
  return { ok: false, returnCode, reason };
}

/**
 * Creates the broker's CONNECT authenticator. Rules, checked in this order:
 * 1. empty ClientId: 2 (MQTT 3.1.3-8 allows it only for clean sessions; the agent always
 *    refuses it because the ClientId is the device identity);
 * 2. verified certificate CN: the device is the CN; ClientId must equal it (else 2), a user
 *    name other than the CN is 4, a CN outside the device id pattern is 5;
 * 3. user name: must be a configured device id whose password verifies (else 4), and the
 *    ClientId must equal it (else 2);
 * 4. no user name: only with `allowAnonymous` (else 5); the device is the ClientId, which must
 *    be a valid device id (else 2) and not a configured device (else 5, it needs its password).
 * Successful verifications are cached in memory under an HMAC-SHA256 of (device id, stored
 * hash, password) with a per-process random key, so reconnect storms pay scrypt once.
 */
export function createDeviceAuthenticator(options: DeviceAuthenticatorOptions): DeviceAuthenticator {
  let settings = resolveSettings(options);
  const cacheKeySecret = randomBytes(32);
  /** Last verified cache key per device id: bounded by the number of devices. */
  const verified = new Map<string, Buffer>();
  /** Verifications running now, so a burst of identical CONNECTs shares one scrypt. */
  const inFlight = new Map<string, Promise<boolean>>();

  function cacheKey(deviceId: string, passwordHash: string, password: Buffer): Buffer {
    // Device ids and hashes contain no NUL, so this framing is unambiguous with the password last.
    return createHmac('sha256', cacheKeySecret).update(deviceId).update('\0').update(passwordHash).update('\0').update(password).digest();
  }

  async function checkPassword(deviceId: string, device: { passwordHash: string; parsed: ParsedHash }, password: Buffer): Promise<boolean> {
    const key = cacheKey(deviceId, device.passwordHash, password);
    const cached = verified.get(deviceId);
    if (cached !== undefined && timingSafeEqual(cached, key)) return true;
    const id = key.toString('base64');
    let pending = inFlight.get(id);
    if (pending === undefined) {
      pending = verifyParsed(password, device.parsed).finally(() => inFlight.delete(id));
      inFlight.set(id, pending);
    }
    const ok = await pending;
    // Cache only if the device still has this hash (an update may have run meanwhile).
    if (ok && settings.devices.get(deviceId)?.passwordHash === device.passwordHash) verified.set(deviceId, key);
    return ok;
  }

  function authenticateCertificate(input: AuthenticateInput, commonName: string): AuthResult {
    if (!isValidDeviceId(commonName)) return refuse(ConnackReturnCode.notAuthorized, 'certificate common name is not a valid device id');
    if (input.username !== undefined && input.username !== commonName) {
      return refuse(ConnackReturnCode.badUserNameOrPassword, 'user name does not match the certificate common name');
    }
    if (input.clientId !== commonName) return refuse(ConnackReturnCode.identifierRejected, 'ClientId must equal the device id of the certificate');
    return { ok: true, deviceId: commonName, via: { type: 'certificate' } };
  }

  async function authenticateCredentials(input: AuthenticateInput, username: string): Promise<AuthResult> {
    const { password } = input;
    if (password === undefined) return refuse(ConnackReturnCode.badUserNameOrPassword, BAD_CREDENTIALS);
    const device = settings.devices.get(username);
    if (device === undefined) {
      if (settings.decoy !== undefined) await verifyParsed(password, settings.decoy);
      return refuse(ConnackReturnCode.badUserNameOrPassword, BAD_CREDENTIALS);
    }
    if (!(await checkPassword(username, device, password))) return refuse(ConnackReturnCode.badUserNameOrPassword, BAD_CREDENTIALS);
    if (input.clientId !== username) return refuse(ConnackReturnCode.identifierRejected, 'ClientId must equal the device id (user name)');
    return { ok: true, deviceId: username, via: { type: 'password', passwordHash: device.passwordHash } };
  }

  function authenticateAnonymous(input: AuthenticateInput): AuthResult {
    if (!settings.allowAnonymous) return refuse(ConnackReturnCode.notAuthorized, 'anonymous devices are not allowed');
    // MQTT 3.1.2-22: no password without a user name.
    if (input.password !== undefined) return refuse(ConnackReturnCode.badUserNameOrPassword, 'password without a user name');
    if (!isValidDeviceId(input.clientId)) {
      return refuse(ConnackReturnCode.identifierRejected, 'ClientId of an anonymous device must be a valid device id');
    }
    if (settings.devices.has(input.clientId)) {
      return refuse(ConnackReturnCode.notAuthorized, 'this device id has credentials; anonymous use is refused');
    }
    return { ok: true, deviceId: input.clientId, via: { type: 'anonymous' } };
  }

  return {
    async authenticate(input) {
      if (input.clientId.length === 0) {
        return refuse(ConnackReturnCode.identifierRejected, 'empty ClientId is refused: the ClientId is the device identity (MQTT 3.1.3-8)');
      }
      if (input.certificateCommonName !== undefined) return authenticateCertificate(input, input.certificateCommonName);
      if (input.username !== undefined) return authenticateCredentials(input, input.username);
      return authenticateAnonymous(input);
    },
    update(next) {
      const resolved = resolveSettings(next);
      for (const deviceId of verified.keys()) {
        if (resolved.devices.get(deviceId)?.passwordHash !== settings.devices.get(deviceId)?.passwordHash) verified.delete(deviceId);
      }
      settings = resolved;
    },
    stillValid(deviceId, via) {
      switch (via.type) {
        case 'certificate':
          return true;
        case 'password':
          return settings.devices.get(deviceId)?.passwordHash === via.passwordHash;
        case 'anonymous':
          return settings.allowAnonymous && !settings.devices.has(deviceId);
      }
    },
  };
}

// ACL. DESIGN section 4: a device may publish and subscribe only under `devices/{its own id}/`.

/** Levels right under a device's prefix that only the agent publishes (DESIGN section 6). */
const AGENT_OWNED_LEVELS: ReadonlySet<string> = new Set(['inference', 'errors']);

function ownPrefix(deviceId: string): string | undefined {
  return isValidDeviceId(deviceId) ? deviceTopicPrefix(deviceId) : undefined;
}

/**
 * True when `deviceId` may publish on `topic`: a topic name under `devices/{deviceId}/`
 * (DESIGN section 4), never `devices/{deviceId}/inference` or `.../errors` or anything below
 * them, which the agent publishes and a device must not spoof.
 */
export function canPublish(deviceId: string, topic: string): boolean {
  const prefix = ownPrefix(deviceId);
  if (prefix === undefined || !topic.startsWith(prefix) || topic.length === prefix.length) return false;
  // MQTT 3.3.2-2: a topic name has no wildcards; MQTT 1.5.3-2: no U+0000.
  if (topic.includes('+') || topic.includes('#') || topic.includes('\u0000')) return false;
  const rest = topic.slice(prefix.length);
  const slash = rest.indexOf('/');
  const firstLevel = slash < 0 ? rest : rest.slice(0, slash);
  return !AGENT_OWNED_LEVELS.has(firstLevel);
}

/**
 * True when `deviceId` may subscribe to `filter`: a well-formed filter whose levels start
 * with the literal `devices/{deviceId}/` (DESIGN section 4), so wildcards can only widen it
 * inside the device's own tree. `#`, `devices/#`, `devices/+/...`, `$SYS/...` and `$share/...`
 * are refused.
 */
export function canSubscribe(deviceId: string, filter: string): boolean {
  const prefix = ownPrefix(deviceId);
  if (prefix === undefined || !filter.startsWith(prefix) || filter.length === prefix.length) return false;
  return isWellFormedFilter(filter);
}

/** True when `deviceId` may set a Will on `willTopic`: the same rules as `canPublish`. */
export function canUseWill(deviceId: string, willTopic: string): boolean {
  return canPublish(deviceId, willTopic);
}

/** MQTT 4.7.1: `#` only alone as the last level, `+` only alone in its level; no U+0000. */
function isWellFormedFilter(filter: string): boolean {
  if (filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((level, index) => {
    if (level === '#') return index === levels.length - 1;
    if (level === '+') return true;
    return !level.includes('#') && !level.includes('+');
  });
}
