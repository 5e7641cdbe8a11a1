import { describe, expect, it } from 'vitest';
import { AnomaliesQuerySchema, DeviceParamsSchema, RolloutCreateSchema, RolloutParamsSchema, type AuditEntry } from '@outpost/shared';
import { withAuditLog } from './audit-routes.js';
import { buildOpenApiDocument, toOpenApiPath } from './openapi.js';
import { defineRoute, parseParameters } from './route-spec.js';

describe('parseParameters', () => {
  it('gives typed values, or a 400 naming the first bad parameter', () => {
    expect(parseParameters(AnomaliesQuerySchema, { limit: '5', since: '2026-01-01T00:00:00Z', extra: 'ignored' }, 'query')).toEqual({
      ok: true,
      value: { limit: 5, since: Date.parse('2026-01-01T00:00:00Z') },
    });
    const bad = parseParameters(AnomaliesQuerySchema, { limit: 'x'.repeat(500) }, 'query');
    expect(!bad.ok && bad.response).toMatchObject({
      status: 400,
      body: { error: { code: 'REQUEST_INVALID', message: 'limit: must be an integer from 1 to 1000', details: { param: 'limit', in: 'query', value: `${'x'.repeat(100)}...` } } },
    });
    const twice = parseParameters(AnomaliesQuerySchema, { limit: ['1', '2'] }, 'query');
    expect(!twice.ok && twice.response.body).toMatchObject({ error: { message: 'limit: given more than once' } });
    const path = parseParameters(DeviceParamsSchema, { agentId: 'gw-1', deviceId: 'no/slash' }, 'path');
    expect(!path.ok && path.response.body).toMatchObject({ error: { details: { param: 'deviceId', in: 'path' } } });
  });
});

describe('buildOpenApiDocument', () => {
  it('documents a route with its parameters, common errors and security', async () => {
    const route = defineRoute({
      method: 'GET',
      path: '/api/agents/:agentId/devices/:deviceId',
      access: 'viewer',
      summary: 'one device',
      params: DeviceParamsSchema,
      query: AnomaliesQuerySchema,
      errors: [{ status: 404, code: 'DEVICE_NOT_FOUND', when: 'unknown device' }],
      response: { description: 'ok', contentType: 'application/json', schemaName: 'DeviceDetail' },
      handle: async ({ params, query }) => ({ status: 200, body: { params, query } }),
    });
    expect(await route.handle({ params: { agentId: 'gw-1', deviceId: 'd1' }, query: { limit: '3' }, headers: {} })).toEqual({
      status: 200,
      body: { params: { agentId: 'gw-1', deviceId: 'd1' }, query: { limit: 3 } },
    });
    expect(toOpenApiPath(route.path)).toBe('/api/agents/{agentId}/devices/{deviceId}');
    const doc = buildOpenApiDocument([route.doc], { version: '9.9.9' }) as {
      paths: Record<string, { get: { operationId: string; parameters: { name: string; in: string }[]; responses: Record<string, unknown>; security: unknown } }>;
      'x-outpost-error-codes': { code: string }[];
    };
    const op = doc.paths['/api/agents/{agentId}/devices/{deviceId}']!.get;
    expect(op.operationId).toBe('getApiAgentsByAgentIdDevicesByDeviceId');
    expect(op.parameters.map((p) => `${p.in}:${p.name}`)).toEqual(['path:agentId', 'path:deviceId', 'query:since', 'query:agentId', 'query:deviceId', 'query:limit']);
    expect(Object.keys(op.responses)).toEqual(['200', '400', '401', '404', '500']);
    expect(op.security).toEqual([{ apiToken: [] }]);
    expect(op).toMatchObject({ 'x-outpost-role': 'viewer', description: 'Role: viewer (any token).' });
    expect(doc['x-outpost-error-codes'].map((e) => e.code).sort()).toEqual(['AUTH_INVALID', 'AUTH_REQUIRED', 'DEVICE_NOT_FOUND', 'INTERNAL_ERROR', 'REQUEST_INVALID', 'ROUTE_NOT_FOUND']);
  });
});

