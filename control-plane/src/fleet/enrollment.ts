// Enrolment and revocation of agents (DESIGN section 4). Enrolling mints the agent a NATS user
// of the AGENTS account (its permissions name only its own subjects) and answers the bundle
// its config points to; enrolling again rotates the key (the old one is revoked). Revoking
// adds the user to the AGENTS account's revocations, re-signs the account and pushes it to the
// servers, which drop its live connections. What was issued and revoked is kept in KV, so any
// replica can do either and none forgets a revocation.
import { readFile } from 'node:fs/promises';
import {
  AccountsFileSchema,
  EnrollmentRecordSchema,
  ErrorCode,
  RevocationsSchema,
  type EnrollmentRecord,
  isOutpostError,
  OutpostError,
  readSecretFile,
  type ControlPlaneConfig,
  type EnrollmentBundle,
  type Logger,
  type TrustedKey,
} from '@outpost/shared';
import { agentsAccountJwt, mintAgentUser, pushAccountJwt } from '../nats/adapter/index.js';
import { decodeKvJson, encodeKvJson } from '../nats/kv-json.js';
import type { KvBucket } from '../nats/types.js';

/** KV bucket of enrolments (`agents.{agentId}`) and the AGENTS account's revocations (`account.revocations`). */
export const ENROLLMENTS_BUCKET = 'outpost_enrollments';
const REVOCATIONS_KEY = 'account.revocations';
const agentKey = (agentId: string): string => `agents.${agentId}`;

export interface Revocation {
  agentId: string;
  userPublicKey: string;
  revokedAtMs: number;
}

export interface EnrollmentService {
  /** @throws OutpostError SECURITY_NOT_CONFIGURED when the control plane has no `security` config. */
  /** `labels` undefined: the previous enrolment's (none at the first). */
  enroll(agentId: string, labels: Record<string, string> | undefined, actor: string): Promise<EnrollmentBundle>;
  /** @throws OutpostError SECURITY_NOT_CONFIGURED, AGENT_NOT_FOUND (never enrolled). */
  revoke(agentId: string, actor: string): Promise<Revocation>;
  /** Pushes the AGENTS account with every revocation kept (at start: a server restarted from its preload forgets none). */
  syncAccount(): Promise<void>;
}

interface Material {
  outpostAccount: string;
  agentsAccount: string;
  agentsSigningSeed: string;
  operatorSigningSeed: string;
  systemCreds: string;
  /** Where agents connect (the bundle's servers). */
  servers: string[];
  /** Where the control plane itself connects: account pushes go there. */
  pushServers: string[];
  caPem: string | undefined;
  pushTls: { ca: string } | undefined;
}

/** Reads the files of `config.security` (each secret one refused when others may read it). */
async function loadMaterial(config: ControlPlaneConfig): Promise<Material | undefined> {
  const security = config.security;
  if (security === undefined) return undefined;
  const accounts = AccountsFileSchema.parse(JSON.parse(await readFile(security.accountsFile, 'utf8')));
  const caFile = security.agentCaFile ?? config.nats.tls?.caFile;
  const caPem = caFile === undefined ? undefined : await readFile(caFile, 'utf8');
  return {
    outpostAccount: accounts.outpostAccount,
    agentsAccount: accounts.agentsAccount,
    agentsSigningSeed: (await readSecretFile(security.agentsSigningKeyFile, 'AGENTS account signing key')).trim(),
    operatorSigningSeed: (await readSecretFile(security.operatorSigningKeyFile, 'operator signing key')).trim(),
    systemCreds: await readSecretFile(security.systemCredsFile, 'system creds file'),
    servers: security.agentServers ?? config.nats.servers,
    pushServers: config.nats.servers,
    caPem,
    pushTls: config.nats.tls === undefined ? undefined : { ca: await readFile(config.nats.tls.caFile, 'utf8') },
  };
}

/**
 * A new NATS user for `agentId` in the AGENTS account (permissions on its own subjects only) and
 * the bundle its config points to. A secret: the caller writes it 0600 or answers it to the operator who asked.
 */
export async function mintEnrollmentBundle(
  m: { agentsAccount: string; agentsSigningSeed: string; servers: readonly string[]; caPem?: string | undefined },
  agentId: string,
  labels: Record<string, string>,
  trustedKeys: readonly TrustedKey[],
): Promise<{ bundle: EnrollmentBundle; issuedAtS: number }> {
  const user = await mintAgentUser(agentId, m.agentsAccount, m.agentsSigningSeed);
  const bundle: EnrollmentBundle = {
    v: 1,
    agentId,
    servers: [...m.servers],
    creds: user.creds,
    inboxPrefix: user.inboxPrefix,
    ...(m.caPem === undefined ? {} : { caPem: m.caPem }),
    trustedKeys: [...trustedKeys],
    labels,
    userPublicKey: user.userPublicKey,
    issuedAtMs: user.issuedAtS * 1000,
  };
  return { bundle, issuedAtS: user.issuedAtS };
}

