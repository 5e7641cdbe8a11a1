import { describe, expect, it } from 'vitest';
import { AnomaliesQuerySchema, DeviceParamsSchema } from '@outpost/shared';
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
      access: 'operator',
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
    expect(op.security).toEqual([{ operatorToken: [] }]);
    expect(doc['x-outpost-error-codes'].map((e) => e.code).sort()).toEqual(['AUTH_INVALID', 'AUTH_REQUIRED', 'DEVICE_NOT_FOUND', 'INTERNAL_ERROR', 'REQUEST_INVALID', 'ROUTE_NOT_FOUND']);
  });
});
