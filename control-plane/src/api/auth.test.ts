import { describe, expect, it } from 'vitest';
import { ControlPlaneConfigSchema } from '@outpost/shared';
import { createAuthenticator, generateOperatorToken, hashOperatorToken } from './auth.js';

const authConfig = (auth: unknown) => ControlPlaneConfigSchema.parse({ http: { auth } }).http.auth;
const codeOf = (result: ReturnType<ReturnType<typeof createAuthenticator>['check']>) =>
  result.ok ? `ok:${result.tokenName ?? '-'}` : (result.response.body as { error: { code: string } }).error.code;

describe('createAuthenticator', () => {
  const auth = createAuthenticator(
    authConfig({ tokens: [{ name: 'alice', sha256: hashOperatorToken('alice-token') }, { name: 'bob', sha256: hashOperatorToken('bob-token').toUpperCase() }] }),
  );
  const check = (authorization?: string, access: Parameters<typeof auth.check>[0] = 'operator') =>
    codeOf(auth.check(access, { headers: authorization === undefined ? {} : { authorization } }));

  it('takes a configured token and names its holder', () => {
    expect(check('Bearer alice-token')).toBe('ok:alice');
    expect(check('bearer   bob-token')).toBe('ok:bob');
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

  it('generates distinct tokens and refuses a malformed or repeated hash in the config', () => {
    expect(generateOperatorToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(generateOperatorToken()).not.toBe(generateOperatorToken());
    const bad = ControlPlaneConfigSchema.safeParse({ http: { auth: { tokens: [{ name: 'a', sha256: 'abc' }, { name: 'a', sha256: hashOperatorToken('x') }] } } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path.join('.'))).toEqual(['http.auth.tokens.0.sha256', 'http.auth.tokens.1.name']);
  });
});
