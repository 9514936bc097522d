import type { RejectionEvent } from './errors.ts';
import type { KeySetOptions, ResolvedKeySetOptions } from './key-set.ts';
import { isLoopback } from './fetch-json.ts';
import type { Requirements } from './requirements.ts';
import type { ResolvedTokenCacheOptions, TokenCacheOptions } from './token-cache.ts';
import { buildResourceMetadata } from './resource-metadata.ts';
import type { ResourceMetadata, ResourceMetadataOptions } from './resource-metadata.ts';
import { configError, resolveLevel } from './option-checks.ts';
import type { Covers } from './option-checks.ts';
import { DEFAULT_ALGORITHMS, OPTION_RULES } from './option-rules.ts';

export { DEFAULT_ALGORITHMS };

/** An algorithm resource-guard can verify with a key from a JWKS. */
export type Algorithm = (typeof DEFAULT_ALGORITHMS)[number];

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
   * Default: `{ maxEntries: 10000, maxBytes: 48 MiB }` (about 40 MiB at 10,000 Logto tokens).
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
}

/** What route requirements are once checked: every flag present, lists frozen. */
export interface ResolvedRequirements extends Requirements {
  readonly any: boolean;
  readonly machine: boolean;
  readonly anyOrganization: boolean;
}

// A compile error when an option has no rule, or a rule no option.
const _everyOptionHasARule: Covers<typeof OPTION_RULES.verifier.rules, VerifierOptions> = true;

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
    },
    cache: options.cache,
    onRejected: options.onRejected as VerifierOptions['onRejected'],
    realm: options.realm,
    resourceMetadata:
      options.resourceMetadata === undefined
        ? undefined
        : buildResourceMetadata(options.resourceMetadata, audiences, issuers),
    maxTokenLength: options.maxTokenLength,
  };
}

/** With no requirements: shared, so `verify(token)` allocates nothing for them. */
const NO_REQUIREMENTS: ResolvedRequirements = Object.freeze({
  any: false,
  machine: false,
  anyOrganization: false,
});

/**
 * Checks a route's requirements: once where a route is declared (`guard`), per call for `verify`
 * and `authenticate` (so it stays cheap: the suggestion work runs only for an unknown key).
 */
export function resolveRequirements(input: Requirements | undefined): ResolvedRequirements {
  if (input === undefined) return NO_REQUIREMENTS;
  const { scopes, any, machine, organization, anyOrganization } = resolveLevel(
    input,
    OPTION_RULES.requirements,
  );
  if (organization !== undefined && anyOrganization) {
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
  };
  if (scopes !== undefined) resolved.scopes = scopes;
  if (organization !== undefined) resolved.organization = organization;
  return Object.freeze(resolved);
}
