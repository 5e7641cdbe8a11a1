// The OpenAPI 3.1 document of the HTTP API, generated from the route definitions and the shared
// zod schemas they use (zod 4 writes JSON Schema 2020-12, OpenAPI 3.1's dialect), so the
// document cannot drift from what the server validates and answers. Pure.
import {
  AgentDetailResponseSchema,
  AgentListResponseSchema,
  AgentSummarySchema,
  AnomalyListResponseSchema,
  AnomalySchema,
  ApiErrorResponseSchema,
  AuditListEntrySchema,
  AuditListResponseSchema,
  AgentDiagStatusSchema,
  DiagLogsReplySchema,
  DoctorReportSchema,
  DeviceDetailResponseSchema,
  DeviceListResponseSchema,
  DeviceSummarySchema,
  ErrorCode,
  HealthResponseSchema,
  InferenceEventSchema,
  InferencePointSchema,
  EnrollmentBundleSchema,
  ModelEntrySchema,
  RevocationResponseSchema,
  ModelListResponseSchema,
  RolloutListResponseSchema,
  RolloutPlanSchema,
  RolloutSummarySchema,
  RolloutViewSchema,
  SeriesPointSchema,
  SeriesResponseSchema,
  TelemetryEventSchema,
  toJsonSchema,
  toSchemaComponents,
  type ApiErrorCode,
  type ApiSchema,
  type JsonSchemaObject,
} from '@outpost/shared';
import type { RouteDoc, RouteError } from './route-spec.js';

/** Schemas named in `components.schemas`; a route's `response.schemaName` is one of these keys. */
export const API_SCHEMAS = {
  AgentList: AgentListResponseSchema,
  AgentSummary: AgentSummarySchema,
  AgentDetail: AgentDetailResponseSchema,
  DeviceList: DeviceListResponseSchema,
  DeviceSummary: DeviceSummarySchema,
  DeviceDetail: DeviceDetailResponseSchema,
  Series: SeriesResponseSchema,
  SeriesPoint: SeriesPointSchema,
  InferencePoint: InferencePointSchema,
  AnomalyList: AnomalyListResponseSchema,
  Anomaly: AnomalySchema,
  TelemetryEvent: TelemetryEventSchema,
  InferenceEvent: InferenceEventSchema,
  Health: HealthResponseSchema,
  ApiError: ApiErrorResponseSchema,
  ModelList: ModelListResponseSchema,
  ModelEntry: ModelEntrySchema,
  RolloutList: RolloutListResponseSchema,
  RolloutSummary: RolloutSummarySchema,
  RolloutView: RolloutViewSchema,
  RolloutPlan: RolloutPlanSchema,
  EnrollmentBundle: EnrollmentBundleSchema,
  Revocation: RevocationResponseSchema,
  AuditList: AuditListResponseSchema,
  AuditEntry: AuditListEntrySchema,
  DoctorReport: DoctorReportSchema,
  AgentDiagStatus: AgentDiagStatusSchema,
  AgentLogs: DiagLogsReplySchema,
} as const satisfies Record<string, ApiSchema>;
export type ApiSchemaName = keyof typeof API_SCHEMAS;

/**
 * The bearer token of every /api route but this document. OpenAPI 3.1 lets a requirement of an
 * http scheme list the roles it needs: `[]` any token (viewer or operator), `['operator']`.
 */
const SECURITY_SCHEME = 'apiToken';

/** An unknown path has no route to document it on. */
export const ROUTE_NOT_FOUND_ERROR: RouteError = { status: 404, code: ErrorCode.ROUTE_NOT_FOUND, when: 'no route matches the method and path' };

export interface OpenApiOptions {
  /** The control plane's version. */
  version: string;
}

/** `/api/agents/:agentId` -> `/api/agents/{agentId}` */
export function toOpenApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function operationId(doc: RouteDoc): string {
  const words = doc.path
    .split('/')
    .filter((w) => w !== '')
    .map((w) => w.replace(/^:/, 'by-').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase()));
  const name = words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
  return `${doc.method.toLowerCase()}${name === '' ? 'Root' : name}`;
}

function parameters(schema: ApiSchema | undefined, where: 'path' | 'query'): JsonSchemaObject[] {
  if (schema === undefined) return [];
  const json = toJsonSchema(schema, 'input') as { properties?: Record<string, JsonSchemaObject>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      required: where === 'path' || (json.required ?? []).includes(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    };
  });
}

function errorResponses(errors: readonly RouteError[]): Record<string, JsonSchemaObject> {
  const byStatus = new Map<number, RouteError[]>();
  for (const error of errors) byStatus.set(error.status, [...(byStatus.get(error.status) ?? []), error]);
  const responses: Record<string, JsonSchemaObject> = {};
  for (const [status, list] of byStatus) {
    responses[String(status)] = {
      description: list.map((e) => `${e.code}: ${e.when}`).join('; '),
      content: {
        'application/json': {
          schema: { $ref: '#/components/schemas/ApiError' },
          examples: Object.fromEntries(list.map((e) => [e.code, { summary: e.when, value: { error: { code: e.code, message: e.when } } }])),
        },
      },
    };
  }
  return responses;
}

