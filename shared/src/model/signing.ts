import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { ErrorCode, OutpostError } from '../errors.js';
import { invalidManifestError, parseModelManifest, SignedManifestSchema, type ModelManifest, type SignedManifest, type TrustedKey } from './manifest.js';

/**
 * Model manifest signing (DESIGN section 3): an ed25519 signature (node:crypto) over the
 * canonical JSON encoding of the manifest. Agents trust only the public keys in their config,
 * and load a model only after its bytes match the manifest's size and sha256.
 */

/**
 * Canonical JSON: object keys sorted (by UTF-16 code units, JavaScript's default order), no
 * whitespace, numbers and strings as JSON.stringify writes them. Keys whose value is
 * undefined are left out (as JSON.stringify does). Refuses what has no stable JSON encoding:
 * NaN and Infinity, undefined in arrays, bigint, functions, symbols, and objects that are not
 * plain (Date, Map, class instances) — MODEL_INVALID naming the path.
 */
export function canonicalJson(value: unknown): string {
  return encodeCanonical(value, '(root)');
}

function encodeCanonical(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw notCanonical(path, `${value} has no JSON encoding`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw notCanonical(path, `a ${typeof value} has no JSON encoding`);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item: unknown, i) => {
      if (item === undefined) throw notCanonical(`${path}.${i}`, 'undefined has no JSON encoding in an array');
      return encodeCanonical(item, `${path}.${i}`);
    }).join(',')}]`;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw notCanonical(path, 'only plain objects have a canonical encoding');
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${encodeCanonical(item, path === '(root)' ? key : `${path}.${key}`)}`);
  }
  return `{${parts.join(',')}}`;
}

function notCanonical(path: string, message: string): OutpostError {
  return new OutpostError(ErrorCode.MODEL_INVALID, `${path}: ${message}`, { details: { path } });
}

/** The bytes a signature covers. */
function signedBytes(manifest: ModelManifest): Buffer {
  return Buffer.from(canonicalJson(manifest), 'utf8');
}

function keyInvalid(what: string, cause?: unknown): OutpostError {
  return new OutpostError(ErrorCode.MODEL_KEY_INVALID, `${what} is not an ed25519 key${cause instanceof Error ? `: ${cause.message}` : ''}`, cause === undefined ? {} : { cause });
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw keyInvalid(`${what} (${key.asymmetricKeyType ?? key.type})`);
  return key;
}

function toPrivateKey(privateKey: string | KeyObject): KeyObject {
  if (typeof privateKey !== 'string') {
    if (privateKey.type !== 'private') throw keyInvalid('the signing key (not a private key)');
    return requireEd25519(privateKey, 'the signing key');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKey);
  } catch (cause) {
    throw keyInvalid('the signing key', cause);
  }
  return requireEd25519(key, 'the signing key');
}

// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 raw key bytes follow it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const RAW_KEY_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/**
 * Parses a trusted public key: PEM (SPKI) or base64 of the 32 raw bytes (the two forms
 * TrustedKeySchema allows). MODEL_KEY_INVALID when it is neither, not ed25519, or a private
 * key (node:crypto would quietly derive the public half, and a signing key copied into every
 * agent's config is a leaked signing key).
 */
export function parsePublicKey(publicKey: string): KeyObject {
  const text = publicKey.trim();
  if (text.includes('PRIVATE KEY')) {
    throw new OutpostError(ErrorCode.MODEL_KEY_INVALID, 'the public key is a PRIVATE KEY: trust only the public half (SPKI PEM or base64 of the 32 raw bytes), never the signing key');
  }
  let key: KeyObject;
  try {
    key = RAW_KEY_BASE64.test(text)
      ? createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(text, 'base64')]), format: 'der', type: 'spki' })
      : createPublicKey(text);
  } catch (cause) {
    throw keyInvalid('the public key', cause);
  }
  return requireEd25519(key, 'the public key');
}

/**
 * The public key (SPKI PEM, the TrustedKey `publicKey` form) of a PEM private or public
 * ed25519 key. MODEL_KEY_INVALID for anything else.
 */
export function publicKeyFromPem(pem: string): string {
  let key: KeyObject;
  try {
    key = pem.includes('PRIVATE KEY') ? createPublicKey(createPrivateKey(pem)) : createPublicKey(pem);
  } catch (cause) {
    throw keyInvalid('the PEM key', cause);
  }
  return requireEd25519(key, 'the PEM key').export({ format: 'pem', type: 'spki' }).toString();
}

/** A new signing key pair; keep `privateKeyPem` secret, put `trustedKey` in agent configs. */
export interface SigningKey {
  keyId: string;
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** SPKI PEM. */
  publicKeyPem: string;
  trustedKey: TrustedKey;
}