export async function createEnrollmentService(options: {
  config: ControlPlaneConfig;
  kv: KvBucket;
  /** Keys model manifests must be signed with, for the bundle. */
  trustedKeys: readonly TrustedKey[];
  logger: Logger;
  now?: () => number;
}): Promise<EnrollmentService> {
  const { config, kv, logger } = options;
  const now = options.now ?? Date.now;
  const material = await loadMaterial(config);

  const need = (): Material => {
    if (material === undefined) {
      throw new OutpostError(ErrorCode.SECURITY_NOT_CONFIGURED, 'this control plane has no `security` config (NATS JWT auth): it cannot enrol or revoke agents; run `outpost-control-plane setup`');
    }
    return material;
  };

  const readRecord = async (agentId: string): Promise<{ record: EnrollmentRecord; revision: number } | undefined> => {
    const entry = await kv.get(agentKey(agentId));
    return entry === undefined ? undefined : { record: EnrollmentRecordSchema.parse(decodeKvJson(entry.value, agentKey(agentId))), revision: entry.revision };
  };

  /** Adds revocations with compare-and-set (any replica may revoke at once), then pushes the account. */
  const revokeKeys = async (m: Material, keys: Readonly<Record<string, number>>): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const entry = await kv.get(REVOCATIONS_KEY);
      const current = entry === undefined ? {} : RevocationsSchema.parse(decodeKvJson(entry.value, REVOCATIONS_KEY)).revocations;
      const next = { ...current, ...keys };
      try {
        const bytes = encodeKvJson({ revocations: next });
        if (entry === undefined) await kv.create(REVOCATIONS_KEY, bytes);
        else await kv.update(REVOCATIONS_KEY, bytes, entry.revision);
        await pushAccountJwt(m.pushServers, m.systemCreds, await agentsAccountJwt(m, next), m.pushTls);
        return;
      } catch (err) {
        if (!isOutpostError(err, ErrorCode.KV_CONFLICT) || attempt >= 10) throw err;
      }
    }
  };

  return {
    async enroll(agentId, labels, actor) {
      const m = need();
      const previous = await readRecord(agentId);
      const { bundle, issuedAtS } = await mintEnrollmentBundle(m, agentId, labels ?? previous?.record.labels ?? {}, options.trustedKeys);
      const record: EnrollmentRecord = { agentId, userPublicKey: bundle.userPublicKey, issuedAtS, labels: bundle.labels, enrolledAtMs: now(), enrolledBy: actor };
      const bytes = encodeKvJson(record);
      if (previous === undefined) await kv.create(agentKey(agentId), bytes);
      else await kv.update(agentKey(agentId), bytes, previous.revision);
      // Enrolling again rotates the key: the old user is revoked.
      if (previous !== undefined && previous.record.revokedAtMs === undefined) await revokeKeys(m, { [previous.record.userPublicKey]: Math.floor(now() / 1000) });
      logger.info({ agentId, userPublicKey: bundle.userPublicKey, rotated: previous !== undefined, actor }, 'agent enrolled');
      return bundle;
    },
    async revoke(agentId, actor) {
      const m = need();
      const found = await readRecord(agentId);
      if (found === undefined) throw new OutpostError(ErrorCode.AGENT_NOT_FOUND, `agent ${agentId} was never enrolled`, { details: { agentId } });
      const revokedAtMs = now();
      // A revocation covers JWTs issued up to its time (seconds): the current user's and any before it.
      await revokeKeys(m, { [found.record.userPublicKey]: Math.max(found.record.issuedAtS, Math.floor(revokedAtMs / 1000)) });
      await kv.update(agentKey(agentId), encodeKvJson({ ...found.record, revokedAtMs, revokedBy: actor }), found.revision).catch((err: unknown) => {
        logger.warn({ err, agentId }, 'revoked, but the enrolment record could not be marked');
      });
      logger.info({ agentId, userPublicKey: found.record.userPublicKey, actor }, 'agent revoked');
      return { agentId, userPublicKey: found.record.userPublicKey, revokedAtMs };
    },
    async syncAccount() {
      if (material === undefined) return;
      const entry = await kv.get(REVOCATIONS_KEY);
      const revocations = entry === undefined ? {} : RevocationsSchema.parse(decodeKvJson(entry.value, REVOCATIONS_KEY)).revocations;
      await pushAccountJwt(material.pushServers, material.systemCreds, await agentsAccountJwt(material, revocations), material.pushTls);
    },
  };
}