/** The security requirement of a route: a token of its role, or (public groups) none, unless the config demands one. */
function security(doc: RouteDoc): JsonSchemaObject[] {
  if (doc.access === 'operator') return [{ [SECURITY_SCHEME]: ['operator'] }];
  if (doc.access === 'viewer') return [{ [SECURITY_SCHEME]: [] }];
  // An empty requirement means "no token needed"; the config may still demand one for these.
  return [{}, { [SECURITY_SCHEME]: [] }];
}

/** One sentence on who may call a route, at the head of its description. */
function roleSentence(doc: RouteDoc): string | undefined {
  if (doc.access === 'operator') {
    return `Role: operator (a viewer token gets 403 FORBIDDEN${doc.viewerMay === undefined ? '' : `, except ${doc.viewerMay}`}). Every call is written to the audit log (GET /api/audit).`;
  }
  if (doc.access === 'viewer') return 'Role: viewer (any token).';
  return undefined;
}

function operation(doc: RouteDoc): JsonSchemaObject {
  const { response } = doc;
  const description = [roleSentence(doc), doc.description].filter((d) => d !== undefined).join(' ');
  const content: JsonSchemaObject =
    response.schemaName !== undefined
      ? { [response.contentType]: { schema: { $ref: `#/components/schemas/${response.schemaName}` } } }
      : { [response.contentType]: { schema: { type: 'string' } } };
  return {
    operationId: operationId(doc),
    summary: doc.summary,
    ...(description === '' ? {} : { description }),
    security: security(doc),
    parameters: [...parameters(doc.params, 'path'), ...parameters(doc.query, 'query')],
    ...(doc.body === undefined ? {} : { requestBody: { required: true, description: doc.body.description, content: { 'application/json': { schema: toJsonSchema(doc.body.schema, 'input') } } } }),
    responses: { '200': { description: response.description, content }, ...errorResponses(doc.errors) },
    'x-outpost-access': doc.access,
    ...(doc.access === 'viewer' || doc.access === 'operator' ? { 'x-outpost-role': doc.access } : {}),
    ...(doc.viewerMay === undefined ? {} : { 'x-outpost-viewer-may': doc.viewerMay }),
  };
}

/** The error codes of the API with their status and meaning, from every route (first meaning wins). */
export function documentedErrorCodes(docs: readonly RouteDoc[]): Map<ApiErrorCode, RouteError> {
  const codes = new Map<ApiErrorCode, RouteError>();
  for (const error of [...docs.flatMap((d) => d.errors), ROUTE_NOT_FOUND_ERROR]) if (!codes.has(error.code)) codes.set(error.code, error);
  return codes;
}

/** The OpenAPI 3.1 document of `docs` (every route the server registers). */
export function buildOpenApiDocument(docs: readonly RouteDoc[], options: OpenApiOptions): JsonSchemaObject {
  const paths: Record<string, Record<string, JsonSchemaObject>> = {};
  for (const doc of docs) {
    const path = toOpenApiPath(doc.path);
    paths[path] = { ...paths[path], [doc.method.toLowerCase()]: operation(doc) };
  }
  const codes = [...documentedErrorCodes(docs).values()];
  return {
    openapi: '3.1.0',
    info: {
      title: 'Outpost control plane',
      version: options.version,
      description: [
        'Fleet, per-device accounting, live series, anomalies and a live event stream of the Outpost control plane.',
        'Errors are `{ "error": { "code", "message", "details"? } }`; clients branch on `code`.',
        'Every /api route but this document needs `Authorization: Bearer <token>` once tokens are configured (`http.auth.tokens`). A token has a role: `viewer` reads (every GET, the event stream, rollout dry runs); `operator` (the default) also publishes models, creates and steers rollouts, enrols and revokes agents. Each operation states its role (`x-outpost-role`); a viewer on an operator route gets 403 FORBIDDEN.',
        'Every call to an operator route, whatever its outcome (refused attempts included), is written to the audit log: `GET /api/audit`.',
        '/healthz, /metrics, /api/openapi.json and the dashboard are public unless `http.auth.public` says otherwise.',
      ].join('\n\n'),
    },
    paths,
    components: {
      schemas: toSchemaComponents(API_SCHEMAS),
      securitySchemes: {
        [SECURITY_SCHEME]: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API token with its role (`viewer` or `operator`); the config holds its SHA-256 (`outpostctl token hash`) and role.',
        },
      },
      responses: { RouteNotFound: errorResponses([ROUTE_NOT_FOUND_ERROR])['404'] },
    },
    'x-outpost-error-codes': codes.map((e) => ({ code: e.code, status: e.status, when: e.when })),
  };
}
