// The demo's security (DESIGN section 4), set up the way an operator would: NATS with
// decentralized JWT auth (`outpost-control-plane setup`: operator, accounts, signing keys, the
// control plane's creds) and TLS with a throwaway CA, and every agent enrolled through the
// control plane's API, its bundle (a secret) written 0600 beside its config. Nothing here prints
// or returns a secret's content; only paths.
import { mkdir } from 'node:fs/promises';
import { relative } from 'node:path';
import { setupNatsAuth, type SetupFiles } from '@outpost/control-plane';
import { EnrollmentBundleSchema, writeSecretFile, type ControlPlaneConfigInput } from '@outpost/shared';
import { createPki, type CertFiles } from '../harness/pki.js';

/** Name of the demo's CA (its certificate is `<name>.crt` in the TLS dir). */
export const DEMO_CA_NAME = 'outpost-demo-ca';
/** Seconds a TLS handshake may take: agents, control plane and simulators share two busy cores. */
const TLS_HANDSHAKE_TIMEOUT_S = 10;

/** What the secured nats-server and its clients need, as files in the demo's data dir. */
export interface DemoNatsSecurity {
  /** Everything `outpost-control-plane setup` writes: nats-auth.conf, accounts, creds, signing keys. */
  readonly auth: SetupFiles;
  /** The CA certificate clients check the server with. */
  readonly caFile: string;
  /** The server's certificate and key (0600) for 127.0.0.1 and localhost. */
  readonly server: CertFiles;
}

/**
 * Makes the NATS auth material into `authDir` (as `outpost-control-plane setup --out` does) and
 * a throwaway CA with a server certificate for 127.0.0.1 and localhost into `tlsDir` (0700,
 * keys 0600), both made fresh on every demo start.
 *
 * @throws when openssl is missing or fails (its stderr in the message).
 */
export async function createDemoNatsSecurity(authDir: string, tlsDir: string): Promise<DemoNatsSecurity> {
  const auth = await setupNatsAuth(authDir);
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  const pki = createPki(tlsDir, DEMO_CA_NAME);
  return { auth, caFile: pki.caCert, server: pki.server('nats-server') };
}

/**
 * nats-server config lines of a secured server whose config file is in `configDir`: the auth
 * config `setup` wrote, included, and TLS with the demo's certificate. Clients need no
 * certificate of their own (the JWT says who they are); TLS keeps creds and data off the wire.
 */
export function natsSecurityConfig(security: DemoNatsSecurity, configDir: string): string[] {
  return [
    // nats-server resolves an include relative to the including file.
    `include ${JSON.stringify(relative(configDir, security.auth.natsAuthConfig))}`,
    'tls {',
    `  cert_file: ${JSON.stringify(security.server.cert)}`,
    `  key_file: ${JSON.stringify(security.server.key)}`,
    `  ca_file: ${JSON.stringify(security.caFile)}`,
    `  timeout: ${TLS_HANDSHAKE_TIMEOUT_S}`,
    '}',
  ];
}

/** The control plane's `nats` connection (its creds, the CA) and `security` section (enrolment and revocation). */
export function controlPlaneSecurityConfig(security: DemoNatsSecurity, natsUrl: string): Pick<ControlPlaneConfigInput, 'nats' | 'security'> {
  const { auth } = security;
  return {
    nats: { servers: [natsUrl], credsFile: auth.controlPlaneCredsFile, tls: { caFile: security.caFile } },
    security: {
      accountsFile: auth.accountsFile,
      agentsSigningKeyFile: auth.agentsSigningKeyFile,
      operatorSigningKeyFile: auth.operatorSigningKeyFile,
      systemCredsFile: auth.systemCredsFile,
    },
  };
}

/** The control plane refused or failed an enrolment; the message has its status and error, never a bundle. */
export class EnrollmentError extends Error {
  override readonly name = 'EnrollmentError';
}

/** How long one enrolment call may take (the control plane signs a JWT and writes KV). */
const ENROLL_TIMEOUT_MS = 30_000;

/**
 * Enrols `agentId` through the control plane's API (`POST /api/agents/{id}/enroll`, operator
 * role) with `labels`, and writes the bundle it answers to `bundleFile` (0600, through a temp
 * file). The bundle (NATS creds, servers, CA, labels, trusted model keys) is a secret: it goes
 * to the file only.
 *
 * @throws EnrollmentError naming the agent, the HTTP status and the control plane's error.
 */
export async function enrollDemoAgent(apiUrl: string, operatorToken: string, agentId: string, labels: Record<string, string>, bundleFile: string): Promise<void> {
  let response: Response;
  try {
    response = await fetch(`${apiUrl}/agents/${encodeURIComponent(agentId)}/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ labels }),
      signal: AbortSignal.timeout(ENROLL_TIMEOUT_MS),
    });
  } catch (cause) {
    throw new EnrollmentError(`cannot enrol ${agentId}: the control plane did not answer (${(cause as Error).message})`, { cause });
  }
  if (response.status !== 201) {
    // An error answer is no bundle: its code and message say what went wrong.
    const text = await response.text().catch(() => '');
    throw new EnrollmentError(`the control plane did not enrol ${agentId}: HTTP ${response.status} ${text.slice(0, 500)}`);
  }
  const parsed = EnrollmentBundleSchema.safeParse(await response.json().catch(() => undefined));
  if (!parsed.success || parsed.data.agentId !== agentId) throw new EnrollmentError(`the control plane answered the enrolment of ${agentId} with something that is not its bundle`);
  await writeSecretFile(bundleFile, `${JSON.stringify(parsed.data)}\n`);
}

