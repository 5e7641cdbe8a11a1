// scripts/ensure-deps.sh (issue [install], item 6) on a machine that lacks nats-server,
// mosquitto and chromium, played here by a PATH of symlinks to everything in /usr/bin except
// those (and ENSURE_DEPS_SBIN_DIRS pointing at the same directory instead of the real sbin
// dirs). A non-root user runs it through setpriv. apt-get and sudo are recording doubles in
// that directory: this test never installs anything, it checks what the script decides.
import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTempDir, type TempDir } from '../harness/temp-dir.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/ensure-deps.sh', import.meta.url));
/** What a fresh Debian/Ubuntu machine lacks, as commands. */
const ABSENT = ['nats-server', 'mosquitto', 'mosquitto_pub', 'mosquitto_sub', 'chromium', 'chromedriver'];
const PACKAGES = 'nats-server mosquitto mosquitto-clients chromium chromium-driver';
const NOBODY = 65534;

/**
 * A recording apt-get: logs its arguments (and its uid), and `install` puts stand-ins for the
 * packages' programs in its own directory, as the real packages would put them in /usr/bin.
 */
const FAKE_APT_GET = `#!/bin/sh
here="$(dirname "$0")"
echo "uid=$(id -u) DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> "$here/apt-get.log"
[ "$1" = install ] || exit 0
for arg in "$@"; do
  case "$arg" in
    nats-server) progs=nats-server ;;
    mosquitto) progs=mosquitto ;;
    mosquitto-clients) progs="mosquitto_pub mosquitto_sub" ;;
    chromium) progs=chromium ;;
    chromium-driver) progs=chromedriver ;;
    *) progs= ;;
  esac
  for p in $progs; do printf '#!/bin/sh\\n' > "$here/$p"; chmod 755 "$here/$p"; done
done
`;

/** A sudo that needs no password: logs, then runs the command (as the caller; it is a double). */
const FAKE_SUDO = `#!/bin/sh
here="$(dirname "$0")"
echo "$*" >> "$here/sudo.log"
[ "$1" = -n ] && shift
exec "$@"
`;

let dir: TempDir;
let bin: string;

beforeEach(async () => {
  dir = await createTempDir('outpost-ensure-deps-');
  bin = join(dir.path, 'bin');
  await mkdir(bin);
  // The user nobody reads the script's PATH and the doubles write their logs here.
  await chmod(dir.path, 0o755);
  await chmod(bin, 0o777);
});
afterEach(async () => {
  await dir.remove();
});

/** Fills `bin` with links to /usr/bin (and /usr/sbin) minus `hide`, plus the given doubles. */
async function fakeMachine(hide: readonly string[], doubles: Record<string, string> = {}): Promise<void> {
  const hidden = new Set([...hide, ...Object.keys(doubles)]);
  for (const source of ['/usr/bin', '/usr/sbin']) {
    for (const name of await readdir(source)) {
      if (hidden.has(name)) continue;
      await symlink(join(source, name), join(bin, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
  }
  for (const [name, text] of Object.entries(doubles)) await writeFile(join(bin, name), text, { mode: 0o755 });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the script with `bin` as the whole PATH, as root or (through setpriv) as nobody. */
function runScript(args: string[], options: { asNobody?: boolean; env?: Record<string, string> } = {}): Promise<Run> {
  const env = { PATH: bin, ENSURE_DEPS_SBIN_DIRS: bin, LANG: 'C.UTF-8', ...options.env };
  const [file, argv] = options.asNobody
    ? ['/usr/bin/setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', '/bin/bash', SCRIPT, ...args]]
    : ['/bin/bash', [SCRIPT, ...args]];
  return new Promise((resolve) => {
    // stdin is not a terminal here, as in CI: sudo could not ask for a password.
    execFile(file, argv, { env, cwd: dir.path }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

async function readLog(name: string): Promise<string[]> {
  return (await readFile(join(bin, name), 'utf8').catch(() => '')).split('\n').filter((line) => line !== '');
}

describe('scripts/ensure-deps.sh', () => {
  it('with everything present exits 0 and prints nothing', async () => {
    // This machine has them all (the test tier needs them; the script installed them first).
    await fakeMachine([], { 'apt-get': FAKE_APT_GET });
    expect(await runScript([])).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await runScript(['demo'], { asNobody: true })).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await readLog('apt-get.log')).toEqual([]);
  });

  it('as a user without root or sudo: names what is missing, prints the exact command, exits 1, installs nothing', async () => {
    await fakeMachine([...ABSENT, 'sudo'], { 'apt-get': FAKE_APT_GET });
    const run = await runScript([], { asNobody: true });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      `ensure-deps: missing ${ABSENT.join(' ')} (Debian/Ubuntu packages: ${PACKAGES})\n` +
        'ensure-deps: not root and no sudo; install them with:\n\n' +
        `  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES}\n\n`,
    );
    expect(await readLog('apt-get.log')).toEqual([]);
  });

  it('as root: says what it installs, runs apt-get update and install of exactly the missing packages, exits 0 once they are there', async () => {
    await fakeMachine(ABSENT, { 'apt-get': FAKE_APT_GET });
    const run = await runScript([]);
    expect(run.stderr).toContain(`ensure-deps: installing ${PACKAGES} with apt-get\n`);
    expect(run.stderr).toContain(`ensure-deps: installed ${PACKAGES}\n`);
    expect(run.code).toBe(0);
    expect(await readLog('apt-get.log')).toEqual([
      'uid=0 DEBIAN_FRONTEND=noninteractive update -qq',
      `uid=0 DEBIAN_FRONTEND=noninteractive install -y -qq --no-install-recommends ${PACKAGES}`,
    ]);
    // The next run finds everything and costs nothing.
    expect(await runScript([])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('as a user with passwordless sudo: installs through sudo -n', async () => {
    await fakeMachine(ABSENT, { 'apt-get': FAKE_APT_GET, sudo: FAKE_SUDO });
    const run = await runScript([], { asNobody: true });
    expect(run.stderr).toContain(`ensure-deps: installing ${PACKAGES} with sudo -n apt-get\n`);
    expect(run.code).toBe(0);
    expect(await readLog('sudo.log')).toEqual([
      '-n true',
      '-n env DEBIAN_FRONTEND=noninteractive apt-get update -qq',
      `-n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${PACKAGES}`,
    ]);
  });

  it('the demo profile asks only for nats-server and openssl', async () => {
    await fakeMachine([...ABSENT, 'openssl', 'sudo'], { 'apt-get': FAKE_APT_GET });
    const run = await runScript(['demo'], { asNobody: true });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('  sudo apt-get update && sudo apt-get install -y --no-install-recommends nats-server openssl\n');
  });

  it('OUTPOST_NO_INSTALL=1 or no apt-get: prints the command and installs nothing, even as root', async () => {
    await fakeMachine(ABSENT, { 'apt-get': FAKE_APT_GET });
    const refused = await runScript([], { env: { OUTPOST_NO_INSTALL: '1' } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ensure-deps: OUTPOST_NO_INSTALL=1, not installing; install them with:');
    expect(refused.stderr).toContain(`  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES}\n`);
    expect(await readLog('apt-get.log')).toEqual([]);

    await rm(join(bin, 'apt-get'));
    const noApt = await runScript([]);
    expect(noApt.code).toBe(1);
    expect(noApt.stderr).toContain('ensure-deps: no apt-get here (not Debian/Ubuntu?), so not installing; on Debian/Ubuntu; install them with:');
  });
});
