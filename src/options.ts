import type { RejectionEvent } from './verifier.ts';
import type { KeySetOptions, ResolvedKeySetOptions } from './key-set.ts';
import { isSafeQuotedValue } from './errors.ts';
import { isLoopback } from './fetch-json.ts';
import type { Requirements } from './requirements.ts';
import type { ResolvedTokenCacheOptions, TokenCacheOptions } from './token-cache.ts';
import { buildResourceMetadata } from './resource-metadata.ts';
import type { ResourceMetadata, ResourceMetadataOptions } from './resource-metadata.ts';

/** The JWS algorithms accepted by default: every asymmetric one. Never `none`, never HS*. */
export const DEFAULT_ALGORITHMS = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const);

/** An algorithm resource-guard can verify with a key from a JWKS. */
export type Algorithm = (typeof DEFAULT_ALGORITHMS)[number];

/**
 * How to verify access tokens. Every duration is in seconds.
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
  /** Allowed JWS algorithms. Default: {@link DEFAULT_ALGORITHMS}. `none` and HS* are refused. */
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
  /** Extra claims that must be present. Default: none. */
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
  /** Longest token accepted, in characters. Default: 8192. */
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

function fail(message: string): never {
  throw new TypeError(`resource-guard: ${message}`);
}

function stringList(value: unknown, name: string): string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    !list.every((item) => typeof item === 'string' && item !== '')
  ) {
    fail(`\`${name}\` must be a non-empty string or array of non-empty strings`);
  }
  return [...(list as string[])];
}

function seconds(
  value: unknown,
  name: string,
  fallback: number | undefined,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    fail(`\`${name}\` must be a number of seconds from ${min} to ${max}`);
  }
  return value;
}

function count(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    fail(`\`${name}\` must be a non-negative integer`);
  }
  return value;
}

function httpUrl(value: unknown, name: string): URL {
  const href = value instanceof URL ? value.href : value;
  if (typeof href !== 'string' || !URL.canParse(href)) fail(`\`${name}\` must be an absolute URL`);
  const url = new URL(href);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(`\`${name}\` must be http(s)`);
  return url;
}

/** Checks the options and fills in defaults, without touching the caller's object. */
export function resolveOptions(input: VerifierOptions): ResolvedOptions {
  if (typeof input !== 'object' || input === null) fail('options must be an object');
  const options = { ...input };
  const issuers = stringList(options.issuer, 'issuer');
  for (const issuer of issuers) httpUrl(issuer, 'issuer');
  const audiences = stringList(options.audience, 'audience');
  const jwksUri = options.jwksUri === undefined ? undefined : httpUrl(options.jwksUri, 'jwksUri');
  if (
    jwksUri?.protocol === 'http:' &&
    !isLoopback(jwksUri) &&
    issuers.some((i) => new URL(i).protocol === 'https:')
  ) {
    // Keys over plain HTTP could be swapped in transit: only for an http (development) issuer,
    // or from this machine itself.
    fail('`jwksUri` must use https when an issuer does (http is allowed on loopback)');
  }

  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    fail('`algorithms` must be a non-empty array');
  }
  for (const alg of algorithms) {
    if (!(DEFAULT_ALGORITHMS as readonly string[]).includes(alg)) {
      fail(`\`algorithms\` may hold only ${DEFAULT_ALGORITHMS.join(', ')}; got ${String(alg)}`);
    }
  }

  const requiredClaims = options.requiredClaims ?? [];
  if (!Array.isArray(requiredClaims) || !requiredClaims.every((c) => typeof c === 'string')) {
    fail('`requiredClaims` must be an array of claim names');
  }
  if (options.organizations !== undefined && typeof options.organizations !== 'boolean') {
    fail('`organizations` must be a boolean');
  }
  if (options.strict !== undefined && typeof options.strict !== 'boolean') {
    fail('`strict` must be a boolean');
  }
  const strict = options.strict ?? true;
  if (options.onRejected !== undefined && typeof options.onRejected !== 'function') {
    fail('`onRejected` must be a function');
  }
  if (
    options.realm !== undefined &&
    (typeof options.realm !== 'string' || !isSafeQuotedValue(options.realm))
  ) {
    fail('`realm` must be a string of printable ASCII without `"` or `\\`');
  }
  if (options.fetch !== undefined && typeof options.fetch !== 'function') {
    fail('`fetch` must be a function');
  }
  if (options.keys !== undefined && (typeof options.keys !== 'object' || options.keys === null)) {
    fail('`keys` must be an object');
  }
  const keys = { ...options.keys };

  const cacheInput = options.cache ?? {};
  if (cacheInput !== false && (typeof cacheInput !== 'object' || cacheInput === null)) {
    fail('`cache` must be an object or false');
  }
  const cache =
    cacheInput === false
      ? false
      : {
          maxEntries: count(cacheInput.maxEntries, 'cache.maxEntries', 10_000),
          maxBytes: count(cacheInput.maxBytes, 'cache.maxBytes', 48 * 1024 * 1024),
        };

  const base = ['iss', 'sub', 'aud', 'exp'];
  const profile = strict ? ['iat', 'jti', 'client_id'] : [];
  return {
    issuers: new Set(issuers),
    audiences: new Set(audiences),
    organizations: options.organizations === true,
    jwksUri,
    algorithms: new Set(algorithms),
    algorithmList: Object.freeze([...new Set<string>(algorithms)]),
    clockTolerance: seconds(options.clockTolerance, 'clockTolerance', 5) as number,
    maxTokenAge: seconds(options.maxTokenAge, 'maxTokenAge', undefined),
    requiredClaims: [...new Set([...base, ...profile, ...requiredClaims])],
    strict,
    keys: {
      maxAge: seconds(keys.maxAge, 'keys.maxAge', 600) as number,
      cooldown: seconds(keys.cooldown, 'keys.cooldown', 30) as number,
      timeout: seconds(keys.timeout, 'keys.timeout', 5, 0.001, 600) as number,
      maxStale: seconds(keys.maxStale, 'keys.maxStale', 43_200) as number,
      fetch: options.fetch ?? ((...args) => globalThis.fetch(...args)),
    },
    cache,
    onRejected: options.onRejected,
    realm: options.realm,
    resourceMetadata:
      options.resourceMetadata === undefined
        ? undefined
        : buildResourceMetadata(options.resourceMetadata, audiences, issuers),
    maxTokenLength: seconds(options.maxTokenLength, 'maxTokenLength', 8192, 1) as number,
  };
}

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** Checks a route's requirements once, where the route is declared. */
export function resolveRequirements(input: Requirements | undefined): Requirements {
  if (input === undefined) return Object.freeze({});
  if (typeof input !== 'object' || input === null) fail('requirements must be an object');
  const { scopes, any, machine, organization } = input;
  if (scopes !== undefined) {
    if (
      !Array.isArray(scopes) ||
      !scopes.every((s) => typeof s === 'string' && SCOPE_TOKEN.test(s))
    ) {
      fail('`scopes` must be an array of scope tokens (printable ASCII, no space, `"` or `\\`)');
    }
  }
  if (any !== undefined && typeof any !== 'boolean') fail('`any` must be a boolean');
  if (machine !== undefined && typeof machine !== 'boolean') fail('`machine` must be a boolean');
  if (organization !== undefined && typeof organization !== 'string') {
    fail('`organization` must be a string');
  }
  return Object.freeze({
    ...(scopes === undefined ? {} : { scopes: Object.freeze([...scopes]) }),
    any: any === true,
    machine: machine === true,
    ...(organization === undefined ? {} : { organization }),
  });
}
