import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import {
  ErrorCode,
  generateSigningKey,
  OutpostError,
  publicKeyFromPem,
  signManifest,
  type SignedManifest,
  type TrustedKey,
} from '@outpost/shared';
import { readManifestFile } from './manifest-file.js';

/** The dev signing key's file name inside the repository's git-ignored `.keys/` folder. */
export const DEV_KEY_FILE_NAME = 'dev-signing-key.pem';

/** A signing key file: PKCS#8 PEM, with its public key next to it as `<name>.pub.pem`. */
export interface SigningKeyFile {
  keyFile: string;
  keyId: string;
  privateKeyPem: string;
  trustedKey: TrustedKey;
  /** True when this call created the key. */
  generated: boolean;
}

function publicKeyFile(keyFile: string): string {
  const ext = extname(keyFile);
  return join(dirname(keyFile), `${basename(keyFile, ext)}.pub.pem`);
}

/** Key ids must match ^[A-Za-z0-9_.-]{1,64}$; the default is the key file's name. */
export function defaultKeyId(keyFile: string): string {
  const id = basename(keyFile, extname(keyFile)).replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64);
  return id === '' ? 'dev' : id;
}

/**
 * Reads an ed25519 private key (PKCS#8 PEM). When the file does not exist and `generate` is
 * set, creates one (mode 0600, its folder 0700) and its public key `<name>.pub.pem`: the dev
 * key, generated on first use, never committed.
 */
export async function loadOrCreateSigningKey(keyFile: string, options: { keyId?: string; generate: boolean }): Promise<SigningKeyFile> {
  const keyId = options.keyId ?? defaultKeyId(keyFile);
  let pem: string | undefined;
  try {
    pem = await readFile(keyFile, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT' || !options.generate) {
      throw new OutpostError(ErrorCode.MODEL_KEY_INVALID, `cannot read signing key ${keyFile}: ${(cause as Error).message}`, { cause });
    }
  }
  if (pem !== undefined) return { keyFile, keyId, privateKeyPem: pem, trustedKey: { keyId, publicKey: publicKeyFromPem(pem) }, generated: false };
  const key = generateSigningKey(keyId);
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  // 'wx': never overwrite a key another process created meanwhile.
  await writeFile(keyFile, key.privateKeyPem, { mode: 0o600, flag: 'wx' });
  await chmod(keyFile, 0o600);
  await writeFile(publicKeyFile(keyFile), key.publicKeyPem);
  return { keyFile, keyId, privateKeyPem: key.privateKeyPem, trustedKey: key.trustedKey, generated: true };
}

/** Where `signManifestFile` writes by default: `x.manifest.json` -> `x.signed.json`. */
export function defaultSignedFile(manifestFile: string): string {
  return manifestFile.endsWith('.manifest.json') ? `${manifestFile.slice(0, -'.manifest.json'.length)}.signed.json` : `${manifestFile}.signed.json`;
}

/**
 * Signs an unsigned manifest file (a ModelManifest; a SignedManifest is re-signed from its
 * `manifest`) and writes the SignedManifest JSON. MODEL_INVALID for a file that is not a
 * valid manifest, with the path of each bad field.
 */
export async function signManifestFile(options: {
  manifestFile: string;
  /** The key, or how to get it once the manifest has been read (so a bad manifest creates no key). */
  key: SigningKeyFile | (() => Promise<SigningKeyFile>);
  outFile?: string;
}): Promise<{ outFile: string; signed: SignedManifest; key: SigningKeyFile }> {
  const manifest = await readManifestFile(options.manifestFile);
  const key = typeof options.key === 'function' ? await options.key() : options.key;
  const signed = signManifest(manifest, key.privateKeyPem, key.keyId);
  const outFile = options.outFile ?? defaultSignedFile(options.manifestFile);
  await writeFile(outFile, `${JSON.stringify(signed, null, 2)}\n`);
  return { outFile, signed, key };
}
