import type { JWTHeaderParameters, JWTPayload } from 'jose';
import { chain } from './awaitable.ts';
import { checkAudience, checkClaims, checkIssuer, grantedScopes } from './claims.ts';
import { Rejection } from './errors.ts';
import type { Candidate, RemoteKeySet, TrustedKey } from './key-set.ts';
import type { ResolvedOptions } from './options.ts';
import { tokenOrganization } from './organization.ts';
import { verifySignature } from './signature.ts';
import { checkHeader, decodeToken } from './token.ts';
import type { AccessTokenClaims, AuthInfo, Awaitable } from './types.ts';

/** A verified token and the key that vouched for it (what a cache entry is bound to). */
export interface Verified {
  readonly auth: AuthInfo;
  readonly key: TrustedKey;
}

/**
 * The RFC 9068 §4 order: typ, iss, aud (no network so far), signature with the issuer's keys,
 * time, claims. Synchronous when the key is known and verifies inline (small RSA keys); a promise
 * otherwise. Throws or rejects with a {@link Rejection}. The route's requirements are not checked
 * here: they are checked on every request, cached token or not.
 */
export function verifyToken(
  token: string,
  config: ResolvedOptions,
  keySets: ReadonlyMap<string, RemoteKeySet>,
  retry = true,
): Awaitable<Verified> {
  const { header, payload } = decodeToken(token);
  checkHeader(header, config.algorithms, config.strict);
  const issuer = checkIssuer(payload, config.issuers);
  const audience = checkAudience(payload, config.audiences, config.organizations);
  const keySet = keySets.get(issuer) as RemoteKeySet;

  const complete = (key: TrustedKey): Awaitable<Verified> => {
    if (!key.trusted) {
      // The key left the set (or changed) while the signature was being checked: answer as a
      // verification started now would, once.
      if (retry) return verifyToken(token, config, keySets, false);
      throw new Rejection('unknown_kid', {
        kid: header.kid,
        problem: 'the key left the key set while the token was being verified',
      });
    }
    checkClaims(payload, config, Date.now() / 1000);
    return { auth: authInfo(token, header, payload, issuer, audience), key };
  };
  return chain(keySet.getCandidates(header), (candidates) =>
    chain(firstValid(token, header, candidates, 0), complete),
  );
}

/**
 * The first candidate whose signature verifies, trying them in the set's order (more than one
 * only when the set lists several keys under the token's kid, or the token has no kid).
 */
function firstValid(
  token: string,
  header: JWTHeaderParameters,
  candidates: readonly Candidate[],
  from: number,
): Awaitable<TrustedKey> {
  for (let i = from; i < candidates.length; i++) {
    const candidate = candidates[i] as Candidate;
    const valid = verifySignature(token, candidate.key, header.alg, candidate.trusted.modulus);
    if (valid === true) return candidate.trusted;
    if (valid instanceof Promise) {
      return valid.then((ok) =>
        ok === true ? candidate.trusted : firstValid(token, header, candidates, i + 1),
      );
    }
  }
  throw new Rejection('bad_signature', {
    kid: header.kid,
    alg: header.alg,
    ...(candidates.length > 1 ? { keysTried: candidates.length } : {}),
  });
}

/** The AuthInfo of a verified token, deeply frozen: it is shared by every repeat of the token. */
function authInfo(
  token: string,
  header: JWTHeaderParameters,
  payload: JWTPayload,
  issuer: string,
  audience: string[],
): AuthInfo {
  const claims = deepFreeze(payload) as AccessTokenClaims;
  const auth = {
    claims,
    header: deepFreeze(header),
    subject: claims.sub,
    clientId: claims.client_id,
    isMachine: claims.client_id !== undefined && claims.sub === claims.client_id,
    issuer,
    audience: Object.freeze(audience),
    scopes: Object.freeze(grantedScopes(claims)),
    expiresAt: claims.exp,
    organizationId: tokenOrganization(claims.organization_id, audience),
  };
  Object.defineProperty(auth, 'token', { value: token, enumerable: false });
  return Object.freeze(auth) as AuthInfo;
}

/** Freezes an object parsed from JSON and everything in it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
