// NATS decentralized JWT auth (DESIGN section 4): the operator, the system account, the
// OUTPOST account (the control plane, JetStream) and the AGENTS account (every agent, no
// JetStream, importing only what agents need), and the per-agent user credentials the control
// plane mints with the AGENTS account's signing key. The only code importing @nats-io/jwt and
// @nats-io/nkeys. Checked on nats-server 2.9.10: every account limit set to -1 explicitly (or
// connects hang), accounts pushed at run time through `$SYS.REQ.CLAIMS.UPDATE`.
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import type { Account, Export, Import } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromSeed } from '@nats-io/nkeys';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { DIAG_SUBJECTS, diagListenSubject } from '@outpost/shared';

/** Agents publish their batches, heartbeats and evictions, call the control plane's services, and hear their notices. */
const AGENT_SERVICES = ['outpost.uplink.>', 'outpost.agent.>', 'outpost.svc.>'] as const;
const AGENT_STREAMS = ['outpost.desired.>'] as const;
/**
 * The other way round: every agent answers the control plane's diagnostics requests on its own
 * `outpost.diag.{agentId}.*`. AGENTS exports them as one service, OUTPOST imports it.
 */
const AGENT_DIAG_EXPORT = DIAG_SUBJECTS;
/**
 * An agent may publish to the reply subject of a request it received (its diagnostics
 * answers), once, within this long: enough for a doctor run on a slow gateway. Nanoseconds (the
 * JWT's `resp.ttl` is a Go duration).
 */
const AGENT_RESPONSE_TTL_NS = 2 * 60 * 1_000_000_000;

const UNLIMITED = { subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, payload: -1, wildcards: true };
const JETSTREAM_UNLIMITED = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };

