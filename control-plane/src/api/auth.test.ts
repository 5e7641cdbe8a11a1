import { describe, expect, it } from 'vitest';
import { ControlPlaneConfigSchema } from '@outpost/shared';
import { createAuthenticator, forbidden, generateOperatorToken, hashOperatorToken, roleAllows } from './auth.js';

const authConfig = (auth: unknown) => ControlPlaneConfigSchema.parse({ http: { auth } }).http.auth;
const codeOf = (result: ReturnType<ReturnType<typeof createAuthenticator>['check']>) =>
  result.ok ? `ok:${result.principal === undefined ? '-' : `${result.principal.name}/${result.principal.role}`}` : (result.response.body as { error: { code: string } }).error.code;

describe('createAuthenticator', () => {
  const auth = createAuthenticator(
    authConfig({
      tokens: [
        { name: 'alice', sha256: hashOperatorToken('alice-token') },
        { name: 'bob', sha256: hashOperatorToken('bob-token').toUpperCase(), role: 'viewer' },
      ],
    }),
  );
  const check = (authorization?: string, access: Parameters<typeof auth.check>[0] = 'operator') =>
    codeOf(auth.check(access, { headers: authorization === undefined ? {} : { authorization } }));

  it('takes a configured token and names its holder and role (operator unless the config says viewer)', () => {
    expect(check('Bearer alice-token')).toBe('ok:alice/operator');
    expect(check('bearer   bob-token')).toBe('ok:bob/viewer');
    // The hook only authenticates: a viewer's token passes it on an operator route, whose own check refuses it.
    expect(check('Bearer bob-token', 'viewer')).toBe('ok:bob/viewer');
    expect(check(undefined, 'viewer')).toBe('AUTH_REQUIRED');
  });

  it('lets an operator do everything and a viewer only read; without auth everyone may', () => {
    const viewer = { name: 'bob', role: 'viewer' } as const;
    const operator = { name: 'alice', role: 'operator' } as const;
    expect([roleAllows(viewer, 'viewer'), roleAllows(viewer, 'operator')]).toEqual([true, false]);
    expect([roleAllows(operator, 'viewer'), roleAllows(operator, 'operator')]).toEqual([true, true]);
    expect(roleAllows(undefined, 'operator')).toBe(true);
    expect(forbidden(viewer, 'operator')).toEqual({
      status: 403,
      body: { error: { code: 'FORBIDDEN', message: 'this call needs a token with role operator; the token "bob" has role viewer', details: { role: 'viewer', needed: 'operator' } } },
    });
  });

  it('tells a missing or malformed header from an unknown token', () => {
    expect(check()).toBe('AUTH_REQUIRED');
    expect(check('')).toBe('AUTH_REQUIRED');
    expect(check('Basic YWxpY2U6eA==')).toBe('AUTH_REQUIRED');
    expect(check('Bearer a b')).toBe('AUTH_REQUIRED');
    expect(check('Bearer carol-token')).toBe('AUTH_INVALID');
    const refused = auth.check('operator', { headers: {} });
    expect(!refused.ok && refused.response).toMatchObject({ status: 401, headers: { 'www-authenticate': 'Bearer realm="outpost"' } });
  });

  it('lets public groups through without a token, as configured', () => {
    for (const access of ['healthz', 'metrics', 'openapi', 'dashboard'] as const) expect(check(undefined, access)).toBe('ok:-');
    const strict = createAuthenticator(authConfig({ tokens: [{ name: 'a', sha256: hashOperatorToken('t') }], public: { metrics: false } }));
    expect(codeOf(strict.check('metrics', { headers: {} }))).toBe('AUTH_REQUIRED');
    expect(codeOf(strict.check('healthz', { headers: {} }))).toBe('ok:-');
  });

  it('is off without tokens', () => {
    const open = createAuthenticator(authConfig({}));
    expect(open.enabled).toBe(false);
    expect(codeOf(open.check('operator', { headers: {} }))).toBe('ok:-');
  });

  it('refuses an unknown role in the config', () => {
    const bad = ControlPlaneConfigSchema.safeParse({ http: { auth: { tokens: [{ name: 'a', sha256: hashOperatorToken('x'), role: 'admin' }] } } });
    expect(bad.error?.issues.map((i) => i.path.join('.'))).toEqual(['http.auth.tokens.0.role']);
  });

  it('generates distinct tokens and refuses a malformed or repeated hash in the config', () => {
    expect(generateOperatorToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generateOperatorToken()).not.toBe(generateOperatorToken());
    const bad = ControlPlaneConfigSchema.safeParse({ http: { auth: { tokens: [{ name: 'a', sha256: 'abc' }, { name: 'a', sha256: hashOperatorToken('x') }] } } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path.join('.'))).toEqual(['http.auth.tokens.0.sha256', 'http.auth.tokens.1.name']);
  });
});
