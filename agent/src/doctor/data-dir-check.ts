// The data dir: there (or creatable), writable by this user (a file is really created, written,
// synced and removed: the only test a read-only mount, permissions and a full disk all fail),
// and room on its filesystem for the outbox to grow to its bound.
import { randomBytes } from 'node:crypto';
import { open, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DoctorCheckId } from '@outpost/shared';
import { checkFail, checkOk, checkSkip, checkWarn, formatBytes, type DoctorStep } from './check.js';

const id = DoctorCheckId.dataDir;

/** Less free space than this fails: SQLite, the WAL and the model cache need working room, bytes. */
export const DEFAULT_MIN_FREE_BYTES = 64 * 1024 * 1024;

const errnoOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException).code;

/** Creates, writes, syncs and removes a small file in `dir`; the error code when that fails. */
async function probeWrite(dir: string): Promise<string | undefined> {
  const path = join(dir, `.outpost-doctor-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile('doctor');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await unlink(path);
    return undefined;
  } catch (error) {
    await unlink(path).catch(() => undefined);
    return errnoOf(error) ?? (error as Error).message;
  }
}

function notWritable(dir: string, code: string, existing: boolean): ReturnType<typeof checkFail> {
  const where = existing ? `data dir ${dir}` : `${dir} (the data dir's nearest existing parent, where the agent would create it)`;
  if (code === 'EROFS') {
    return checkFail(id, { summary: `${where} is on a read-only filesystem (EROFS)`, remedy: 'remount it read-write (a flash card that fails turns read-only: check the disk), or point dataDir elsewhere' });
  }
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return checkFail(id, { summary: `${where} has no space left (${code})`, remedy: 'free space on that filesystem; the agent cannot acknowledge device data until it can commit' });
  }
  return checkFail(id, {
    summary: `${where} is not writable by this user (${code})`,
    remedy: `give the agent's user write access (chown -R <agent user> ${dir}; the systemd unit's StateDirectory does it), or run the doctor as that user`,
  });
}

/** Bytes of the outbox database and its WAL now (0 when there is none yet). */
async function outboxFileBytes(outboxPath: string): Promise<number> {
  const sizes = await Promise.all(['', '-wal'].map((suffix) => stat(`${outboxPath}${suffix}`).then((s) => s.size, () => 0)));
  return sizes.reduce((a, b) => a + b, 0);
}

export const dataDirCheck: DoctorStep = {
  id,
  async run(ctx) {
    const config = ctx.config;
    if (config === undefined) return checkSkip(id, 'not checked: the config is invalid');
    const dir = config.dataDir;
    let existing = true;
    let probeDir = dir;
    try {
      const s = await stat(dir);
      if (!s.isDirectory()) return checkFail(id, { summary: `data dir ${dir} is not a directory`, remedy: 'point dataDir at a directory (the agent creates a missing one)' });
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') return checkFail(id, { summary: `data dir ${dir} cannot be read: ${errnoOf(error) ?? (error as Error).message}`, remedy: "give the agent's user access to it" });
      existing = false;
      // The agent creates the dir (and its parents): the nearest existing ancestor must take a file.
      for (probeDir = dirname(dir); ; probeDir = dirname(probeDir)) {
        const found = await stat(probeDir).then(
          () => true,
          () => false,
        );
        if (found || dirname(probeDir) === probeDir) break;
      }
    }
    const refused = await probeWrite(probeDir);
    if (refused !== undefined) return notWritable(probeDir, refused, existing);

    const fs = await statfs(probeDir);
    const freeBytes = fs.bavail * fs.bsize;
    const usedBytes = existing ? await outboxFileBytes(join(dir, ctx.env.outboxFileName)) : 0;
    // The outbox may still grow to its bound: the hard file cap if set, else the record bytes bound.
    const boundBytes = config.outbox.maxFileBytes ?? config.outbox.maxBytes;
    const growthBytes = Math.max(0, boundBytes - usedBytes);
    const where = existing ? `data dir ${dir}` : `data dir ${dir} (not there yet: the agent creates it in ${probeDir})`;
    if (freeBytes < DEFAULT_MIN_FREE_BYTES) {
      return checkFail(id, {
        summary: `${where} is writable but only ${formatBytes(freeBytes)} is free (less than ${formatBytes(DEFAULT_MIN_FREE_BYTES)})`,
        remedy: 'free space on that filesystem: once commits fail, devices get no acknowledgements (they resend; nothing is lost, nothing moves)',
      });
    }
    if (freeBytes < growthBytes) {
      return checkWarn(id, {
        summary: `${where} is writable; ${formatBytes(freeBytes)} free, but the outbox may still grow by ${formatBytes(growthBytes)} (to outbox.${config.outbox.maxFileBytes === undefined ? 'maxBytes' : 'maxFileBytes'})`,
        remedy: 'free space, or lower outbox.maxBytes (or set outbox.maxFileBytes) to what the disk can hold',
      });
    }
    return checkOk(id, `${where} is writable; ${formatBytes(freeBytes)} free, room for the outbox to grow by ${formatBytes(growthBytes)}`);
  },
};
