// Operator authentication: bearer tokens (RFC 6750) checked against the SHA-256 digests in the
// config, so the config file holds no secret a reader could replay. Digests are compared with
// timingSafeEqual, against every configured token, so timing tells nothing about which one
// came close.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode, type ControlPlaneAuthConfig } from '@outpost/shared';
import type { HttpRequest, HttpResponse, RouteAccess } from './http-server.js';
import { apiError } from './errors.js';

/** RFC 6750 section 2.1: `Bearer` then a b64token. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** Random bytes in a token made by `outpostctl token generate`. */
export const GENERATED_TOKEN_BYTES = 32;

/** Hex SHA-256 of a token, as the config's `http.auth.tokens[].sha256` holds it. */
export function hashOperatorToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random token (base64url, 43 characters). */
export function generateOperatorToken(): string {
  return randomBytes(GENERATED_TOKEN_BYTES).toString('base64url');
}

export type AuthResult = { ok: true; tokenName?: string } | { ok: false; response: HttpResponse };

export interface Authenticator {
  /** False when no token is configured: every route is open. */
  readonly enabled: boolean;
  check(access: RouteAccess, request: Pick<HttpRequest, 'headers'>): AuthResult;
}

const refuse = (code: typeof ErrorCode.AUTH_REQUIRED | typeof ErrorCode.AUTH_INVALID, message: string, challenge: string): AuthResult => ({
  ok: false,
  response: { ...apiError(401, code, message), headers: { 'www-authenticate': challenge } },
});

/** Checks requests against `http.auth`: operator routes need a configured token, public groups none. */
export function createAuthenticator(config: ControlPlaneAuthConfig): Authenticator {
  const tokens = config.tokens.map((t) => ({ name: t.name, digest: Buffer.from(t.sha256, 'hex') }));
  const isPublic = (access: RouteAccess): boolean => access !== 'operator' && config.public[access];
  return {
    enabled: tokens.length > 0,
    check(access, request) {
      if (tokens.length === 0 || isPublic(access)) return { ok: true };
      const header = request.headers['authorization'];
      if (header === undefined || header === '') {
        return refuse(ErrorCode.AUTH_REQUIRED, 'this route needs an operator token: send `Authorization: Bearer <token>`', 'Bearer realm="outpost"');
      }
      const match = typeof header === 'string' ? BEARER.exec(header) : null;
      if (match === null) {
        return refuse(ErrorCode.AUTH_REQUIRED, 'malformed Authorization header: expected `Bearer <token>`', 'Bearer realm="outpost", error="invalid_request"');
      }
      const digest = createHash('sha256').update(match[1]!, 'utf8').digest();
      let found: string | undefined;
      for (const token of tokens) if (timingSafeEqual(digest, token.digest) && found === undefined) found = token.name;
      if (found === undefined) return refuse(ErrorCode.AUTH_INVALID, 'the operator token is not known', 'Bearer realm="outpost", error="invalid_token"');
      return { ok: true, tokenName: found };
    },
  };
}
