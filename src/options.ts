import type { JWK } from 'jose';
import type { RejectionEvent } from './errors.ts';
import type { AuthInfo, RequestLike } from './types.ts';
import type { KeySetOptions, ResolvedKeySetOptions } from './key-set.ts';
import { isLoopback } from './fetch-json.ts';
import type { Requirements } from './requirements.ts';
import type { ResolvedTokenCacheOptions, TokenCacheOptions } from './token-cache.ts';
import { buildResourceMetadata } from './resource-metadata.ts';
import type { ResourceMetadata, ResourceMetadataOptions } from './resource-metadata.ts';
import {
  configError,
  isPlainObject,
  isTrimmedString,
  ownData,
  quote,
  resolveLevel,
} from './option-checks.ts';
import type { Covers, Resolved } from './option-checks.ts';
import { DEFAULT_ALGORITHMS, OPTION_RULES, REQUEST_REQUIREMENTS } from './option-rules.ts';
import type { Algorithm } from './option-rules.ts';
import { resolveDpop } from './dpop-options.ts';
import type { DpopNonceOptions, DpopOptions, ResolvedDpopOptions } from './dpop-options.ts';

export { DEFAULT_ALGORITHMS };

/** An algorithm resource-guard can verify with a key from a JWKS. */
export type { Algorithm } from './option-rules.ts';

/**
 * How to verify access tokens. Every duration is in seconds. An unknown or misspelt key, at any
 * level, is a `TypeError` naming it (with a suggestion), never silently ignored.
 *
 * @example
 * ```ts
 * const verifier = createVerifier({
 *   issuer: 'https://tenant.logto.app/oidc',
 *   audience: 'https://shopping.api',
 * });
 * ```
 */
