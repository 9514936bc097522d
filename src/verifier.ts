import { registerAttempt } from './attempts.ts';
import { chain } from './awaitable.ts';
import { checkLifetime } from './claims.ts';
import { decisionChannel, noteVerifierCreated } from './diagnostics.ts';
import type { DecisionEvent } from './diagnostics.ts';
import { discoverJwksUri } from './discovery.ts';
import { Dpop, refuseBoundToken } from './dpop.ts';
import type { DpopMode, DpopPresentation } from './dpop.ts';
import { AuthError, isSafeQuotedValue, Rejection, reportRejection, WarmUpError } from './errors.ts';
import { configError } from './option-checks.ts';
import type { ChallengeParams } from './errors.ts';
import { RemoteKeySet } from './key-set.ts';
import type { TrustedKey } from './key-set.ts';
import { fetchedKeys, staticKeys } from './key-source.ts';
import type { ResolvedOptions, VerifierOptions } from './options.ts';
import { resolveOptions, resolveRequirements } from './options.ts';
import { checkBearerSyntax, extractBearerToken, extractToken } from './request.ts';
import { Revocation } from './revocation.ts';
import { checkRequirements } from './requirements.ts';
import { SingleFlight } from './single-flight.ts';
import { cacheableWindow, TokenCache } from './token-cache.ts';
import type { Found } from './token-cache.ts';
import type {
  AuthInfo,
  Awaitable,
  Guard,
  KeyHealth,
  RequestContext,
  RequestLike,
  RequestTarget,
  Requirements,
  Verifier,
} from './types.ts';
import { verifyToken } from './verify-token.ts';
import type { Verified } from './verify-token.ts';

export type { AuthInfo, Guard, RequestContext, Verifier } from './types.ts';
export type { RejectionEvent } from './errors.ts';

