// The rollout and model routes of the HTTP API (DESIGN section 6): models published and listed,
// rollouts created (or dry-run), listed, read with their progress, paused, resumed, aborted and
// rolled back. Every change is one compare-and-set write of the rollout's document, recorded in
// its history with the token that asked for it. Reading needs a viewer token; publishing,
// creating and steering need an operator token and are written to the audit log.
import {
  ErrorCode,
  isOutpostError,
  MAX_MODEL_UPLOAD_BYTES,
  ModelManifestSchema,
  ModelUploadSchema,
  RolloutActionParamsSchema,
  RolloutCreateSchema,
  RolloutIdSchema,
  RolloutParamsSchema,
  RolloutStatusSchema,
  type ModelListResponse,
  type RolloutListResponse,
} from '@outpost/shared';
import type { ModelStore } from '../rollouts/model-store.js';
import type { RolloutService } from '../rollouts/service.js';
import { apiError } from './errors.js';
import type { HttpResponse } from './http-server.js';
import { defineRoute, type ApiRoute, type AuditInput, type RouteError } from './route-spec.js';

export interface RolloutRouteDeps {
  rollouts: RolloutService;
  models: ModelStore;
}

const ok = (body: unknown, status = 200): HttpResponse => ({ status, body });

/** Status of each error an operator can cause on these routes. */
const STATUS: Readonly<Record<string, number>> = {
  [ErrorCode.REQUEST_INVALID]: 400,
  [ErrorCode.MODEL_INVALID]: 400,
  [ErrorCode.MODEL_DIGEST_MISMATCH]: 400,
  [ErrorCode.MODEL_KEY_UNTRUSTED]: 400,
  [ErrorCode.MODEL_KEY_INVALID]: 400,
  [ErrorCode.MODEL_SIGNATURE_INVALID]: 400,
  [ErrorCode.MODEL_EXPIRED]: 400,
  [ErrorCode.MODEL_NOT_FOUND]: 404,
  [ErrorCode.ROLLOUT_NOT_FOUND]: 404,
  [ErrorCode.MODEL_EXISTS]: 409,
  [ErrorCode.ROLLOUT_CONFLICT]: 409,
  [ErrorCode.ROLLOUT_STATE_INVALID]: 409,
};

/** An OutpostError an operator caused becomes its 4xx with the stable code; anything else is rethrown (a 500). */
async function answer(work: () => Promise<HttpResponse>): Promise<HttpResponse> {
  try {
    return await work();
  } catch (err) {
    if (isOutpostError(err) && STATUS[err.code] !== undefined) {
      return apiError(STATUS[err.code]!, err.code as Parameters<typeof apiError>[1], err.message, err.details);
    }
    throw err;
  }
}

const MODEL_ERRORS: readonly RouteError[] = [
  { status: 400, code: ErrorCode.MODEL_INVALID, when: 'the manifest is not a valid signed manifest; the message lists each bad field by path' },
  { status: 400, code: ErrorCode.MODEL_DIGEST_MISMATCH, when: 'the .onnx bytes do not match the manifest (size or sha256)' },
  { status: 400, code: ErrorCode.MODEL_KEY_UNTRUSTED, when: 'signed with a key not in `rollouts.trustedKeys` (only when the control plane has trusted keys)' },
  { status: 400, code: ErrorCode.MODEL_KEY_INVALID, when: 'the trusted key that should verify the signature is not an ed25519 public key (only when the control plane has trusted keys)' },
  { status: 400, code: ErrorCode.MODEL_SIGNATURE_INVALID, when: 'the signature does not verify (only when the control plane has trusted keys)' },
  { status: 400, code: ErrorCode.MODEL_EXPIRED, when: 'the manifest has expired (only when the control plane has trusted keys)' },
  { status: 409, code: ErrorCode.MODEL_EXISTS, when: 'this name and version are stored with other bytes' },
];
const NOT_FOUND: RouteError = { status: 404, code: ErrorCode.ROLLOUT_NOT_FOUND, when: 'no rollout has this id' };

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;
/** A rollout id, when `value` is one (the audit log takes nothing else from a raw request). */
const rolloutIdOf = (value: unknown): string | undefined => (RolloutIdSchema.safeParse(value).success ? (value as string) : undefined);

/** `name@version` of the uploaded manifest, when both match their patterns. */
function modelDetail({ body, response }: AuditInput): string | undefined {
  const stored = response !== undefined && response.status < 300 && isObject(response.body) ? response.body : undefined;
  const manifest = stored ?? (isObject(body) && isObject(body['manifest']) && isObject(body['manifest']['manifest']) ? body['manifest']['manifest'] : undefined);
  if (manifest === undefined) return undefined;
  const name = ModelManifestSchema.shape.name.safeParse(manifest['name']);
  const version = ModelManifestSchema.shape.version.safeParse(manifest['version']);
  return name.success && version.success ? `${name.data}@${version.data}` : undefined;
}

/** The rollout created (from the answer), or the id the spec asked for. */
function rolloutCreateDetail({ body, response }: AuditInput): string | undefined {
  const created = response !== undefined && response.status === 201 && isObject(response.body) ? rolloutIdOf(response.body['id']) : undefined;
  const asked = isObject(body) && isObject(body['spec']) ? rolloutIdOf(body['spec']['id']) : undefined;
  const id = created ?? asked;
  return id === undefined ? undefined : `rollout ${id}`;
}