export interface VerifierOptions {
  /** Trusted issuer(s); `iss` must equal one exactly (a Logto issuer ends in `/oidc`). */
  readonly issuer: string | readonly string[];
  /** Accepted audience(s): your API resource indicator; `aud` must contain one, exactly. */
  readonly audience: string | readonly string[];
  /**
   * The issuer's JWKS URL. Default: `jwks_uri` from the issuer's discovery document
   * (`<issuer>/.well-known/openid-configuration`, then RFC 8414's
   * `/.well-known/oauth-authorization-server`). With several issuers it is used for all of them.
   */
  readonly jwksUri?: string | URL;
  /**
   * Allowed JWS algorithms, a non-empty array. Default: {@link DEFAULT_ALGORITHMS}. `none` and HS*
   * are refused.
   */
  readonly algorithms?: readonly Algorithm[];
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. Default: 5. */
  readonly clockTolerance?: number;
  /** Reject tokens whose `iat` is older than this many seconds. Default: no limit. */
  readonly maxTokenAge?: number;
  /**
   * Also accept Logto organization tokens (`aud = urn:logto:organization:<id>`); they then open
   * only routes that name their organization (`organization` requirement). Default: `false`.
   */
  readonly organizations?: boolean;
  /** Extra claims that must be present, an array of claim names. Default: none. */
  readonly requiredClaims?: readonly string[];
  /**
   * RFC 9068 profile: `typ` must be `at+jwt`, and `iat`, `jti`, `client_id` must be present
   * (`iss`, `sub`, `aud`, `exp` always are). Logto's tokens pass. Default: `true`.
   */
  readonly strict?: boolean;
  /** The key-set cache. Defaults: maxAge 600, cooldown 30, timeout 5, maxStale 43200. */
  readonly keys?: KeySetOptions;
  /**
   * Called with the exact reason of every rejection, for logs and metrics. Never receives the
   * token. Errors it throws are ignored. Default: none.
   */
  readonly onRejected?: (event: RejectionEvent) => void;
  /**
   * The verified-token cache: a token seen before is answered from memory (its scopes are still
   * checked against each route). Entries never outlive the token's `exp` and are dropped when their
   * key leaves the JWKS; failures are never cached. `false` turns it off.
   * Default: `{ maxEntries: 10000, maxBytes: 48 MiB }` (about 13 MiB at 10,000 Logto tokens).
   */
  readonly cache?: TokenCacheOptions | false;
  /** `realm="..."` in every `WWW-Authenticate` challenge. Default: none. */
  readonly realm?: string;
  /**
   * Serve RFC 9728 protected resource metadata (see `verifier.resourceMetadata` and each adapter's
   * `resourceMetadata`), and announce it as `resource_metadata="..."` on every challenge.
   * Default: off.
   */
  readonly resourceMetadata?: ResourceMetadataOptions;
  /** Longest token accepted, in characters (an integer from 1 to 1 MiB). Default: 8192. */
  readonly maxTokenLength?: number;
  /** The `fetch` used for discovery and the JWKS (a proxy-aware one, say). Default: global fetch. */
  readonly fetch?: typeof globalThis.fetch;
  /**
   * A static key set instead of a JWKS URL, for air-gapped deployments and tests: `{ keys: [...] }`,
   * each a public JWK or a PEM (SPKI) public key. Nothing is fetched; the keys never expire (a new
   * set needs a new verifier). Asymmetric keys only, as always. Not with `jwksUri`. Default: none.
   */
  readonly jwks?: { readonly keys: readonly (JWK | string)[] };
  /**
   * Asked on every request (cache hit or not) whether a verified token was revoked: `true` refuses
   * it (`revoked`, 401). Logto cannot revoke a JWT access token at the issuer; keep a denylist (by
   * `jti`, or by `client_id` to cut an app off) in a shared store. A hook that throws, rejects or
   * takes longer than `revocationTimeout` fails closed: 503. Default: none.
   */
  readonly isRevoked?: (auth: AuthInfo) => boolean | Promise<boolean>;
  /**
   * How long `isRevoked`'s answer for one token is remembered, in seconds (at most 10,000 tokens).
   * A revocation then takes up to this long to bite. Default: `0`: asked on every request.
   */
  readonly revocationMemo?: number;
  /** Longest wait for `isRevoked`, in seconds; past it the request gets a 503. Default: 2. */
  readonly revocationTimeout?: number;
  /**
   * Longest wait for a route's async `checks` rule, in seconds; past it the request gets a 503
   * (`check_unavailable`), never a hang. Default: 2.
   */
  readonly checkTimeout?: number;
  /**
   * Also read the access token from this cookie. Opt-in: a cookie is sent by the browser on its
   * own, so a cookie-authenticated API needs CSRF protection (SameSite, an anti-CSRF header).
   * A token offered in two places (header and cookie) is a 400. Default: none.
   */
  readonly cookie?: string;
  /**
   * Also read the access token with this function (a custom header, say): return the token, or
   * `undefined` when there is none. A token offered in two places is a 400. Default: none.
   */
  readonly getToken?: (request: RequestLike) => string | undefined | null;
  /**
   * For runtimes where work cannot outlive or cross requests (Cloudflare Workers: "a promise
   * created by a request that has since ended can never settle"): no request ever awaits a
   * promise another request created, and nothing runs in the background. Keys are refreshed by
   * the request that finds them stale (others wait on their own timer meanwhile); concurrent
   * first sightings of a token are verified separately. Default: `true` on Cloudflare Workers
   * (detected by `navigator.userAgent`), else `false`.
   */
  readonly requestScoped?: boolean;
  /**
   * DPoP (RFC 9449): sender-constrained tokens, `Authorization: DPoP` with a proof, checked on
   * every request and accepted once (see {@link DpopOptions}). Without it, DPoP is off, and a
   * DPoP-bound token (`cnf`) is refused: it cannot be used as a Bearer token. Default: off.
   */
  readonly dpop?: DpopOptions;
}

export interface ResolvedOptions {
  readonly issuers: ReadonlySet<string>;
  readonly audiences: ReadonlySet<string>;
  readonly organizations: boolean;
  readonly jwksUri: URL | undefined;
  readonly algorithms: ReadonlySet<string>;
  readonly algorithmList: readonly string[];
  readonly clockTolerance: number;
  readonly maxTokenAge: number | undefined;
  readonly requiredClaims: readonly string[];
  readonly strict: boolean;
  readonly keys: ResolvedKeySetOptions;
  readonly cache: ResolvedTokenCacheOptions | false;
  readonly onRejected: ((event: RejectionEvent) => void) | undefined;
  readonly realm: string | undefined;
  readonly resourceMetadata: ResourceMetadata | undefined;
  readonly maxTokenLength: number;
  readonly jwks: { readonly keys: readonly unknown[] } | undefined;
  readonly isRevoked: ((auth: AuthInfo) => boolean | Promise<boolean>) | undefined;
  readonly revocationMemo: number;
  readonly revocationTimeout: number;
  readonly checkTimeout: number;
  readonly cookie: string | undefined;
  readonly getToken: ((request: RequestLike) => unknown) | undefined;
  readonly dpop: ResolvedDpopOptions | undefined;
}

/** What route requirements are once checked: every flag present, lists frozen. */
export interface ResolvedRequirements extends Requirements {
  readonly any: boolean;
  readonly machine: boolean;
  readonly anyOrganization: boolean;
  readonly optional: boolean;
}

