// The enrolment bundle (DESIGN section 4): what `outpostctl agents enroll ID` writes for one
// agent and its config points to: its NATS credentials (a user of the AGENTS account, minted by
// the control plane), where NATS is, the CA to check it with, and the keys its models must be
// signed with. A secret: written 0600, never printed.
import { z } from 'zod';
import { TrustedKeySchema } from '../model/manifest.js';
import { AgentIdSchema } from '../schemas/uplink.js';

export const EnrollmentBundleSchema = z.object({
  v: z.literal(1),
  agentId: AgentIdSchema,
  /** NATS URLs (tls:// when the server wants TLS). */
  servers: z.array(z.string().regex(/^(nats|tls):\/\/.+/)).min(1),
  /** The NATS creds file content: the user JWT and its seed. */
  creds: z.string().min(1),
  /** The agent's replies come only under this prefix (its NATS permissions say so). */
  inboxPrefix: z.string().min(1),
  /** PEM of the CA that signed the NATS server's certificate, when it uses TLS. */
  caPem: z.string().optional(),
  /** Keys model manifests must be signed with. */
  trustedKeys: z.array(TrustedKeySchema),
  /** Labels the operator gave at enrolment (the agent's own config may add more). */
  labels: z.record(z.string(), z.string()),
  /** Public key of the NATS user: a revocation names it. */
  userPublicKey: z.string(),
  issuedAtMs: z.number().int(),
});
export type EnrollmentBundle = z.infer<typeof EnrollmentBundleSchema>;

/** `accounts.json` written by `outpost-control-plane setup`: the public keys of the operator's accounts. */
export const AccountsFileSchema = z.object({ outpostAccount: z.string().min(1), agentsAccount: z.string().min(1), systemAccount: z.string().min(1) });
export type AccountsFile = z.infer<typeof AccountsFileSchema>;

/** KV value `agents.{agentId}` in the enrolments bucket: who holds which NATS user. */
export const EnrollmentRecordSchema = z.object({
  agentId: AgentIdSchema,
  userPublicKey: z.string(),
  /** `iat` of the user JWT, epoch seconds. */
  issuedAtS: z.number().int(),
  labels: z.record(z.string(), z.string()),
  enrolledAtMs: z.number().int(),
  enrolledBy: z.string(),
  revokedAtMs: z.number().int().optional(),
  revokedBy: z.string().optional(),
});
export type EnrollmentRecord = z.infer<typeof EnrollmentRecordSchema>;

/** KV value `account.revocations` in the enrolments bucket: user public key -> epoch seconds (JWTs issued up to then are refused). */
export const RevocationsSchema = z.object({ revocations: z.record(z.string(), z.number().int()) });

/** `POST /api/agents/{agentId}/enroll` body. */
export const EnrollRequestSchema = z.strictObject({
  /** Labels for the bundle; without them a re-enrolment keeps the previous enrolment's. */
  labels: z.record(z.string().regex(/^[a-z0-9_.-]{1,63}$/, 'label names are lowercase [a-z0-9_.-]'), z.string().max(256)).optional(),
});

/** `POST /api/agents/{agentId}/revoke` answer. */
export const RevocationResponseSchema = z.object({ agentId: AgentIdSchema, userPublicKey: z.string(), revokedAtMs: z.number().int() });
export type RevocationResponse = z.infer<typeof RevocationResponseSchema>;
