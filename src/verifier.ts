import type { JWTHeaderParameters } from 'jose';
import type { AccessTokenClaims } from './claims.ts';
import { checkAudience, checkClaims, checkIssuer, grantedScopes } from './claims.ts';
import type { Requirements } from './requirements.ts';
import { checkRequirements, tokenOrganization } from './requirements.ts';
import { discoverJwksUri } from './discovery.ts';
import type { AuthErrorCode, RejectionReason } from './errors.ts';
import { AuthError, Rejection } from './errors.ts';
import { RemoteKeySet } from './key-set.ts';
import { verifySignature } from './signature.ts';
import type { VerifyKey } from './signature.ts';
import { TokenCache } from './token-cache.ts';
import type { ResolvedOptions, VerifierOptions } from './options.ts';
import { resolveOptions, resolveRequirements } from './options.ts';
import type { RequestLike } from './request.ts';
import type { ResourceMetadata } from './resource-metadata.ts';
import { checkBearerSyntax, extractBearerToken } from './request.ts';
import { checkHeader, decodeToken } from './token.ts';

/**
 * A verified access token. `token` is not enumerable, so logging or serialising the object does
 * not print it.
 */
export interface AuthInfo<Claims extends object = Record<string, unknown>> {
  /** The raw access token (non-enumerable), for calling another API on the caller's behalf. */
  readonly token: string;
  readonly claims: Readonly<AccessTokenClaims & Claims>;
  readonly header: Readonly<JWTHeaderParameters>;
  /** `sub`: the app id for an M2M token, the user id for a user token. */
  readonly subject: string;
  /** `client_id`: the app that requested the token. */
  readonly clientId: string | undefined;
  /** `true` for a machine-to-machine token (`sub === client_id`). */
  readonly isMachine: boolean;
  readonly issuer: string;
  readonly audience: readonly string[];
  /** The granted scopes, from `scope` (or an `scp` array). Empty when none were granted. */
  readonly scopes: readonly string[];
  /** `exp`, in seconds since the epoch. */
  readonly expiresAt: number;
  /** The organization the token is for: `organization_id`, or an organization token's audience. */
  readonly organizationId: string | undefined;
}

/** What `onRejected` receives for each rejection. It never holds the token. */
export interface RejectionEvent {
  readonly reason: RejectionReason;
  readonly code: AuthErrorCode;
  readonly status: number;
  /** The short fixed description the client saw. */
  readonly description: string;
  /** The exact facts: expected vs actual issuer or audience, seconds expired, kid, ... */
  readonly details: Readonly<Record<string, unknown>>;
  /** The underlying error (jose's, a fetch error), when there is one. */
  readonly cause?: unknown;
}

/** What only the request knows: the organization it is about (a route parameter, a header). */
export interface RequestContext {
  readonly organization?: string | undefined;
}

/** Verifies a request and resolves its {@link AuthInfo}; rejects with an {@link AuthError}. */
export interface Guard {
  <Claims extends object = Record<string, unknown>>(
    request: RequestLike,
    context?: RequestContext,
  ): Promise<AuthInfo<Claims>>;
  /**
   * The same check for adapters that can stay synchronous: returns the {@link AuthInfo} itself
   * when it is known at once (a repeat token, a small RSA key), a promise otherwise, and throws
   * the {@link AuthError} synchronously when the rejection is known at once.
   */
  attempt<Claims extends object = Record<string, unknown>>(
    request: RequestLike,
    context?: RequestContext,
  ): AuthInfo<Claims> | Promise<AuthInfo<Claims>>;
}

/** Verifies access tokens. Build one per API at start-up and share it between routes. */
export interface Verifier {
  /** Verifies a raw token against the configuration and the route's requirements. */
  verify<Claims extends object = Record<string, unknown>>(
    token: string,
    requirements?: Requirements,
  ): Promise<AuthInfo<Claims>>;
  /** Reads `Authorization: Bearer` from anything with headers, then verifies it. */
  authenticate<Claims extends object = Record<string, unknown>>(
    request: RequestLike,
    requirements?: Requirements,
  ): Promise<AuthInfo<Claims>>;
  /** `authenticate` with requirements checked once, up front: the building block of adapters. */
  guard(requirements?: Requirements): Guard;
  /** The RFC 9728 metadata to serve, when the `resourceMetadata` option is set. */
  readonly resourceMetadata: ResourceMetadata | undefined;
}

