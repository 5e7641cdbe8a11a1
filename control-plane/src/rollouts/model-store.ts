// Signed model artifacts in the JetStream object store (DESIGN section 3): a model version is
// its .onnx bytes and its signed manifest, stored under `{name}/{version}/`. The control plane
// checks what it can before storing (a well-formed signed manifest, bytes matching its digest
// and size, a trusted signature when it has keys); agents check everything again, since the
// store is not trusted for integrity.
import {
  ErrorCode,
  modelObjectNames,
  OutpostError,
  SignedManifestSchema,
  invalidManifestError,
  verifyModelArtifact,
  verifySignedManifest,
  type ModelEntry,
  type SignedManifest,
  type TrustedKey,
} from '@outpost/shared';
import type { ObjectStoreBucket } from '../nats/types.js';

export interface ModelStore {
  /**
   * Stores a signed model; `stored` false when the same version with the same bytes was there
   * already (a no-op).
   * @throws OutpostError MODEL_INVALID (malformed manifest), MODEL_DIGEST_MISMATCH, MODEL_KEY_UNTRUSTED /
   *   MODEL_SIGNATURE_INVALID / MODEL_EXPIRED (when the control plane has trusted keys), MODEL_EXISTS.
   */
  publish(signedManifest: unknown, onnx: Uint8Array): Promise<{ entry: ModelEntry; stored: boolean }>;
  list(): Promise<ModelEntry[]>;
  /** One version; undefined when it was never published. */
  get(name: string, version: string): Promise<ModelEntry | undefined>;
}

export interface ModelStoreOptions {
  store: ObjectStoreBucket;
  /** Keys whose signatures the control plane accepts; empty: it checks form and digest only. */
  trustedKeys: readonly TrustedKey[];
  now?: () => number;
}

function toEntry(signed: SignedManifest, storedAt: string): ModelEntry {
  const m = signed.manifest;
  return {
    name: m.name,
    version: m.version,
    sha256: m.artifact.sha256,
    sizeBytes: m.artifact.sizeBytes,
    keyId: signed.signature.keyId,
    createdAt: m.createdAt,
    expiresAt: m.expiresAt,
    threshold: m.threshold,
    metrics: m.featureSpec.metrics,
    ...(m.description === undefined ? {} : { description: m.description }),
    storedAt,
  };
}

export function createModelStore(options: ModelStoreOptions): ModelStore {
  const { store, trustedKeys } = options;
  const now = options.now ?? Date.now;

  const readManifest = async (objectName: string): Promise<SignedManifest | undefined> => {
    const bytes = await store.get(objectName);
    if (bytes === undefined) return undefined;
    const parsed = SignedManifestSchema.safeParse(JSON.parse(Buffer.from(bytes).toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  };

  return {
    async publish(input, onnx) {
      const parsed = SignedManifestSchema.safeParse(input);
      if (!parsed.success) throw invalidManifestError('signed manifest', parsed.error);
      const signed = parsed.data;
      if (trustedKeys.length > 0) verifySignedManifest(input, trustedKeys, now());
      verifyModelArtifact(onnx, signed.manifest);
      const names = modelObjectNames(signed.manifest.name, signed.manifest.version);
      const existing = await readManifest(names.manifest);
      if (existing !== undefined) {
        if (existing.manifest.artifact.sha256 === signed.manifest.artifact.sha256) {
          return { entry: toEntry(existing, (await store.info(names.manifest))?.mtime ?? new Date(now()).toISOString()), stored: false };
        }
        throw new OutpostError(ErrorCode.MODEL_EXISTS, `model ${signed.manifest.name}@${signed.manifest.version} is already published with other bytes; publish a new version`, {
          details: { name: signed.manifest.name, version: signed.manifest.version, storedSha256: existing.manifest.artifact.sha256 },
        });
      }
      // The artifact first: a manifest in the store always has its bytes beside it. The raw
      // input is stored, not the parsed copy, so the signature still covers every byte.
      await store.put(names.onnx, onnx, `${signed.manifest.name}@${signed.manifest.version} ONNX`);
      const info = await store.put(names.manifest, Buffer.from(JSON.stringify(input)), `${signed.manifest.name}@${signed.manifest.version} signed manifest`);
      return { entry: toEntry(signed, info.mtime), stored: true };
    },
    async list() {
      const objects = (await store.list()).filter((o) => o.name.endsWith('/manifest.json'));
      const entries = await Promise.all(objects.map(async (o) => ((m) => (m === undefined ? undefined : toEntry(m, o.mtime)))(await readManifest(o.name).catch(() => undefined))));
      return entries.filter((e): e is ModelEntry => e !== undefined).sort((a, b) => (a.name === b.name ? a.storedAt.localeCompare(b.storedAt) : a.name < b.name ? -1 : 1));
    },
    async get(name, version) {
      const names = modelObjectNames(name, version);
      const signed = await readManifest(names.manifest).catch(() => undefined);
      if (signed === undefined) return undefined;
      return toEntry(signed, (await store.info(names.manifest))?.mtime ?? '');
    },
  };
}
