import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh directory under the OS temp dir that a test owns and removes when done. */
export interface TempDir {
  /** Absolute path of the directory. */
  readonly path: string;
  /** Removes the directory and everything in it; safe to call more than once. */
  remove(): Promise<void>;
  /** Same as `remove()`, so `await using dir = await createTempDir()` cleans up. */
  [Symbol.asyncDispose](): Promise<void>;
}

// Directories not removed yet; a process that exits without removing them (a failed test
// whose cleanup never ran, a benchmark that called process.exit) removes them on 'exit'.
const pending = new Set<string>();
let exitHookInstalled = false;

function removeOnExit(path: string): void {
  pending.add(path);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' listeners must be synchronous, hence rmSync.
  process.on('exit', () => {
    for (const dir of pending) rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * Creates a new empty directory in `os.tmpdir()` whose name starts with `prefix`.
 * mkdtemp gives every caller its own directory, so parallel tests never share state.
 * A directory still there when the process exits normally is removed then.
 */
export async function createTempDir(prefix = 'outpost-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  removeOnExit(path);
  // Memoised so concurrent or repeated calls share one removal instead of racing.
  let removal: Promise<void> | undefined;
  const remove = (): Promise<void> => {
    removal ??= rm(path, { recursive: true, force: true, maxRetries: 3 }).then(() => {
      pending.delete(path);
    });
    return removal;
  };
  return { path, remove, [Symbol.asyncDispose]: remove };
}