/** Everything `outpost-control-plane setup` makes. Seeds and creds are secrets (files 0600). */
export interface NatsAuthMaterial {
  operatorJwt: string;
  systemAccount: string;
  outpostAccount: string;
  agentsAccount: string;
  /** Account public key -> account JWT, for the server's resolver preload. */
  accountJwts: Record<string, string>;
  /** Seed of the operator signing key: re-signs the AGENTS account (revocations). */
  operatorSigningSeed: string;
  /** Seed of the AGENTS account signing key: mints agents' user JWTs. */
  agentsSigningSeed: string;
  /** A user of the OUTPOST account (the control plane), as a creds file. */
  controlPlaneCreds: string;
  /** A user of the system account (pushes account JWTs), as a creds file. */
  systemCreds: string;
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

/** The AGENTS account's claims: imports from OUTPOST, the signing key, and the revocations so far. */
function agentsAccountClaims(outpostAccount: string, agentsSigningKey: string, revocations: Readonly<Record<string, number>>): Partial<Account> {
  const imports: Partial<Import>[] = [
    ...AGENT_SERVICES.map((subject) => ({ name: subject, subject, account: outpostAccount, type: 'service' as const })),
    ...AGENT_STREAMS.map((subject) => ({ name: subject, subject, account: outpostAccount, type: 'stream' as const })),
  ];
  const exports: Partial<Export>[] = [{ name: AGENT_DIAG_EXPORT, subject: AGENT_DIAG_EXPORT, type: 'service', response_type: 'Singleton' }];
  return {
    limits: { ...UNLIMITED },
    signing_keys: [agentsSigningKey],
    imports: imports as Import[],
    exports: exports as Export[],
    ...(Object.keys(revocations).length === 0 ? {} : { revocations: { ...revocations } }),
  } as Partial<Account>;
}

/** Creates the operator, its accounts, the signing keys and the control plane's and system's users. */
export async function createNatsAuthMaterial(): Promise<NatsAuthMaterial> {
  const operator = createOperator();
  const operatorSigner = createOperator();
  const system = createAccount();
  const outpost = createAccount();
  const agents = createAccount();
  const agentsSigner = createAccount();
  const signer = { signer: operatorSigner };
  const operatorJwt = await encodeOperator('outpost', operator, { system_account: system.getPublicKey(), signing_keys: [operatorSigner.getPublicKey()] });
  const exports: Partial<Export>[] = [
    ...AGENT_SERVICES.map((subject) => ({ name: subject, subject, type: 'service' as const, response_type: 'Singleton' as const })),
    ...AGENT_STREAMS.map((subject) => ({ name: subject, subject, type: 'stream' as const })),
  ];
  // The control plane asks agents for their diagnostics through this import of AGENTS' export.
  const outpostImports: Partial<Import>[] = [{ name: AGENT_DIAG_EXPORT, subject: AGENT_DIAG_EXPORT, account: agents.getPublicKey(), type: 'service' }];
  const accountJwts: Record<string, string> = {
    [system.getPublicKey()]: await encodeAccount('SYS', system, { limits: { ...UNLIMITED } } as Partial<Account>, signer),
    [outpost.getPublicKey()]: await encodeAccount('OUTPOST', outpost, { limits: { ...UNLIMITED, ...JETSTREAM_UNLIMITED }, exports: exports as Export[], imports: outpostImports as Import[] } as Partial<Account>, signer),
    [agents.getPublicKey()]: await encodeAccount('AGENTS', agents, agentsAccountClaims(outpost.getPublicKey(), agentsSigner.getPublicKey(), {}), signer),
  };
  const user = async (name: string, account: ReturnType<typeof createAccount>): Promise<string> => {
    const u = createUser();
    return text(fmtCreds(await encodeUser(name, u, account), u));
  };
  return {
    operatorJwt,
    systemAccount: system.getPublicKey(),
    outpostAccount: outpost.getPublicKey(),
    agentsAccount: agents.getPublicKey(),
    accountJwts,
    operatorSigningSeed: text(operatorSigner.getSeed()),
    agentsSigningSeed: text(agentsSigner.getSeed()),
    controlPlaneCreds: await user('control-plane', outpost),
    systemCreds: await user('system', system),
  };
}

/** The nats-server config lines for operator mode with the full resolver (include it from the server's config). */
export function natsServerAuthConfig(material: Pick<NatsAuthMaterial, 'operatorJwt' | 'systemAccount' | 'accountJwts'>, resolverDir: string): string {
  return [
    `operator: ${material.operatorJwt}`,
    `system_account: ${material.systemAccount}`,
    `resolver: { type: full, dir: ${JSON.stringify(resolverDir)}, allow_delete: false, interval: "2m" }`,
    'resolver_preload: {',
    ...Object.entries(material.accountJwts).map(([account, jwt]) => `  ${account}: ${jwt}`),
    '}',
    '',
  ].join('\n');
}

export interface AgentUser {
  /** The creds file content: the user JWT and its seed. A secret. */
  creds: string;
  userPublicKey: string;
  /** `iat` of the JWT, epoch seconds: a revocation at or after it refuses it. */
  issuedAtS: number;
  inboxPrefix: string;
}

/** The inbox prefix of an agent: its replies come only there. */
export function agentInboxPrefix(agentId: string): string {
  return `_INBOX_${agentId}`;
}

/**
 * A new user of the AGENTS account for `agentId`: it may publish only its own uplink,
 * heartbeat, eviction and service subjects, and receive only its own notices, replies and
 * diagnostics requests, which it may answer (a response permission: one reply per request
 * received, to that request's reply subject only).
 */
export async function mintAgentUser(agentId: string, agentsAccount: string, agentsSigningSeed: string): Promise<AgentUser> {
  const user = createUser();
  const inboxPrefix = agentInboxPrefix(agentId);
  const jwt = await encodeUser(
    agentId,
    user,
    agentsAccount,
    {
      pub: { allow: [`outpost.uplink.${agentId}.*`, `outpost.agent.${agentId}.*`, `outpost.svc.*.${agentId}`] },
      sub: { allow: [`outpost.desired.${agentId}`, `${inboxPrefix}.>`, diagListenSubject(agentId)] },
      resp: { max: 1, ttl: AGENT_RESPONSE_TTL_NS },
    },
    { signer: fromSeed(Buffer.from(agentsSigningSeed)) },
  );
  const issuedAtS = (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { iat: number }).iat;
  return { creds: text(fmtCreds(jwt, user)), userPublicKey: user.getPublicKey(), issuedAtS, inboxPrefix };
}

/** The AGENTS account JWT with `revocations` (user public key -> epoch seconds: JWTs issued up to then are refused). */
export async function agentsAccountJwt(material: { outpostAccount: string; agentsAccount: string; agentsSigningSeed: string; operatorSigningSeed: string }, revocations: Readonly<Record<string, number>>): Promise<string> {
  const agentsSigner = fromSeed(Buffer.from(material.agentsSigningSeed)).getPublicKey();
  return encodeAccount('AGENTS', material.agentsAccount, agentsAccountClaims(material.outpostAccount, agentsSigner, revocations), { signer: fromSeed(Buffer.from(material.operatorSigningSeed)) });
}

/**
 * Pushes an account JWT to the servers (`$SYS.REQ.CLAIMS.UPDATE` as a system user): a
 * revocation in it drops the revoked users' live connections.
 * @throws when the server does not confirm.
 */
export async function pushAccountJwt(servers: readonly string[], systemCreds: string, jwt: string, tls?: { ca?: string }): Promise<void> {
  const nc = await connect({ servers: [...servers], authenticator: credsAuthenticator(Buffer.from(systemCreds)), ...(tls?.ca === undefined ? {} : { tls: { ca: tls.ca } }), timeout: 5_000 });
  try {
    const reply = await nc.request('$SYS.REQ.CLAIMS.UPDATE', jwt, { timeout: 5_000 });
    const answer = JSON.parse(reply.string()) as { data?: { code?: number; message?: string }; error?: { description?: string } };
    if (answer.data?.code !== 200) throw new Error(`the server refused the account JWT: ${answer.error?.description ?? answer.data?.message ?? reply.string()}`);
  } finally {
    await nc.close();
  }
}
