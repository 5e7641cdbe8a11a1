// The agent's diagnostics service (issue [install]): it answers the control plane on its own
// subjects `outpost.diag.{agentId}.{doctor|status|logs}` (plain NATS request/reply), which its
// NATS user alone may subscribe to; a reply goes back through the user's response permission.
//
// Why not @nats-io/services (the NATS services framework): its discovery and stats live on
// `$SRV.PING|INFO|STATS[.name[.id]]`, subjects every instance subscribes to, so every agent
// would hear every discovery request of the fleet (10,000 answers to one ping) and could answer
// in any name it likes (the instance id is self-chosen): the permission model keeps an agent to
// its own subjects, and the control plane already knows its agents (heartbeats). Three fixed
// endpoints with the agent id in the subject need none of it.
import {
  DiagLogsRequestSchema,
  DiagRequest,
  ErrorCode,
  parseDiagSubject,
  diagListenSubject,
  SERVICE_ERROR_HEADER,
  type AgentDiagStatus,
  type DiagLogsReply,
  type DoctorReport,
  type Logger,
} from '@outpost/shared';
import type { IncomingRequest, NatsTransport } from '../uplink/nats-transport.js';
import type { LogRing } from './log-ring.js';

export interface DiagServiceOptions {
  agentId: string;
  transport: Pick<NatsTransport, 'serve'>;
  /** Runs the doctor inside the agent. */
  doctor(): Promise<DoctorReport>;
  status(): AgentDiagStatus;
  /** The recent log lines; undefined when the agent was given a logger that keeps none. */
  logs: LogRing | undefined;
  logger: Logger;
}

export interface DiagService {
  /** Answers every later request with an error (the subscription ends with the connection). */
  close(): void;
}

const encode = (value: unknown): Uint8Array => Buffer.from(JSON.stringify(value));
const EMPTY_LOGS: DiagLogsReply = { lines: [], lastSeq: 0, missed: 0, more: false };

export function startDiagService(options: DiagServiceOptions): DiagService {
  const { agentId, logger } = options;
  let closed = false;
  /** One doctor run at a time: requests meanwhile share its report. */
  let doctorRun: Promise<DoctorReport> | undefined;

  const refuse = (request: IncomingRequest, code: string, message: string): void => request.respond(Buffer.from(message), { [SERVICE_ERROR_HEADER]: code });

  const answer = async (request: IncomingRequest, what: DiagRequest): Promise<void> => {
    switch (what) {
      case DiagRequest.doctor: {
        doctorRun ??= options.doctor().finally(() => {
          doctorRun = undefined;
        });
        request.respond(encode(await doctorRun));
        return;
      }
      case DiagRequest.status:
        request.respond(encode(options.status()));
        return;
      case DiagRequest.logs: {
        const parsed = DiagLogsRequestSchema.safeParse(request.data.byteLength === 0 ? {} : JSON.parse(Buffer.from(request.data).toString('utf8')));
        if (!parsed.success) return refuse(request, ErrorCode.REQUEST_INVALID, 'expected { afterSeq?, limit? }');
        request.respond(encode(options.logs?.read(parsed.data.afterSeq, parsed.data.limit) ?? EMPTY_LOGS));
        return;
      }
    }
  };

  options.transport.serve(diagListenSubject(agentId), (request) => {
    const parsed = parseDiagSubject(request.subject);
    // The NATS permissions deliver only this agent's subjects; anything else is a bug, refused.
    if (parsed === undefined || parsed.agentId !== agentId) return refuse(request, ErrorCode.REQUEST_INVALID, 'unknown diagnostics request');
    if (closed) return refuse(request, ErrorCode.INTERNAL_ERROR, 'the agent is stopping');
    answer(request, parsed.request).catch((err: unknown) => {
      logger.warn({ err, subject: request.subject }, 'diagnostics request failed');
      refuse(request, err instanceof SyntaxError ? ErrorCode.REQUEST_INVALID : ErrorCode.INTERNAL_ERROR, err instanceof SyntaxError ? 'the request is not JSON' : 'the agent could not answer; see its log');
    });
  });

  return {
    close() {
      closed = true;
    },
  };
}
