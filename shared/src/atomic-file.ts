import { chmod, mkdir, open, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Writes `data` to `path` so that a crash leaves the old file or the new one, never half of
 * one: a temp file beside it, fsync, rename. With `mode`, the file has exactly that mode (a
 * umask cannot widen it, and a temp file left by a crash keeps no older mode).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, data, options.mode === undefined ? {} : { mode: options.mode });
  if (options.mode !== undefined) await chmod(temp, options.mode);
  const handle = await open(temp, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}
