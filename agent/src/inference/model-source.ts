import { open } from 'node:fs/promises';
import {
  ErrorCode,
  OutpostError,
  featureLength,
  parsePublicKey,
  verifyModelArtifact,
  verifySignedManifest,
  type ModelManifest,
  type ModelRef,
  type TrustedKey,
} from '@outpost/shared';
import { assertNoExternalData } from './onnx-model-check.js';

/** A manifest file larger than this is refused unread (256 test vectors of 256 values fit easily), bytes. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A model whose bytes, signature, expiry and self-containedness were checked in this process. */
export interface VerifiedModel {
  readonly manifest: ModelManifest;
  /** Exactly the bytes whose sha256 the signed manifest names; the only bytes sent to a child. */
  readonly bytes: Uint8Array;
  readonly ref: ModelRef;
  /** Values per input row (metrics x features of the feature spec). */
  readonly rowLength: number;
}

/**
 * A model to load: the signed manifest (parsed JSON, still untrusted) and the .onnx bytes or
 * the path of the .onnx file.
 */
export type ModelInput = { signedManifest: unknown } & ({ onnxBytes: Uint8Array } | { onnxPath: string });

/** Both files of a model, as `inference.model` in the agent config names them. */
export interface ModelFiles {
  onnxPath: string;
  manifestPath: string;
}

export interface VerifyOptions {
  trustedKeys: readonly TrustedKey[];
  /** Larger .onnx files are refused before they are read, bytes. */
  maxModelBytes: number;
  /** Epoch ms the expiry is checked against; default now. */
  nowMs?: number;
}

/**
 * Reads the signed manifest file of `files` (JSON) and returns a ModelInput that names the
 * .onnx file, which `verifyModel` reads once, after the manifest has told it what to expect.
 *
 * @throws OutpostError MODEL_INVALID when the manifest file is unreadable, too large or not JSON.
 */
export async function readModelFiles(files: ModelFiles): Promise<ModelInput> {
  let text: string;
  try {
    const handle = await open(files.manifestPath, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_MANIFEST_BYTES) throw new Error(`${size} bytes, more than ${MAX_MANIFEST_BYTES}`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (cause) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `cannot read model manifest ${files.manifestPath}: ${(cause as Error).message}`, { cause, details: { path: files.manifestPath } });
  }
  let signedManifest: unknown;
  try {
    signedManifest = JSON.parse(text);
  } catch (cause) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `model manifest ${files.manifestPath} is not JSON: ${(cause as Error).message}`, { cause, details: { path: files.manifestPath } });
  }
  return { signedManifest, onnxPath: files.onnxPath };
}

/**
 * Verifies a model in the agent process, in this order, each failure with its own code:
 * the manifest's shape and signature against `trustedKeys` (MODEL_INVALID,
 * MODEL_SIGNATURE_INVALID for a manifest without signature or a wrong one, MODEL_KEY_UNTRUSTED,
 * MODEL_KEY_INVALID), its expiry (MODEL_EXPIRED), the artifact's size and sha256
 * (MODEL_DIGEST_MISMATCH; a file is read once, after its size matched), and that the ONNX graph
 * references no external data (MODEL_EXTERNAL_DATA, or MODEL_INVALID when unparsable).
 * Version policy (no downgrade unless a rollback) belongs to the caller that chooses models.
 */
export async function verifyModel(input: ModelInput, options: VerifyOptions): Promise<VerifiedModel> {
  const signed = input.signedManifest;
  if (typeof signed === 'object' && signed !== null && 'manifest' in signed && !('signature' in signed)) {
    throw new OutpostError(ErrorCode.MODEL_SIGNATURE_INVALID, 'the model manifest is not signed (no signature field)');
  }
  const manifest = verifySignedManifest(signed, options.trustedKeys, options.nowMs ?? Date.now());
  const ref = { name: manifest.name, version: manifest.version };
  const label = `model ${ref.name}@${ref.version}`;
  if (manifest.artifact.sizeBytes > options.maxModelBytes) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `${label} is ${manifest.artifact.sizeBytes} bytes, more than inference.maxModelBytes (${options.maxModelBytes})`, {
      details: { sizeBytes: manifest.artifact.sizeBytes, maxModelBytes: options.maxModelBytes },
    });
  }
  const bytes = 'onnxBytes' in input ? input.onnxBytes : await readArtifact(input.onnxPath, manifest, label);
  verifyModelArtifact(bytes, manifest);
  assertNoExternalData(bytes, label);
  return { manifest, bytes, ref, rowLength: featureLength(manifest.featureSpec) };
}

/** Reads the .onnx file once, refusing it unread when its size is not the manifest's. */
async function readArtifact(path: string, manifest: ModelManifest, label: string): Promise<Uint8Array> {
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size !== manifest.artifact.sizeBytes) {
        throw new OutpostError(ErrorCode.MODEL_DIGEST_MISMATCH, `${label}: ${path} is ${size} bytes, the manifest says ${manifest.artifact.sizeBytes}`, {
          details: { path, expectedSizeBytes: manifest.artifact.sizeBytes, actualSizeBytes: size },
        });
      }
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (cause) {
    if (cause instanceof OutpostError) throw cause;
    throw new OutpostError(ErrorCode.MODEL_INVALID, `cannot read ${label} from ${path}: ${(cause as Error).message}`, { cause, details: { path } });
  }
}

/**
 * Checks every trusted key parses as an ed25519 public key, so a typo in the config stops the
 * start instead of refusing every model later.
 *
 * @throws OutpostError CONFIG_INVALID listing `inference.trustedKeys.<i>.publicKey: ...` per bad key.
 */
export function assertTrustedKeys(keys: readonly TrustedKey[], source = 'agent config'): void {
  const issues: { path: string; message: string }[] = [];
  keys.forEach((key, i) => {
    try {
      parsePublicKey(key.publicKey);
    } catch (err) {
      issues.push({ path: `inference.trustedKeys.${i}.publicKey`, message: (err as Error).message });
    }
  });
  if (issues.length > 0) {
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `invalid ${source}:\n${issues.map((i) => `${i.path}: ${i.message}`).join('\n')}`, { details: { source, issues } });
  }
}