describe('operator routes', () => {
  const viewer = { name: 'vera', role: 'viewer' } as const;
  const operator = { name: 'otto', role: 'operator' } as const;
  const ran: string[] = [];
  const route = defineRoute({
    method: 'POST',
    path: '/api/things/:id',
    access: 'operator',
    summary: 'change a thing',
    params: RolloutParamsSchema,
    body: { schema: RolloutCreateSchema, description: 'a thing' },
    readOnlyWhen: { description: 'with `dryRun: true`', test: (body) => (body as { dryRun?: unknown } | undefined)?.dryRun === true },
    audit: { action: 'thing.change', detail: ({ params }) => `thing ${params['id']}` },
    response: { description: 'ok', contentType: 'application/json' },
    handle: async ({ params, actor }) => {
      ran.push(`${params.id} by ${actor}`);
      return { status: 200, body: { id: params.id } };
    },
  });
  const call = (principal: typeof viewer | typeof operator | undefined, body: unknown, id = 't1') => route.handle({ params: { id }, query: {}, headers: {}, body, principal });

  it('refuses a viewer with 403 FORBIDDEN before validating anything, lets an operator (or anyone without auth) through', async () => {
    ran.length = 0;
    expect(await call(viewer, { spec: {} })).toMatchObject({ status: 403, body: { error: { code: 'FORBIDDEN' } } });
    expect(await call(viewer, { spec: {}, junk: 1 }, 'BAD ID')).toMatchObject({ status: 403, body: { error: { code: 'FORBIDDEN' } } });
    expect(await call(operator, { spec: {} })).toMatchObject({ status: 200 });
    expect(await call(undefined, { spec: {} }, 't2')).toMatchObject({ status: 200 });
    expect(await call(operator, { spec: {}, junk: 1 })).toMatchObject({ status: 400, body: { error: { code: 'REQUEST_INVALID' } } });
    // A read-only call (a dry run) is the viewer's too.
    expect(await call(viewer, { spec: {}, dryRun: true }, 't3')).toMatchObject({ status: 200 });
    expect(ran).toEqual(['t1 by operator:otto', 't2 by operator', 't3 by operator:vera']);
    expect(route.doc.errors.map((e) => `${e.status} ${e.code}`)).toEqual(['400 REQUEST_INVALID', '401 AUTH_REQUIRED', '401 AUTH_INVALID', '403 FORBIDDEN', '500 INTERNAL_ERROR']);
  });

  it('writes one audit entry per mutating call with its outcome, none for a read-only call', async () => {
    const entries: AuditEntry[] = [];
    const [audited] = withAuditLog([route], { append: async (entry) => void entries.push(entry) });
    const send = (principal: typeof viewer | typeof operator | undefined, body: unknown, id = 't1') =>
      audited!.handle({ params: { id }, query: {}, headers: {}, body, principal, remoteAddress: '10.0.0.7' });
    await send(operator, { spec: {} });
    await send(viewer, { spec: {} });
    await send(operator, { spec: {} }, 'y'.repeat(300));
    await send(undefined, { spec: {} }, 't4');
    await send(viewer, { spec: {}, dryRun: true });
    await audited!.answeredInstead!(
      { params: { id: 't5' }, query: {}, headers: { authorization: 'Bearer secret-token-value' }, remoteAddress: '10.0.0.8' },
      { status: 401, body: { error: { code: 'AUTH_INVALID', message: 'the API token is not known' } } },
      'auth',
    );
    expect(entries.map((e) => [e.actor, e.role, e.action, e.outcome.status, e.outcome.code ?? '-', e.params['id']!.length, e.detail?.length])).toEqual([
      ['otto', 'operator', 'thing.change', 200, '-', 2, 8],
      ['vera', 'viewer', 'thing.change', 403, 'FORBIDDEN', 2, 8],
      ['otto', 'operator', 'thing.change', 400, 'REQUEST_INVALID', 103, 256],
      ['anonymous', 'operator', 'thing.change', 200, '-', 2, 8],
      ['anonymous', null, 'thing.change', 401, 'AUTH_INVALID', 2, 8],
    ]);
    expect(entries[0]).toEqual({
      atMs: expect.any(Number),
      actor: 'otto',
      role: 'operator',
      method: 'POST',
      route: '/api/things/:id',
      params: { id: 't1' },
      action: 'thing.change',
      outcome: { status: 200 },
      detail: 'thing t1',
      remoteAddress: '10.0.0.7',
    });
    expect(JSON.stringify(entries)).not.toContain('secret-token-value');
  });

  it('writes the entry of a call whose handler threw as a 500, and the answer waits for the write', async () => {
    const throwing = defineRoute({
      method: 'POST',
      path: '/api/boom',
      access: 'operator',
      summary: 'fails',
      audit: { action: 'boom' },
      response: { description: 'never', contentType: 'application/json' },
      handle: async () => {
        throw new Error('down');
      },
    });
    let release: () => void = () => undefined;
    const entries: AuditEntry[] = [];
    const [audited] = withAuditLog([throwing], {
      append: (entry) =>
        new Promise<void>((resolve) => {
          entries.push(entry);
          release = resolve;
        }),
    });
    let settled = false;
    const answer = audited!.handle({ params: {}, query: {}, headers: {}, principal: operator }).finally(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect([entries.length, settled]).toEqual([1, false]);
    release();
    await expect(answer).rejects.toThrow('down');
    expect(entries[0]!.outcome).toEqual({ status: 500, code: 'INTERNAL_ERROR' });
  });
});
