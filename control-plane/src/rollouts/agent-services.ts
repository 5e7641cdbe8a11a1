// The services agents call (request/reply), so that an agent needs no JetStream API at all
// (DESIGN section 4: an agent in its own account imports only what it needs):
//   outpost.svc.desired.{agentId} -> its desired state and KV revision,
//   outpost.svc.model.{agentId}   -> a chunk of a model file from the model store,
//   outpost.svc.time.{agentId}    -> this replica's clock (the agent's doctor measures its skew).
// The agent id comes from the subject, which an agent's NATS permissions let only that agent
// publish. Every replica serves them in one queue group.
import {
  AGENT_SERVICE_SUBJECTS,
  DesiredReplySchema,
  ErrorCode,
  MODEL_CHUNK_BYTES,
  ModelChunkRequestSchema,
  modelObjectNames,
  parseServiceSubject,
  parseTimeServiceSubject,
  SERVICE_ERROR_HEADER,
  TimeReplySchema,
  TOTAL_BYTES_HEADER,
  type DesiredReply,
  type Logger,
} from '@outpost/shared';
import type { NatsClient, ObjectStoreBucket, ServiceRequest, Subscription } from '../nats/types.js';
import type { DesiredStore } from './stores.js';

export const AGENT_SERVICE_QUEUE = 'outpost-control-plane';
/** Model files read from the object store are kept this long, so the chunks of one fetch read it once. */
const MODEL_CACHE_MS = 60_000;

export interface AgentServicesOptions {
  nats: NatsClient;
  desired: DesiredStore;
  models: ObjectStoreBucket;
  logger: Logger;
}

const empty = new Uint8Array(0);

export function startAgentServices(options: AgentServicesOptions): Subscription {
  const { nats, desired, models, logger } = options;
  const files = new Map<string, { bytes: Promise<Uint8Array | undefined>; atMs: number }>();

  const fail = (request: ServiceRequest, code: string, message: string): void => request.respond(Buffer.from(message), { [SERVICE_ERROR_HEADER]: code });

  const readFile = (objectName: string): Promise<Uint8Array | undefined> => {
    const nowMs = Date.now();
    for (const [name, entry] of files) if (nowMs - entry.atMs > MODEL_CACHE_MS) files.delete(name);
    let entry = files.get(objectName);
    if (entry === undefined) {
      entry = { bytes: models.get(objectName), atMs: nowMs };
      files.set(objectName, entry);
      entry.bytes.catch(() => files.delete(objectName));
    }
    return entry.bytes;
  };

  const serveDesired = async (request: ServiceRequest, agentId: string): Promise<void> => {
    // Read from KV, not the view: an agent asking right after a write must get that write.
    const current = await desired.read(agentId);
    const reply: DesiredReply = current === undefined ? { revision: 0, desired: null } : { revision: current.revision, desired: current.value };
    request.respond(Buffer.from(JSON.stringify(DesiredReplySchema.parse(reply))));
  };

  const serveModel = async (request: ServiceRequest): Promise<void> => {
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(request.data).toString('utf8'));
    } catch {
      body = undefined;
    }
    const parsed = ModelChunkRequestSchema.safeParse(body);
    if (!parsed.success) return fail(request, ErrorCode.REQUEST_INVALID, 'expected { name, version, file, offset }');
    const { name, version, file, offset } = parsed.data;
    const names = modelObjectNames(name, version);
    const bytes = await readFile(file === 'manifest' ? names.manifest : names.onnx);
    if (bytes === undefined) return fail(request, ErrorCode.MODEL_NOT_FOUND, `model ${name}@${version} is not in the model store`);
    request.respond(offset >= bytes.byteLength ? empty : bytes.subarray(offset, offset + MODEL_CHUNK_BYTES), { [TOTAL_BYTES_HEADER]: String(bytes.byteLength) });
  };

  return nats.serve(AGENT_SERVICE_SUBJECTS, AGENT_SERVICE_QUEUE, (request) => {
    // The doctor takes the middle of its round trip as the moment of this stamp.
    if (parseTimeServiceSubject(request.subject) !== undefined) return request.respond(Buffer.from(JSON.stringify(TimeReplySchema.parse({ nowMs: Date.now() }))));
    const parsed = parseServiceSubject(request.subject);
    if (parsed === undefined) return fail(request, ErrorCode.REQUEST_INVALID, 'unknown service');
    const work = parsed.service === 'desired' ? serveDesired(request, parsed.agentId) : serveModel(request);
    work.catch((err: unknown) => {
      logger.warn({ err, subject: request.subject }, 'agent service request failed');
      fail(request, ErrorCode.INTERNAL_ERROR, 'the control plane could not answer; try again');
    });
  });
}