// A compile error when an option has no rule, or a rule no option.
const _everyOptionHasARule: Covers<typeof OPTION_RULES.verifier.rules, VerifierOptions> = true;
const _everyDpopOptionHasARule: Covers<typeof OPTION_RULES.dpop.rules, DpopOptions> = true;
const _everyNonceOptionHasARule: Covers<typeof OPTION_RULES.dpopNonce.rules, DpopNonceOptions> =
  true;

/**
 * Checks the options and fills in defaults, without touching the caller's object. Throws a
 * `TypeError` naming the option path (`keys.cooldown`), with a suggestion for an unknown key.
 */
export function resolveOptions(input: VerifierOptions): ResolvedOptions {
  const options = resolveLevel(input, OPTION_RULES.verifier);
  const { issuer: issuers, audience: audiences, jwksUri, strict } = options;
  if (
    jwksUri?.protocol === 'http:' &&
    !isLoopback(jwksUri) &&
    issuers.some((i) => new URL(i).protocol === 'https:')
  ) {
    // Keys over plain HTTP could be swapped in transit: only for an http (development) issuer,
    // or from this machine itself.
    configError('jwksUri', 'must use https when an issuer does (http is allowed on loopback)');
  }
  if (jwksUri !== undefined && options.jwks !== undefined) {
    configError('jwks', 'and `jwksUri` are two key sources: give one');
  }
  const fetch = options.fetch;
  const base = ['iss', 'sub', 'aud', 'exp'];
  const profile = strict ? ['iat', 'jti', 'client_id'] : [];
  return {
    issuers: new Set(issuers),
    audiences: new Set(audiences),
    organizations: options.organizations,
    jwksUri,
    algorithms: new Set(options.algorithms),
    algorithmList: Object.freeze([...new Set(options.algorithms)]),
    clockTolerance: options.clockTolerance,
    maxTokenAge: options.maxTokenAge,
    requiredClaims: [...new Set([...base, ...profile, ...options.requiredClaims])],
    strict,
    keys: {
      ...options.keys,
      fetch: fetch ?? ((...args) => globalThis.fetch(...args)),
      requestScoped: options.requestScoped ?? isWorkers(),
    },
    cache: options.cache,
    onRejected: options.onRejected as VerifierOptions['onRejected'],
    realm: options.realm,
    resourceMetadata:
      options.resourceMetadata === undefined
        ? undefined
        : withDpop(
            buildResourceMetadata(options.resourceMetadata, audiences, issuers),
            options.dpop,
          ),
    maxTokenLength: options.maxTokenLength,
    jwks: options.jwks,
    isRevoked: options.isRevoked as ResolvedOptions['isRevoked'],
    revocationMemo: options.revocationMemo,
    revocationTimeout: options.revocationTimeout,
    checkTimeout: options.checkTimeout,
    cookie: options.cookie,
    getToken: options.getToken as ResolvedOptions['getToken'],
    dpop: options.dpop && resolveDpop(options.dpop),
  };
}

/**
 * RFC 9728 §2 with DPoP on: `dpop_signing_alg_values_supported`, and
 * `dpop_bound_access_tokens_required` when every route requires it by default.
 */
function withDpop(
  metadata: ResourceMetadata,
  dpop: { readonly mode: string; readonly algorithms: readonly string[] } | undefined,
): ResourceMetadata {
  if (dpop === undefined || dpop.mode === 'disabled') return metadata;
  const document = Object.freeze({
    ...metadata.document,
    dpop_signing_alg_values_supported: [...dpop.algorithms],
    ...(dpop.mode === 'required' ? { dpop_bound_access_tokens_required: true } : {}),
  });
  return Object.freeze({ ...metadata, document });
}

/** Cloudflare Workers says so in `navigator.userAgent`. */
function isWorkers(): boolean {
  const { navigator } = globalThis as { navigator?: { userAgent?: unknown } };
  return navigator?.userAgent === 'Cloudflare-Workers';
}

/** With no requirements: shared, so `verify(token)` allocates nothing for them. */
const NO_REQUIREMENTS: ResolvedRequirements = Object.freeze({
  any: false,
  machine: false,
  anyOrganization: false,
  optional: false,
});

/**
 * `verify()` and `authenticate()` are given the organization a request names (a header, a query
 * parameter): named but not a non-empty string (absent, blank, an array from `?org=a&org=b`), it
 * matches no token (403), as a route's `organization` option does; it never makes the route
 * global (a global token let in) nor throws (a 500). Unless the route also accepts any organization.
 */
