// API authentication and roles: bearer tokens (RFC 6750) checked against the SHA-256 digests in
// the config, so the config file holds no secret a reader could replay. Digests are compared
// with timingSafeEqual, against every configured token, so timing tells nothing about which
// one came close. Each token has a role: a viewer reads, an operator also changes things.
// Nothing here puts a token, or any part of one, into an answer or a log line.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode, TokenRole, type ControlPlaneAuthConfig } from '@outpost/shared';
import type { HttpRequest, HttpResponse, Principal, RouteAccess } from './http-server.js';
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

export type AuthResult = { ok: true; principal?: Principal } | { ok: false; response: HttpResponse };

export interface Authenticator {
  /** False when no token is configured: every route is open, and every caller acts as an operator. */
  readonly enabled: boolean;
  /**
   * Who sent the request: routes of role `viewer` or `operator` need a known token (any role:
   * the route checks the role, see `roleAllows`); public groups none.
   */
  check(access: RouteAccess, request: Pick<HttpRequest, 'headers'>): AuthResult;
}

const refuse = (code: typeof ErrorCode.AUTH_REQUIRED | typeof ErrorCode.AUTH_INVALID, message: string, challenge: string): AuthResult => ({
  ok: false,
  response: { ...apiError(401, code, message), headers: { 'www-authenticate': challenge } },
});

const needsToken = (access: RouteAccess): access is TokenRole => access === TokenRole.viewer || access === TokenRole.operator;

/** Checks requests against `http.auth`: API routes need a configured token, public groups none. */
export function createAuthenticator(config: ControlPlaneAuthConfig): Authenticator {
  const tokens = config.tokens.map((t) => ({ principal: { name: t.name, role: t.role }, digest: Buffer.from(t.sha256, 'hex') }));
  const isPublic = (access: RouteAccess): boolean => !needsToken(access) && config.public[access];
  return {
    enabled: tokens.length > 0,
    check(access, request) {
      if (tokens.length === 0 || isPublic(access)) return { ok: true };
      const header = request.headers['authorization'];
      if (header === undefined || header === '') {
        return refuse(ErrorCode.AUTH_REQUIRED, 'this route needs an API token: send `Authorization: Bearer <token>`', 'Bearer realm="outpost"');
      }
      const match = typeof header === 'string' ? BEARER.exec(header) : null;
      if (match === null) {
        return refuse(ErrorCode.AUTH_REQUIRED, 'malformed Authorization header: expected `Bearer <token>`', 'Bearer realm="outpost", error="invalid_request"');
      }
      const digest = createHash('sha256').update(match[1]!, 'utf8').digest();
      let found: Principal | undefined;
      for (const token of tokens) if (timingSafeEqual(digest, token.digest) && found === undefined) found = token.principal;
      if (found === undefined) return refuse(ErrorCode.AUTH_INVALID, 'the API token is not known', 'Bearer realm="outpost", error="invalid_token"');
      return { ok: true, principal: found };
    },
  };
}

/**
 * Whether a caller may make a call that needs `needed`: an operator may do everything, a viewer
 * only reads. No principal means auth is off (or the route is public): everyone may.
 */
export function roleAllows(principal: Principal | undefined, needed: TokenRole): boolean {
  return principal === undefined || principal.role === TokenRole.operator || needed === TokenRole.viewer;
}

/** 403 FORBIDDEN: a known token whose role does not allow the call. Names the role, never the token. */
export function forbidden(principal: Principal, needed: TokenRole): HttpResponse {
  return apiError(403, ErrorCode.FORBIDDEN, `this call needs a token with role ${needed}; the token ${JSON.stringify(principal.name)} has role ${principal.role}`, {
    role: principal.role,
    needed,
  });
}