/** The rollout acted on, and its status after the action when it was done. */
function rolloutActionDetail({ params, response }: AuditInput): string | undefined {
  const id = rolloutIdOf(params['id']);
  if (id === undefined) return undefined;
  const status = response !== undefined && response.status === 200 && isObject(response.body) ? RolloutStatusSchema.safeParse(response.body['status']) : undefined;
  return status?.success === true ? `rollout ${id}, now ${status.data}` : `rollout ${id}`;
}

const ROLLOUT_ACTIONS: ReadonlySet<string> = new Set(RolloutActionParamsSchema.shape.action.options);

export function createRolloutRoutes(deps: RolloutRouteDeps): ApiRoute[] {
  return [
    defineRoute({
      method: 'GET',
      path: '/api/models',
      access: 'viewer',
      summary: 'Models in the model store',
      response: { description: 'Every published model version', contentType: 'application/json', schemaName: 'ModelList' },
      async handle() {
        const body: ModelListResponse = { models: await deps.models.list() };
        return ok(body);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/api/models',
      access: 'operator',
      summary: 'Publish a signed model',
      description: 'Stores a signed manifest and its .onnx bytes (base64) in the model store, after checking the manifest form and the digest. Publishing the same version with the same bytes again answers 200 with the stored entry.',
      body: { schema: ModelUploadSchema, description: 'The signed manifest and the .onnx bytes', limitBytes: Math.ceil((MAX_MODEL_UPLOAD_BYTES * 4) / 3) + 1024 * 1024 },
      errors: MODEL_ERRORS,
      audit: { action: 'model.publish', detail: modelDetail },
      response: { description: 'The stored model', contentType: 'application/json', schemaName: 'ModelEntry' },
      handle: ({ body }) =>
        answer(async () => {
          const { entry, stored } = await deps.models.publish(body.manifest, Buffer.from(body.onnxBase64, 'base64'));
          return ok(entry, stored ? 201 : 200);
        }),
    }),
    defineRoute({
      method: 'GET',
      path: '/api/rollouts',
      access: 'viewer',
      summary: 'Rollouts, newest first',
      response: { description: 'Every rollout', contentType: 'application/json', schemaName: 'RolloutList' },
      async handle() {
        const body: RolloutListResponse = { rollouts: deps.rollouts.list() };
        return ok(body);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/api/rollouts',
      access: 'operator',
      summary: 'Create a rollout, or plan one (dryRun)',
      description:
        'Checks the spec (every bad key named by its path), resolves the model in the store, refuses a selection that overlaps a rollout still in progress, and stores the rollout as pending; the controller starts it. With `dryRun: true` nothing is created: the answer says which agent goes in which wave and why.',
      body: { schema: RolloutCreateSchema, description: '`{ spec, dryRun? }`' },
      errors: [
        { status: 404, code: ErrorCode.MODEL_NOT_FOUND, when: "the spec's model is not in the model store" },
        { status: 409, code: ErrorCode.ROLLOUT_CONFLICT, when: 'another rollout in progress selects some of the same agents, or the id exists' },
      ],
      // A dry run creates nothing: a viewer may plan, and a plan is not audited.
      readOnlyWhen: { description: 'with `dryRun: true` (a plan; nothing is created)', test: (body) => isObject(body) && body['dryRun'] === true },
      audit: { action: 'rollout.create', detail: rolloutCreateDetail },
      response: { description: 'The new rollout (201), or its plan (200, dryRun)', contentType: 'application/json', schemaName: 'RolloutView' },
      handle: ({ body, actor }) =>
        answer(async () => {
          if (body.dryRun) return ok(await deps.rollouts.plan(body.spec));
          const doc = await deps.rollouts.create(body.spec, actor);
          return ok(await deps.rollouts.view(doc.id), 201);
        }),
    }),
    defineRoute({
      method: 'GET',
      path: '/api/rollouts/:id',
      access: 'viewer',
      summary: 'One rollout: its document (waves, gate values, history) and per-wave progress now',
      params: RolloutParamsSchema,
      errors: [NOT_FOUND],
      response: { description: 'The rollout', contentType: 'application/json', schemaName: 'RolloutView' },
      handle: ({ params }) => answer(async () => ok(await deps.rollouts.view(params.id))),
    }),
    defineRoute({
      method: 'POST',
      path: '/api/rollouts/:id/:action',
      access: 'operator',
      summary: 'Pause, resume, abort or roll back a rollout',
      description:
        '`pause`: no further step until resumed. `resume`: go on (a wave paused as inconclusive or failed counts as passed). `abort`: stop for good; updated agents keep the change. `rollback`: every agent the rollout touched goes back to what it ran before, in one step.',
      params: RolloutActionParamsSchema,
      errors: [NOT_FOUND, { status: 409, code: ErrorCode.ROLLOUT_STATE_INVALID, when: "the rollout's status does not allow the action" }],
      audit: {
        action: (params) => (ROLLOUT_ACTIONS.has(params['action'] ?? '') ? `rollout.${params['action']}` : 'rollout.action'),
        detail: rolloutActionDetail,
      },
      response: { description: 'The rollout after the action', contentType: 'application/json', schemaName: 'RolloutView' },
      handle: ({ params, actor }) =>
        answer(async () => {
          await deps.rollouts.act(params.id, params.action, actor);
          return ok(await deps.rollouts.view(params.id));
        }),
    }),
  ];
}