/**
 * Creates a verifier. Options are checked here (a `TypeError` names the bad option); nothing is
 * fetched until the first token arrives.
 *
 * What it checks, in order (RFC 9068 §4): the `Authorization: Bearer` syntax (RFC 6750 §2.1);
 * `typ` (at+jwt), the algorithm allow-list, no `jku`/`x5u`/`jwk`/`crit`; `iss` exactly; `aud`
 * contains your audience; the signature with a key from that issuer's JWKS; `exp` (required),
 * `nbf`, `iat`, `maxTokenAge`; required claims and their types; then, on every request, the
 * route's organization rule, machine-only and scopes.
 *
 * With the `dpop` option, a request with `Authorization: DPoP` must carry a DPoP proof (RFC 9449)
 * for this method, URL and token, signed by the key the token is bound to (`cnf.jkt`), and
 * never seen before. Without it, and on Bearer requests, a token bound to a key (`cnf`) is refused.
 *
 * What it does NOT check: revocation (a JWT access token stays valid until `exp`; Logto cannot
 * revoke it), mTLS binding (`cnf` `x5t#S256`: refused), custom claim values beyond presence, or
 * anything about the request other than its `Authorization` (and `DPoP`) headers, method and URL.
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
  noteVerifierCreated(config.issuers);
  const keySets = createKeySets(config);
  const challenge: ChallengeParams = {
    realm: config.realm ?? defaultRealm(config.audiences),
    resourceMetadata: config.resourceMetadata?.url,
  };
  const dpop =
    config.dpop &&
    new Dpop(config.dpop, config.clockTolerance, config.maxTokenLength, !config.keys.requestScoped);
  // RFC 9449 §7.1: the challenges of a route, by its DPoP mode.
  const challenges: Readonly<Record<DpopMode, ChallengeParams>> = {
    disabled: challenge,
    allowed: { ...challenge, dpopAlgs: dpop?.algs },
    required: { ...challenge, dpopAlgs: dpop?.algs, bearer: false },
  };
  const modeOf = (requirements: Requirements): DpopMode => {
    const mode = requirements.dpop ?? config.dpop?.mode ?? 'disabled';
    if (mode !== 'disabled' && dpop === undefined) {
      configError('dpop', "on a route needs the verifier's `dpop` option (its public origin)");
    }
    return mode;
  };
  const cache = config.cache === false ? undefined : new TokenCache<AuthInfo>(config.cache);
  const inflight = new SingleFlight<AuthInfo>(!config.keys.requestScoped);
  /** The key that verified each AuthInfo: asked again once an awaited step has answered. */
  const vouchers = new WeakMap<AuthInfo, TrustedKey>();

  /**
   * The cache policy: a verification is cached for its {@link cacheableWindow}, bound to the key
   * that verified it. A token without a `kid` is never cached: which key verifies it depends on
   * the whole set (see `MAX_CANDIDATES`), not on one key.
   */
  const remember = ({ auth, key }: Verified): AuthInfo => {
    vouchers.set(auth, key);
    if (cache !== undefined && key.trusted && auth.header.kid !== undefined) {
      const [from, until] = cacheableWindow(auth.claims, config);
      const now = Date.now();
      if (now >= from && now < until) cache.set(auth.token, auth, from, until, key);
    }
    return auth;
  };

  /** A first sighting: verified (concurrent sightings of one token share it), then cached. */
  const verifyFresh = (token: string): Awaitable<AuthInfo> =>
    inflight.run(token, () => chain(verifyToken(token, config, keySets), remember));

  const toAuthError = (
    error: unknown,
    requirements: Requirements,
    mode: DpopMode = 'disabled',
    scheme: 'Bearer' | 'DPoP' = 'Bearer',
  ): unknown => {
    if (!(error instanceof Rejection)) return error;
    const authError = new AuthError(error.reason, {
      details: error.details,
      cause: error.cause,
      scopes: requirements.scopes,
      retryAfter: error.retryAfter,
      challenge: challenges[mode],
      scheme,
      nonce: error.nonce,
    });
    reportRejection(config.onRejected, authError);
    return authError;
  };

  const revocation =
    config.isRevoked &&
    new Revocation(config.isRevoked, config.revocationMemo, config.revocationTimeout);
  const sources =
    config.cookie === undefined && config.getToken === undefined
      ? undefined
      : { maxLength: config.maxTokenLength, cookie: config.cookie, getToken: config.getToken };
  const readRequest = (request: RequestLike): string =>
    sources === undefined
      ? extractBearerToken(request, config.maxTokenLength)
      : extractToken(request, sources);

  /**
   * The token still alive once an awaited step has answered (`isRevoked`, `checks`, the DPoP
   * replay insert): an answer given after `exp` is the refusal a verification started then gives;
   * one whose key left the set (or whose set went past `maxStale`) meanwhile is verified again.
   */
  const stillAlive = (auth: AuthInfo): Awaitable<AuthInfo> => {
    checkLifetime(auth.claims, config, Date.now() / 1000);
    const key = vouchers.get(auth);
    return key === undefined || key.vouches(Date.now()) ? auth : verifyFresh(auth.token);
  };

  /** After verification, on every request (cache hit or not): revocation, then requirements. */
  const admit = (auth: AuthInfo, requirements: Requirements): Awaitable<AuthInfo> => {
    const revoked = revocation === undefined ? undefined : revocation.check(auth);
    if (revoked === undefined) {
      const checked = checkRequirements(auth, requirements, config.audiences, config.checkTimeout);
      return checked === undefined ? auth : checked.then(() => stillAlive(auth));
    }
    return revoked.then(() => {
      const checked = checkRequirements(auth, requirements, config.audiences, config.checkTimeout);
      return checked === undefined ? stillAlive(auth) : checked.then(() => stillAlive(auth));
    });
  };

  /** A Bearer token (or one from a cookie, `getToken`, `verify()`): never a key-bound one. */
  const admitBearer = (auth: AuthInfo, requirements: Requirements): Awaitable<AuthInfo> => {
    if (auth.claims.cnf !== undefined) refuseBoundToken(auth.claims.cnf);
    return admit(auth, requirements);
  };

  /**
   * {@link admitBearer} for a cached token, remembering a pass with the entry: the next hit on the
   * same route answers without reading the token's claims again. Sound because both sides are
   * frozen, deeply (the AuthInfo, and the route's resolved requirements, compared by identity),
   * so the answer cannot change; never with a revocation hook or `checks` (your code: asked on
   * every request), and a per-request requirements object (an organization route) never matches.
   */
  const admitCached = (hit: Found<AuthInfo>, requirements: Requirements): Awaitable<AuthInfo> => {
    if (hit.note === requirements) return hit.value;
    const result = admitBearer(hit.value, requirements);
    if (result === hit.value && revocation === undefined && requirements.checks === undefined) {
      hit.note = requirements;
    }
    return result;
  };

  /**
   * Reads the token (none, on an optional route: anonymous), answers a repeat from the cache
   * (whose key still vouches for it) without further work, verifies a first sighting, then admits
   * it either way. Returns the AuthInfo (or a promise of it); throws (or rejects with) an
   * AuthError. A route that accepts DPoP first looks for `Authorization: DPoP`. Published on
   * `resource-guard:decision` when someone listens.
   */
  function attempt<I>(
    input: I,
    read: (input: I) => string,
    requirements: Requirements,
    fromHeader: boolean,
    target?: RequestTarget,
  ): Awaitable<AuthInfo | undefined> {
    if (decisionChannel.hasSubscribers) {
      return observed(input, read, requirements, fromHeader, target);
    }
    return decide(input, read, requirements, fromHeader, undefined, target);
  }

  /** {@link attempt} with its outcome, cache use and duration published. */
  function observed<I>(
    input: I,
    read: (input: I) => string,
    requirements: Requirements,
    fromHeader: boolean,
    target: RequestTarget | undefined,
  ): Awaitable<AuthInfo | undefined> {
    const start = performance.now();
    const trace = { cached: false };
    let result: Awaitable<AuthInfo | undefined>;
    try {
      result = decide(input, read, requirements, fromHeader, trace, target);
    } catch (error) {
      publishRefusal(error, trace.cached, start);
      throw error;
    }
    if (!(result instanceof Promise)) {
      publishDecision(result, trace.cached, start);
      return result;
    }
    return result.then(
      (auth) => {
        publishDecision(auth, trace.cached, start);
        return auth;
      },
      (error: unknown) => {
        publishRefusal(error, trace.cached, start);
        throw error;
      },
    );
  }

  function decide<I>(
    input: I,
    read: (input: I) => string,
    requirements: Requirements,
    fromHeader: boolean,
    trace: { cached: boolean } | undefined,
    target: RequestTarget | undefined,
  ): Awaitable<AuthInfo | undefined> {
    let mode: DpopMode = 'disabled';
    try {
      mode = modeOf(requirements);
      if (mode !== 'disabled' && fromHeader) {
        let presented: DpopPresentation | undefined;
        try {
          presented = (dpop as Dpop).read(input as RequestLike, target);
        } catch (error) {
          throw toAuthError(error, requirements, mode, 'DPoP'); // its challenge: DPoP's
        }
        if (presented !== undefined) {
          try {
            return attemptDpop(input, read, presented, requirements, mode, trace);
          } catch (error) {
            // A DPoP request's own failure is answered on the DPoP challenge (RFC 9449 §7.1).
            throw toAuthError(error, requirements, mode, 'DPoP');
          }
        }
      }
      let token: string;
      try {
        token = read(input);
      } catch (error) {
        const anonymous = error instanceof Rejection && error.reason === 'missing_token';
        if (anonymous && requirements.optional === true) return undefined;
        throw error;
      }
      if (mode === 'required') throw new Rejection('dpop_required');
      const hit = cache?.find(token, Date.now());
      let result: Awaitable<AuthInfo>;
      if (hit !== undefined) {
        if (trace !== undefined) trace.cached = true;
        result = admitCached(hit, requirements);
      } else {
        if (fromHeader) checkBearerSyntax(token);
        const fresh = verifyFresh(token);
        result =
          fresh instanceof Promise
            ? fresh.then((auth) => admitBearer(auth, requirements))
            : admitBearer(fresh, requirements);
      }
      if (!(result instanceof Promise)) return result;
      return result.catch((error: unknown) => {
        throw toAuthError(error, requirements, mode);
      });
    } catch (error) {
      throw toAuthError(error, requirements, mode);
    }
  }

  /**
   * `Authorization: DPoP`: the token verified (or found in the cache) as always, then the proof
   * checked against it and the request, on every request; then the route's requirements.
   */
  function attemptDpop<I>(
    input: I,
    read: (input: I) => string,
    presented: DpopPresentation,
    requirements: Requirements,
    mode: DpopMode,
    trace: { cached: boolean } | undefined,
  ): Promise<AuthInfo> {
    if (sources !== undefined) {
      // A cookie or `getToken` offering a token too: two credentials (RFC 6750 §2).
      let other = false;
      try {
        read(input);
        other = true;
      } catch (error) {
        if (!(error instanceof Rejection && error.reason === 'missing_token')) throw error;
      }
      if (other) throw new Rejection('multiple_credentials');
    }
    const { token } = presented;
    const cached = cache?.get(token, Date.now());
    if (cached !== undefined && trace !== undefined) trace.cached = true;
    const verified = cached ?? verifyFresh(token);
    return Promise.resolve(verified)
      .then((auth) =>
        (dpop as Dpop)
          .check(presented, auth, () => admit(auth, requirements))
          .then(() => stillAlive(auth)),
      )
      .catch((error: unknown) => {
        throw toAuthError(error, requirements, mode, 'DPoP');
      });
  }

  /** {@link attempt}, always as a promise. */
  function check<I>(
    input: I,
    read: (input: I) => string,
    requirements: Requirements | (() => Requirements),
    fromHeader: boolean,
  ): Promise<AuthInfo | undefined> {
    try {
      // Requirements given per call are checked here, so a bad one rejects the promise too.
      const resolved = typeof requirements === 'function' ? requirements() : requirements;
      return Promise.resolve(attempt(input, read, resolved, fromHeader));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  const readVerifyArgument = (token: unknown): string => {
    if (typeof token !== 'string') throw new Rejection('malformed_token');
    if (token.length > config.maxTokenLength) {
      throw new Rejection('token_too_large', { length: token.length });
    }
    return token;
  };

  const sets = [...new Set(keySets.values())];
  const health = (): KeyHealth[] => {
    const now = Date.now();
    const reports = sets.flatMap((set) => set.health(now));
    return [...config.issuers].flatMap((issuer) => reports.filter((r) => r.issuer === issuer));
  };

  const verifier = {
    resourceMetadata: config.resourceMetadata,
    health,
    dpopNonce: (request: RequestLike): string | undefined =>
      dpop !== undefined && typeof request === 'object' && request !== null
        ? dpop.newerNonce(request)
        : undefined,
    async warm() {
      const failed = await Promise.all(
        sets.map((set) =>
          set.warm().then(
            () => [],
            () =>
              set
                .health()
                .map((entry) => `${entry.issuer}: ${entry.lastError ?? 'no usable keys'}`),
          ),
        ),
      );
      const failures = failed.flat();
      if (failures.length > 0) throw new WarmUpError(failures);
      return health();
    },
    verify: (token: string, requirements?: Requirements) =>
      check(token, readVerifyArgument, () => resolveRequirements(requirements, true), false),
    authenticate: (request: RequestLike, requirements?: Requirements) =>
      check(request, readRequest, () => resolveRequirements(requirements, true), true),
    guard(requirements?: Requirements) {
      const resolved = resolveRequirements(requirements);
      const usesTarget = modeOf(resolved) !== 'disabled';
      const forRequest = (context: RequestContext | undefined): Requirements => {
        if (context === undefined || context === null) return resolved;
        // Read once (a getter answers once). An organization route whose request names none (or
        // no string) matches no token.
        const organization: unknown = context.organization;
        return { ...resolved, organization: typeof organization === 'string' ? organization : '' };
      };
      // A context is read inside check(), so that a getter's throw rejects the promise too.
      const guard = ((request: RequestLike, context?: RequestContext) =>
        context === undefined
          ? check(request, readRequest, resolved, true)
          : check(request, readRequest, () => forRequest(context), true)) as Guard;
      // No closure per request: the reader is fixed, the request passed through.
      registerAttempt(
        guard,
        (request, context, target) =>
          attempt(request, readRequest, forRequest(context), true, target),
        usesTarget,
      );
      return Object.freeze(guard);
    },
  };
  // The overloads (optional routes may resolve to `undefined`) are the public face of the above.
  return Object.freeze(verifier) as Verifier;
}

/** An accepted (or anonymous) decision, on `resource-guard:decision`. */
function publishDecision(auth: AuthInfo | undefined, cached: boolean, start: number): void {
  if (!decisionChannel.hasSubscribers) return;
  const duration = performance.now() - start;
  const event: DecisionEvent =
    auth === undefined
      ? { outcome: 'anonymous', cached, duration }
      : { outcome: 'accepted', cached, duration, issuer: auth.issuer };
  decisionChannel.publish(event);
}

/** A refused decision (an AuthError), or an error (a bug), on `resource-guard:decision`. */
function publishRefusal(error: unknown, cached: boolean, start: number): void {
  if (!decisionChannel.hasSubscribers) return;
  const duration = performance.now() - start;
  const event: DecisionEvent =
    error instanceof AuthError
      ? { outcome: 'refused', reason: error.reason, status: error.status, cached, duration }
      : { outcome: 'error', cached, duration };
  decisionChannel.publish(event);
}

/** RFC 6750 §3 wants at least one auth-param on every challenge: the API's identifier. */
function defaultRealm(audiences: ReadonlySet<string>): string {
  for (const audience of audiences) if (isSafeQuotedValue(audience)) return audience;
  return 'api';
}

/**
 * One key set per issuer, created once; or one shared by all: with `jwksUri`, or a static `jwks`
 * (loaded once, never stale).
 */
function createKeySets(config: ResolvedOptions): ReadonlyMap<string, RemoteKeySet> {
  const map = new Map<string, RemoteKeySet>();
  const { jwksUri, jwks, keys } = config;
  const issuers = [...config.issuers];
  const shared = jwks
    ? new RemoteKeySet(
        staticKeys(jwks),
        { ...keys, maxAge: Number.POSITIVE_INFINITY },
        { issuers, fetched: false },
      )
    : jwksUri &&
      new RemoteKeySet(
        fetchedKeys(() => Promise.resolve(jwksUri), keys),
        keys,
        { issuers, fetched: true },
      );
  for (const issuer of issuers) {
    map.set(
      issuer,
      shared ||
        new RemoteKeySet(
          fetchedKeys(discoverJwksUri(issuer, { ...keys, share: !keys.requestScoped }), keys),
          keys,
          { issuers: [issuer], fetched: true },
        ),
    );
  }
  return map;
}
