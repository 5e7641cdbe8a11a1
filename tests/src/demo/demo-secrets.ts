// Every secret a demo made in its data dir, by what it is: for the check that none of them
// shows in anything the demo or its processes print (DESIGN section 4). The demo knows its own
// data dir's layout, so the list lives beside it.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EnrollmentBundleSchema } from '@outpost/shared';
import { demoPaths, MANUAL_DEVICE_ID } from './stack-config.js';

/** The seed of a NATS creds file or nkey file (`SU...` user, `SA...` account, `SO...` operator). */
const NKEY_SEED = /S[UAO][A-Z2-7]{50,}/;

function seedOf(what: string, text: string): string {
  const seed = NKEY_SEED.exec(text)?.[0];
  if (seed === undefined) throw new Error(`${what} holds no nkey seed`);
  return seed;
}

/** The longest base64 line of a PEM private key: enough to find the key anywhere it is printed. */
function pemBodyOf(what: string, pem: string): string {
  const line = pem
    .split('\n')
    .filter((l) => !l.startsWith('-----') && l.trim().length > 20)
    .sort((a, b) => b.length - a.length)[0];
  if (line === undefined) throw new Error(`${what} is no PEM key`);
  return line.trim();
}

async function filesOf(dir: string, suffix: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => name.endsWith(suffix)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/**
 * The secrets in a demo's data dir, by what they are: the operator token; with NATS secured,
 * the seed of each creds file and signing key `setup` wrote, the creds seed of each agent's
 * enrolment bundle, and the body of each TLS private key; the password of every simulated
 * device. Not the manual device's password: the demo prints it on purpose, for the user's
 * `mosquitto_pub`.
 */
export async function listDemoSecrets(dataDir: string): Promise<Map<string, string>> {
  const paths = demoPaths(dataDir);
  const secrets = new Map<string, string>();
  secrets.set('operator token', (await readFile(paths.operatorToken, 'utf8')).trim());
  for (const name of await filesOf(paths.natsAuth, '.creds')) secrets.set(`${name} seed`, seedOf(name, await readFile(join(paths.natsAuth, name), 'utf8')));
  for (const name of await filesOf(paths.natsAuth, '.nk')) secrets.set(`${name} seed`, seedOf(name, await readFile(join(paths.natsAuth, name), 'utf8')));
  for (const name of await filesOf(paths.agents, '.bundle.json')) {
    const bundle = EnrollmentBundleSchema.parse(JSON.parse(await readFile(join(paths.agents, name), 'utf8')));
    secrets.set(`${name} creds seed`, seedOf(name, bundle.creds));
  }
  for (const name of await filesOf(paths.natsTls, '.key')) secrets.set(`TLS private key ${name}`, pemBodyOf(name, await readFile(join(paths.natsTls, name), 'utf8')));
  const passwords = JSON.parse(await readFile(paths.credentials, 'utf8')) as Record<string, string>;
  for (const [deviceId, password] of Object.entries(passwords)) if (deviceId !== MANUAL_DEVICE_ID) secrets.set(`password of ${deviceId}`, password);
  return secrets;
}