/**
 * Creates a verifier. Options are checked here (a `TypeError` names the bad option); nothing is
 * fetched until the first token arrives.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 *
 * const verifier = createVerifier({
 *   issuer: 'https://tenant.logto.app/oidc',
 *   audience: 'https://shopping.api',
 * });
 * const auth = await verifier.authenticate(request, { scopes: ['read:products'] });
 * console.log(auth.clientId, auth.scopes);
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const config = resolveOptions(options);
  const keySets = createKeySets(config);
  const challenge = { realm: config.realm, resourceMetadata: config.resourceMetadata?.url };
  const cache =
    config.cache === false ? undefined : new TokenCache<AuthInfo, RemoteKeySet>(config.cache);
  if (cache !== undefined) {
    for (const keySet of new Set(keySets.values())) {
      keySet.onRefresh((kids) => cache.retainKids(keySet, kids));
    }
  }
  // Concurrent first sightings of one token share one (asynchronous) verification.
  const pending = new Map<string, Promise<AuthInfo>>();

  const remember = (token: string, { auth, keySet }: Verified): AuthInfo => {
    const kid = auth.header.kid;
    const validUntil = cacheableUntil(auth, config);
    if (cache !== undefined && kid !== undefined && Date.now() < validUntil) {
      cache.set(token, auth, validUntil, kid, keySet);
    }
    return auth;
  };

  /**
   * A first sighting: verify, then cache. Synchronous when verification is; otherwise concurrent
   * sightings of one token share one verification.
   */
  const verifyFresh = (token: string): AuthInfo | Promise<AuthInfo> => {
    let inflight = pending.get(token);
    if (inflight !== undefined) return inflight;
    const result = verifyToken(token, config, keySets);
    if (!(result instanceof Promise)) return remember(token, result);
    inflight = result.then((verified) => remember(token, verified));
    pending.set(token, inflight);
    const settle = () => pending.delete(token);
    inflight.then(settle, settle);
    return inflight;
  };

  const toAuthError = (error: unknown, requirements: Requirements): unknown => {
    if (!(error instanceof Rejection)) return error;
    const authError = new AuthError(error.reason, {
      details: error.details,
      cause: error.cause,
      scopes: requirements.scopes,
      retryAfter: error.retryAfter,
      challenge,
    });
    report(config, authError);
    return authError;
  };

  /**
   * Reads the token, answers a repeat from the cache without further work (no syntax check, no
   * promise), verifies a first sighting, then checks the route's requirements either way. Returns
   * the AuthInfo or a promise of it; throws (or rejects with) an AuthError.
   */
  function attempt<Claims extends object>(
    read: () => string,
    requirements: Requirements,
    fromHeader: boolean,
  ): AuthInfo<Claims> | Promise<AuthInfo<Claims>> {
    try {
      const token = read();
      const now = Date.now();
      const cached = cache?.get(token, now);
      // A hit still asks its key set whether the keys may vouch for it: that keeps refreshes going
      // (so a removed key reaches cached tokens) and stops hits once the keys are too stale.
      if (cached !== undefined && cached.owner.vouches(now)) {
        checkRequirements(cached.value, requirements, config.audiences);
        return cached.value as AuthInfo<Claims>;
      }
      if (fromHeader) checkBearerSyntax(token);
      const fresh = verifyFresh(token);
      if (!(fresh instanceof Promise)) {
        checkRequirements(fresh, requirements, config.audiences);
        return fresh as AuthInfo<Claims>;
      }
      return fresh
        .then((auth) => {
          checkRequirements(auth, requirements, config.audiences);
          return auth as AuthInfo<Claims>;
        })
        .catch((error: unknown) => {
          throw toAuthError(error, requirements);
        });
    } catch (error) {
      throw toAuthError(error, requirements);
    }
  }

  /** {@link attempt}, always as a promise. */
  function check<Claims extends object>(
    read: () => string,
    requirements: Requirements,
    fromHeader: boolean,
  ): Promise<AuthInfo<Claims>> {
    try {
      return Promise.resolve(attempt<Claims>(read, requirements, fromHeader));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  const readVerifyArgument = (token: unknown) => () => {
    if (typeof token !== 'string') throw new Rejection('malformed_token');
    if (token.length > config.maxTokenLength) {
      throw new Rejection('token_too_large', { length: token.length });
    }
    return token;
  };

  const verifier: Verifier = {
    resourceMetadata: config.resourceMetadata,
    verify: (token, requirements) =>
      check(readVerifyArgument(token), resolveRequirements(requirements), false),
    authenticate: (request, requirements) =>
      check(
        () => extractBearerToken(request, config.maxTokenLength),
        resolveRequirements(requirements),
        true,
      ),
    guard(requirements) {
      const resolved = resolveRequirements(requirements);
      const read = (request: RequestLike) => () =>
        extractBearerToken(request, config.maxTokenLength);
      const forRequest = (context: RequestContext | undefined): Requirements =>
        context === undefined
          ? resolved
          : // An organization route whose request names none matches no token ('').
            { ...resolved, organization: context.organization || '' };
      const guard = ((request, context) =>
        check(read(request), forRequest(context), true)) as Guard;
      guard.attempt = (request, context) => attempt(read(request), forRequest(context), true);
      return Object.freeze(guard);
    },
  };
  return Object.freeze(verifier);
}

function report(config: ResolvedOptions, error: AuthError): void {
  if (config.onRejected === undefined) return;
  // A failing hook, synchronous or async, must not change the answer or crash the process.
  try {
    const result: unknown = config.onRejected({
      reason: error.reason,
      code: error.code,
      status: error.status,
      description: error.description,
      details: error.details,
      ...(error.cause === undefined ? {} : { cause: error.cause }),
    });
    if (result instanceof Promise) result.catch(() => undefined);
  } catch {
    // ignored
  }
}

/** One key set per issuer (or one shared by all, with `jwksUri`), created once. */
function createKeySets(config: ResolvedOptions): ReadonlyMap<string, RemoteKeySet> {
  const map = new Map<string, RemoteKeySet>();
  const { jwksUri } = config;
  const shared = jwksUri && new RemoteKeySet(() => Promise.resolve(jwksUri), config.keys);
  for (const issuer of config.issuers) {
    map.set(issuer, shared || new RemoteKeySet(discoverJwksUri(issuer, config.keys), config.keys));
  }
  return map;
}

/** Until when a verified token may be answered from the cache: its `exp`, or sooner. */
function cacheableUntil(auth: AuthInfo, config: ResolvedOptions): number {
  const { iat } = auth.claims;
  const byAge =
    config.maxTokenAge !== undefined && iat !== undefined ? iat + config.maxTokenAge : Infinity;
  return Math.min(auth.expiresAt, byAge) * 1000;
}

interface Verified {
  readonly auth: AuthInfo;
  readonly keySet: RemoteKeySet;
}

/**
 * The RFC 9068 §4 order: typ, iss, aud (no network so far), signature, time, claims. Synchronous
 * when the key is known and verifies inline (small RSA keys); a promise otherwise. Throws or
 * rejects with a {@link Rejection}.
 */
function verifyToken(
  token: string,
  config: ResolvedOptions,
  keySets: ReadonlyMap<string, RemoteKeySet>,
): Verified | Promise<Verified> {
  const { header, payload } = decodeToken(token);
  checkHeader(header, config.algorithms, config.strict);
  const issuer = checkIssuer(payload, config.issuers);
  const audience = checkAudience(payload, config.audiences, config.organizations);
  const keySet = keySets.get(issuer) as RemoteKeySet;

  const complete = (valid: boolean): Verified => {
    if (!valid) throw new Rejection('bad_signature', { kid: header.kid, alg: header.alg });
    checkClaims(payload, config, Date.now() / 1000);
    const claims = Object.freeze(payload) as AccessTokenClaims;
    const auth = {
      claims,
      header: Object.freeze(header),
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
    return { auth: Object.freeze(auth) as AuthInfo, keySet };
  };
  const withKey = (key: VerifyKey): Verified | Promise<Verified> => {
    const valid = verifySignature(token, key, header.alg);
    return typeof valid === 'boolean' ? complete(valid) : valid.then(complete);
  };
  const found = keySet.getKey(header);
  return found instanceof Promise ? found.then(withKey) : withKey(found);
}

export type { Requirements, RejectionReason };
