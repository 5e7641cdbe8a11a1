// Enrolment and revocation of agents (DESIGN section 4): the bundle an agent's config points
// to (its NATS credentials: a secret, answered once, never logged), and revocation, which
// drops the agent's live NATS connections.
import { AgentIdSchema, AgentParamsSchema, EnrollRequestSchema, ErrorCode, isOutpostError } from '@outpost/shared';
import type { EnrollmentService } from '../fleet/enrollment.js';
import { apiError } from './errors.js';
import type { HttpResponse } from './http-server.js';
import { defineRoute, type ApiRoute, type AuditInput, type RouteError } from './route-spec.js';

const NOT_CONFIGURED: RouteError = { status: 409, code: ErrorCode.SECURITY_NOT_CONFIGURED, when: 'the control plane has no `security` config (NATS JWT auth)' };

async function answer(work: () => Promise<HttpResponse>): Promise<HttpResponse> {
  try {
    return await work();
  } catch (err) {
    if (isOutpostError(err, ErrorCode.SECURITY_NOT_CONFIGURED)) return apiError(409, ErrorCode.SECURITY_NOT_CONFIGURED, err.message);
    if (isOutpostError(err, ErrorCode.AGENT_NOT_FOUND)) return apiError(404, ErrorCode.AGENT_NOT_FOUND, err.message, err.details);
    throw err;
  }
}

/** `agent <id>` for the audit log, when the path holds a valid agent id. */
const agentDetail = ({ params }: AuditInput): string | undefined => (AgentIdSchema.safeParse(params['agentId']).success ? `agent ${params['agentId']}` : undefined);

export function createEnrollmentRoutes(enrollment: EnrollmentService): ApiRoute[] {
  const params = AgentParamsSchema;
  return [
    defineRoute({
      method: 'POST',
      path: '/api/agents/:agentId/enroll',
      access: 'operator',
      summary: "Enrol an agent: mint its NATS user and answer its bundle",
      description:
        'The bundle (servers, NATS creds, CA, trusted model keys, labels) is a secret: write it 0600 where the agent config points (`uplink.enrollmentFile`). Enrolling an agent again rotates its key (the previous one is revoked) and, without `labels`, keeps its labels.',
      params,
      body: { schema: EnrollRequestSchema, description: '`{ labels? }`' },
      errors: [NOT_CONFIGURED],
      // The answer holds the agent's credentials: the audit entry takes the agent id, nothing of the bundle.
      audit: { action: 'agent.enroll', detail: agentDetail },
      response: { description: 'The enrolment bundle', contentType: 'application/json', schemaName: 'EnrollmentBundle' },
      handle: ({ params: p, body, actor }) => answer(async () => ({ status: 201, body: await enrollment.enroll(p.agentId, body.labels, actor), headers: { 'cache-control': 'no-store' } })),
    }),
    defineRoute({
      method: 'POST',
      path: '/api/agents/:agentId/revoke',
      access: 'operator',
      summary: "Revoke an agent's NATS user: its live connections are dropped and it cannot connect again",
      params,
      errors: [NOT_CONFIGURED, { status: 404, code: ErrorCode.AGENT_NOT_FOUND, when: 'the agent was never enrolled' }],
      audit: { action: 'agent.revoke', detail: agentDetail },
      response: { description: 'What was revoked', contentType: 'application/json', schemaName: 'Revocation' },
      handle: ({ params: p, actor }) => answer(async () => ({ status: 200, body: await enrollment.revoke(p.agentId, actor) })),
    }),
  ];
}
