// `outpost-control-plane setup --out DIR`: the NATS decentralized auth of an Outpost
// installation (DESIGN section 4), made once: the operator, its system, OUTPOST and AGENTS
// accounts, their signing keys, the control plane's and the system's users, and the lines the
// nats-server config includes. Secrets (seeds, creds) are written 0600; nothing is printed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeSecretFile, type AccountsFile } from '@outpost/shared';
import { createNatsAuthMaterial, natsServerAuthConfig } from '../nats/adapter/index.js';

/** The files `setup` writes, by role. */
export interface SetupFiles {
  /** nats-server lines: operator, system account, full resolver, preloaded accounts. `include` it. */
  natsAuthConfig: string;
  /** The full resolver's directory (pushed account JWTs land here). */
  resolverDir: string;
  accountsFile: string;
  controlPlaneCredsFile: string;
  systemCredsFile: string;
  agentsSigningKeyFile: string;
  operatorSigningKeyFile: string;
}

/** Makes the auth material into `dir` (created). Refuses nothing: a second run makes a new operator, so keep the first. */
export async function setupNatsAuth(dir: string): Promise<SetupFiles> {
  const out = resolve(dir);
  await mkdir(out, { recursive: true, mode: 0o700 });
  const material = await createNatsAuthMaterial();
  const files: SetupFiles = {
    natsAuthConfig: join(out, 'nats-auth.conf'),
    resolverDir: join(out, 'nats-resolver'),
    accountsFile: join(out, 'accounts.json'),
    controlPlaneCredsFile: join(out, 'control-plane.creds'),
    systemCredsFile: join(out, 'system.creds'),
    agentsSigningKeyFile: join(out, 'agents-signing.nk'),
    operatorSigningKeyFile: join(out, 'operator-signing.nk'),
  };
  await mkdir(files.resolverDir, { recursive: true, mode: 0o700 });
  // JWTs and public keys are no secrets; seeds and creds are.
  await writeFile(files.natsAuthConfig, natsServerAuthConfig(material, files.resolverDir));
  const accounts: AccountsFile = { outpostAccount: material.outpostAccount, agentsAccount: material.agentsAccount, systemAccount: material.systemAccount };
  await writeFile(files.accountsFile, `${JSON.stringify(accounts, null, 2)}\n`);
  await writeSecretFile(files.controlPlaneCredsFile, material.controlPlaneCreds);
  await writeSecretFile(files.systemCredsFile, material.systemCreds);
  await writeSecretFile(files.agentsSigningKeyFile, `${material.agentsSigningSeed}\n`);
  await writeSecretFile(files.operatorSigningKeyFile, `${material.operatorSigningSeed}\n`);
  return files;
}
