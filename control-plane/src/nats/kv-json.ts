import { gunzipSync, gzipSync, constants as zlib } from 'node:zlib';
import { ErrorCode, OutpostError } from '@outpost/shared';

/**
 * Values above this are gzipped before they go to KV. The server's max_payload (1 MiB by
 * default) bounds a KV value; an accounting value with thousands of devices compresses about
 * 5x, and small values stay plain JSON that `nats kv get` shows as is.
 */
export const KV_GZIP_ABOVE_BYTES = 32 * 1024;
/** Decompressed values above this are refused. */
const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

/** Encodes a JSON-able value for KV: plain JSON, or gzip(JSON) when large. */
export function encodeKvJson(value: unknown): Uint8Array {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  if (json.length <= KV_GZIP_ABOVE_BYTES) return json;
  return gzipSync(json, { level: zlib.Z_BEST_SPEED });
}

/**
 * Decodes what {@link encodeKvJson} wrote; JSON text never starts with the gzip magic bytes.
 * @throws OutpostError KV_VALUE_INVALID when it is neither.
 */
export function decodeKvJson(bytes: Uint8Array, what: string): unknown {
  try {
    const text = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes, { maxOutputLength: MAX_DECOMPRESSED_BYTES }) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return JSON.parse(text.toString('utf8'));
  } catch (cause) {
    throw new OutpostError(ErrorCode.KV_VALUE_INVALID, `${what}: stored value is not JSON: ${(cause as Error).message}`, { cause });
  }
}