/** Generates an ed25519 key pair named `keyId` (must match ^[A-Za-z0-9_.-]{1,64}$). */
export function generateSigningKey(keyId: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateKeyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const publicKeyPem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
  return { keyId, privateKeyPem, publicKeyPem, trustedKey: { keyId, publicKey: publicKeyPem } };
}

/**
 * Signs a manifest with an ed25519 private key (PKCS#8 PEM or KeyObject). The manifest is
 * validated first (MODEL_INVALID with the path of a bad field) and the returned copy is the
 * validated one, so what is signed is exactly what a verifier will read.
 */
export function signManifest(manifest: ModelManifest, privateKey: string | KeyObject, keyId: string): SignedManifest {
  const parsed = parseModelManifest(manifest);
  const key = toPrivateKey(privateKey);
  const signature = sign(null, signedBytes(parsed), key).toString('base64');
  const signed = { manifest: parsed, signature: { algorithm: 'ed25519' as const, keyId, value: signature } };
  // Refuses a keyId the verifier could never match (the schema's pattern) at signing time.
  const check = SignedManifestSchema.safeParse(signed);
  if (!check.success) throw invalidManifestError('signed manifest (cannot sign)', check.error);
  return signed;
}

/**
 * Verifies an untrusted signed manifest (e.g. a parsed `.manifest.json`) and returns the
 * manifest. Checks, in order, each failure with its own code:
 * - shape (SignedManifestSchema): MODEL_INVALID, `path.to.field: message` per problem;
 * - `signature.keyId` in `trustedKeys`: MODEL_KEY_UNTRUSTED (a listed key that does not parse:
 *   MODEL_KEY_INVALID);
 * - the ed25519 signature over the canonical manifest: MODEL_SIGNATURE_INVALID;
 * - `nowMs` (epoch ms) after `expiresAt`: MODEL_EXPIRED.
 * The digest of the artifact is checked separately by `verifyModelArtifact`.
 */
export function verifySignedManifest(input: unknown, trustedKeys: readonly TrustedKey[], nowMs: number): ModelManifest {
  const parsed = SignedManifestSchema.safeParse(input);
  if (!parsed.success) throw invalidManifestError('signed manifest', parsed.error);
  const { manifest, signature } = parsed.data;
  const trusted = trustedKeys.find((k) => k.keyId === signature.keyId);
  if (trusted === undefined) {
    throw new OutpostError(ErrorCode.MODEL_KEY_UNTRUSTED, `manifest ${manifest.name}@${manifest.version} is signed with key ${JSON.stringify(signature.keyId)}, which is not among the trusted keys`, {
      details: { keyId: signature.keyId, trustedKeyIds: trustedKeys.map((k) => k.keyId) },
    });
  }
  const publicKey = parsePublicKey(trusted.publicKey);
  // The signature covers the raw manifest as received, not the parsed copy: zod drops unknown
  // keys, and a field added after signing must fail verification rather than be ignored.
  const raw = (input as { manifest: unknown }).manifest;
  let ok: boolean;
  try {
    ok = verify(null, Buffer.from(canonicalJson(raw), 'utf8'), publicKey, Buffer.from(signature.value, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new OutpostError(ErrorCode.MODEL_SIGNATURE_INVALID, `manifest ${manifest.name}@${manifest.version}: signature does not verify with trusted key ${JSON.stringify(signature.keyId)}`, {
      details: { keyId: signature.keyId },
    });
  }
  // Written so that NaN (an unparsable time, or a caller's bad clock value) refuses: fail closed.
  if (!(nowMs <= Date.parse(manifest.expiresAt))) {
    throw new OutpostError(ErrorCode.MODEL_EXPIRED, `manifest ${manifest.name}@${manifest.version} expired at ${manifest.expiresAt}`, {
      details: { expiresAt: manifest.expiresAt, nowMs },
    });
  }
  return manifest;
}

/** Lowercase hex sha256 of some bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Checks model bytes against their (verified) manifest: size first, then sha256.
 * MODEL_DIGEST_MISMATCH with expected and actual values in `details`.
 */
export function verifyModelArtifact(bytes: Uint8Array, manifest: Pick<ModelManifest, 'name' | 'version' | 'artifact'>): void {
  const { sizeBytes, sha256 } = manifest.artifact;
  if (bytes.byteLength !== sizeBytes) {
    throw new OutpostError(ErrorCode.MODEL_DIGEST_MISMATCH, `model ${manifest.name}@${manifest.version}: artifact is ${bytes.byteLength} bytes, the manifest says ${sizeBytes}`, {
      details: { expectedSizeBytes: sizeBytes, actualSizeBytes: bytes.byteLength },
    });
  }
  const actual = sha256Hex(bytes);
  if (actual !== sha256) {
    throw new OutpostError(ErrorCode.MODEL_DIGEST_MISMATCH, `model ${manifest.name}@${manifest.version}: artifact sha256 ${actual} does not match the manifest's ${sha256}`, {
      details: { expectedSha256: sha256, actualSha256: actual },
    });
  }
}
