// How the agent proves who it is to NATS (DESIGN section 4): an enrolment bundle (credentials,
// servers, CA, inbox prefix, labels and trusted model keys from `outpostctl agents enroll`), or
// a creds file and TLS files named one by one. Secret files are read once at start and refused
// when others may read them; their content never reaches a log.
import { readFile } from 'node:fs/promises';
import { assertTrustedKeys } from '../inference/model-source.js';
import { EnrollmentBundleSchema, ErrorCode, OutpostError, readSecretFile, type AgentConfig, type EnrollmentBundle, type TrustedKey } from '@outpost/shared';

/** What the NATS transport connects with, read from the files the config names. */
export interface UplinkCredentials {
  servers: string[];
  inboxPrefix: string;
  /** Content of a NATS creds file (user JWT and seed). */
  creds?: string;
  /** PEMs: the CA to check the server with, and a client certificate and key. */
  tls?: { ca?: string; cert?: string; key?: string };
}

/** The config with the bundle's trusted keys and labels merged in, and the uplink's credentials. */
export interface EnrolledConfig {
  config: AgentConfig;
  credentials: UplinkCredentials | undefined;
}

/**
 * Reads the enrolment bundle, creds file and TLS files of `config.uplink`. The bundle's labels
 * come first (the config's own win over them) and its trusted keys join the config's; servers
 * and inbox prefix in the config win over the bundle's.
 *
 * @throws OutpostError SECRET_FILE_UNSAFE (a bundle, creds or key file others may read),
 *   CONFIG_UNREADABLE, CONFIG_INVALID (a bundle that is not one, or that names another agent).
 */
export async function readUplinkCredentials(config: AgentConfig): Promise<EnrolledConfig> {
  const uplink = config.uplink;
  if (uplink === undefined) return { config, credentials: undefined };
  const bundle = uplink.enrollmentFile === undefined ? undefined : await readBundle(uplink.enrollmentFile, config.agentId);
  const tlsFiles = uplink.tls;
  const tls = {
    ...(bundle?.caPem === undefined ? {} : { ca: bundle.caPem }),
    ...(tlsFiles?.caFile === undefined ? {} : { ca: await readFile(tlsFiles.caFile, 'utf8') }),
    ...(tlsFiles?.certFile === undefined ? {} : { cert: await readFile(tlsFiles.certFile, 'utf8') }),
    ...(tlsFiles?.keyFile === undefined ? {} : { key: await readSecretFile(tlsFiles.keyFile, 'NATS client key') }),
  };
  const creds = bundle?.creds ?? (uplink.credsFile === undefined ? undefined : await readSecretFile(uplink.credsFile, 'NATS creds file'));
  const servers = uplink.servers ?? bundle?.servers;
  // The schema already insists on one of the two; this keeps the type honest.
  if (servers === undefined) throw new OutpostError(ErrorCode.CONFIG_INVALID, 'uplink.servers: required unless uplink.enrollmentFile names an enrolment bundle');
  const credentials: UplinkCredentials = {
    servers,
    // The bundle's prefix is the only one its NATS permissions let replies reach.
    inboxPrefix: bundle?.inboxPrefix ?? uplink.inboxPrefix,
    ...(creds === undefined ? {} : { creds }),
    ...(Object.keys(tls).length === 0 ? {} : { tls }),
  };
  if (bundle === undefined) return { config, credentials };
  const trustedKeys = mergeKeys(config.inference.trustedKeys, bundle.trustedKeys);
  if (config.inference.enabled && trustedKeys.length === 0) {
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `inference.trustedKeys: needs at least one key when inference is enabled, and the enrolment bundle ${uplink.enrollmentFile} brings none`);
  }
  return { config: { ...config, labels: { ...bundle.labels, ...config.labels }, inference: { ...config.inference, trustedKeys } }, credentials };
}

async function readBundle(path: string, agentId: string): Promise<EnrollmentBundle> {
  const text = await readSecretFile(path, 'enrolment bundle');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // Never the parser's message: it quotes the file, which holds a seed.
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `uplink.enrollmentFile: ${path} is not JSON; write it again with \`outpostctl agents enroll\``, { details: { path } });
  }
  const parsed = EnrollmentBundleSchema.safeParse(json);
  if (!parsed.success) {
    const where = parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `uplink.enrollmentFile: ${path} is not an enrolment bundle (bad keys: ${where})`, { details: { path } });
  }
  if (parsed.data.agentId !== agentId) {
    throw new OutpostError(ErrorCode.CONFIG_INVALID, `uplink.enrollmentFile: ${path} was written for agent ${parsed.data.agentId}, not ${agentId}`, { details: { path } });
  }
  assertTrustedKeys(parsed.data.trustedKeys, `enrolment bundle ${path}`);
  return parsed.data;
}

/** The config's keys and the bundle's, each keyId once (the config's entry wins). */
function mergeKeys(own: readonly TrustedKey[], fromBundle: readonly TrustedKey[]): TrustedKey[] {
  const ids = new Set(own.map((k) => k.keyId));
  return [...own, ...fromBundle.filter((k) => !ids.has(k.keyId))];
}