function fromRequest(given: Requirements): Resolved<typeof REQUEST_REQUIREMENTS.rules> {
  try {
    return readFromRequest(given);
  } catch (error) {
    // A getter or a Proxy that throws while read: the resource-guard TypeError the other readers give.
    if (error instanceof TypeError && error.message.startsWith('resource-guard: ')) throw error;
    return configError('requirements', 'could not be read', { cause: error });
  }
}

function readFromRequest(given: Requirements): Resolved<typeof REQUEST_REQUIREMENTS.rules> {
  const member = isPlainObject(given)
    ? Object.getOwnPropertyDescriptor(given, 'organization')
    : undefined;
  if (member === undefined) return resolveLevel(given, REQUEST_REQUIREMENTS);
  if (typeof member.value === 'string') {
    // The common case, a string held as data, read from its descriptor: no getter called, no
    // copy. That string is the organization used (a Proxy's get may answer otherwise).
    const resolved = resolveLevel(given, REQUEST_REQUIREMENTS);
    (resolved as { organization?: string }).organization = member.value;
    return resolved;
  }
  // Otherwise every member is read once into data and that copy resolved: a getter or a Proxy
  // answering 'o1' and then undefined never turns the organization route global.
  const input = ownData(given, REQUEST_REQUIREMENT_NAMES, 'requirements') as Record<
    string,
    unknown
  >;
  const named: unknown = Object.hasOwn(input, 'organization') ? input.organization : undefined;
  if (typeof named !== 'string' && (named !== undefined || input.anyOrganization !== true)) {
    input.organization = '';
  }
  return resolveLevel(input, REQUEST_REQUIREMENTS);
}

const REQUEST_REQUIREMENT_NAMES = Object.freeze(Object.keys(REQUEST_REQUIREMENTS.rules));

/** Whether a route's requirements (already read and checked) hold an own `organization` member. */
function namesOrganization(input: Requirements): boolean {
  try {
    return Object.getOwnPropertyDescriptor(input, 'organization') !== undefined;
  } catch (error) {
    return configError('requirements', 'could not be read', { cause: error });
  }
}

/**
 * Checks a route's requirements: once where a route is declared (`guard`), per call for `verify`
 * and `authenticate` (so it stays cheap: the suggestion work runs only for an unknown key).
 */
export function resolveRequirements(
  input: Requirements | undefined,
  perCall = false,
): ResolvedRequirements {
  if (input === undefined) return NO_REQUIREMENTS;
  const { scopes, any, machine, organization, anyOrganization, optional, dpop, ...rules } = perCall
    ? fromRequest(input)
    : resolveLevel(input, OPTION_RULES.requirements);
  if (organization === undefined && !perCall && namesOrganization(input)) {
    // Elsewhere a known key whose value is undefined counts as absent; here that would be a route
    // meant for one organization (`organization: process.env.ORG_ID`, unset) open to every global
    // token. Leave the key out for a route that names none.
    configError(
      'organization',
      'is undefined: a route for an organization must name it (leave the key out for one that names none)',
    );
  }
  if (organization !== undefined && !perCall && !isTrimmedString(organization)) {
    // Declared on a route, an empty organization (or one with a CR or a space around it, which no
    // token names) is a mistake; given per call, it comes from the request (an empty header) and
    // matches no token.
    configError(
      'organization',
      `must be a non-empty string without surrounding whitespace or control characters (got ${quote(organization)})`,
    );
  }
  // Per call, the organization comes from the request: one named beside `anyOrganization` is the
  // one required (checkOrganization gives it precedence), never a TypeError a client can cause.
  if (organization !== undefined && anyOrganization && !perCall) {
    configError(
      'anyOrganization',
      'contradicts `organization`: a route names its organization, or accepts any',
    );
  }
  // Built without spreads: `verify` and `authenticate` resolve per call.
  const resolved: { -readonly [K in keyof ResolvedRequirements]: ResolvedRequirements[K] } = {
    any,
    machine,
    anyOrganization,
    optional,
  };
  if (scopes !== undefined) resolved.scopes = scopes;
  if (rules.claimEquals !== undefined) resolved.claimEquals = rules.claimEquals;
  if (rules.claimIncludes !== undefined) resolved.claimIncludes = rules.claimIncludes;
  if (rules.checks !== undefined) {
    resolved.checks = rules.checks as NonNullable<Requirements['checks']>;
  }
  if (organization !== undefined) resolved.organization = organization;
  if (dpop !== undefined) resolved.dpop = dpop;
  return Object.freeze(resolved);
}
