import type { JWTHeaderParameters, JWTPayload } from 'jose';
import { Rejection } from './errors.ts';
import { isCanonicalBase64url, jsonObject } from './jws-segment.ts';

// Three unpadded base64url segments (RFC 7515 §7.1; the last is empty for alg none), nothing else.
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]*$/;

/** A token split and decoded, NOT verified. */
export interface DecodedToken {
  readonly header: JWTHeaderParameters;
  readonly payload: JWTPayload;
}

/**
 * Decodes a compact JWS without trusting it. An opaque token (no dots) is `opaque_token`, a JWE
 * (five parts) `encrypted_token`, anything else that is not a JWS with JSON-object header and
 * payload `malformed_token`.
 */
export function decodeToken(token: string): DecodedToken {
  if (token === '') throw new Rejection('malformed_token', { problem: 'empty' });
  if (!token.includes('.')) {
    throw new Rejection('opaque_token', {
      hint: 'a token without a resource parameter is opaque: request it with resource=<your API identifier>',
    });
  }
  let parts = 1;
  for (let at = token.indexOf('.'); at !== -1; at = token.indexOf('.', at + 1)) parts++;
  if (parts === 5) throw new Rejection('encrypted_token');
  if (parts !== 3) throw new Rejection('malformed_token', { problem: `${parts} segments` });
  if (!COMPACT_JWS.test(token)) {
    throw new Rejection('malformed_token', { problem: 'characters outside base64url' });
  }
  if (!isCanonicalBase64url(token.slice(token.lastIndexOf('.') + 1))) {
    // One signature, one spelling: otherwise a valid token has variants (differing only in unused
    // trailing bits) that would each take a verified-token cache entry.
    throw new Rejection('malformed_token', { problem: 'non-canonical signature encoding' });
  }
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  const header = jsonObject(token.slice(0, first));
  const payload = jsonObject(token.slice(first + 1, second));
  if (header === undefined || payload === undefined) {
    throw new Rejection('malformed_token', { problem: 'segments are not base64url JSON objects' });
  }
  return { header: header as JWTHeaderParameters, payload: payload as JWTPayload };
}

const KEY_HEADERS = ['jku', 'x5u', 'jwk'] as const;

/**
 * Header rules before any key is looked up: explicit typing (RFC 9068 §2.1, RFC 8725 §3.11), the
 * caller's algorithm allow-list (RFC 8725 §3.1), no key named by the token itself (§3.10) and no
 * critical extension we do not understand (RFC 7515 §4.1.11).
 */
export function checkHeader(
  header: JWTHeaderParameters,
  algorithms: ReadonlySet<string>,
  strict: boolean,
): void {
  if (strict && !isAccessTokenType(header.typ)) {
    // Only a string is shown (clipped): an object's member names are the sender's choice.
    const actual = typeof header.typ === 'string' ? header.typ : null;
    throw new Rejection('typ_mismatch', { expected: 'at+jwt', actual });
  }
  if (typeof header.alg !== 'string' || !algorithms.has(header.alg)) {
    throw new Rejection('alg_not_allowed', {
      actual: typeof header.alg === 'string' ? header.alg : null,
      allowed: [...algorithms],
    });
  }
  for (const name of KEY_HEADERS) {
    if (name in header) throw new Rejection('untrusted_key_header', { header: name });
  }
  if ('crit' in header) throw new Rejection('unsupported_crit', { crit: critNames(header.crit) });
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new Rejection('malformed_token', { problem: 'kid is not a string' });
  }
  // RFC 7519 §5.2 and §7.2 step 8: `cty: JWT` says the payload is a nested JWT, which an access
  // token's claims set is not (RFC 7515 §4.1.10: a media type, compared without case).
  if (header.cty !== undefined && (typeof header.cty !== 'string' || NESTED.test(header.cty))) {
    throw new Rejection('malformed_token', { problem: 'cty names a nested JWT' });
  }
}

const NESTED = /^(?:application\/)?jwt$/i;

/** `crit` as shown in a rejection: its first few names when it is a list of names, else `null`. */
const critNames = (crit: unknown): readonly string[] | null =>
  Array.isArray(crit) && crit.every((name) => typeof name === 'string')
    ? (crit as string[]).slice(0, 4)
    : null;

/** `at+jwt` or `application/at+jwt`, case-insensitive (RFC 9068 §2.1). */
function isAccessTokenType(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  const value = typ.toLowerCase();
  return value === 'at+jwt' || value === 'application/at+jwt';
}
