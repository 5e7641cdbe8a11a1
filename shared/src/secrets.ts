// Secret files (keys, creds, enrolment bundles): written owner-only, refused when others may
// read them (DESIGN section 4: a gateway sits in a factory, not a data centre).
import { readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-file.js';
import { ErrorCode, OutpostError } from './errors.js';

/** Permission bits a secret file must not have: anything for group or others. */
const GROUP_OR_OTHER = 0o077;

/**
 * Reads a secret file, refusing it when its group or others may read or write it.
 * @throws OutpostError SECRET_FILE_UNSAFE (mode too open), CONFIG_UNREADABLE (missing, unreadable).
 */
export async function readSecretFile(path: string, what: string): Promise<string> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (cause) {
    throw new OutpostError(ErrorCode.CONFIG_UNREADABLE, `${what} ${path} cannot be read: ${(cause as Error).message}`, { cause, details: { path } });
  }
  if ((mode & GROUP_OR_OTHER) !== 0) {
    throw new OutpostError(ErrorCode.SECRET_FILE_UNSAFE, `${what} ${path} may be read by others (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`, {
      details: { path, mode: (mode & 0o777).toString(8) },
    });
  }
  return readFile(path, 'utf8');
}

/** Writes a secret file owner-only (0600), through a temp file, fsync and rename: never half written, never readable by others. */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  await writeFileAtomic(path, content, { mode: 0o600 });
}
