import { readFile } from 'node:fs/promises';
import { ErrorCode, OutpostError, parseModelManifest, type ModelManifest } from '@outpost/shared';

/**
 * Reads a manifest file: an unsigned ModelManifest or a SignedManifest (its `manifest`,
 * signature not checked: signing and evaluation read the operator's own files; the agent is
 * what verifies signatures). MODEL_INVALID with the path of each bad field.
 */
export async function readManifestFile(file: string): Promise<ModelManifest> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    throw new OutpostError(ErrorCode.MODEL_INVALID, `cannot read manifest ${file}: ${(cause as Error).message}`, { cause });
  }
  const body = typeof value === 'object' && value !== null && 'signature' in value && 'manifest' in value ? (value as { manifest: unknown }).manifest : value;
  return parseModelManifest(body, `manifest ${file}`);
}
