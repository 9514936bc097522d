/**
 * The one table of option rules: every option of every level (createVerifier, `keys`, `cache`,
 * `resourceMetadata`, route requirements, logto), with its check and its default. Unknown keys are
 * refused at every level, with a suggestion; the checks themselves live in `option-checks.ts`.
 */
import type { KeySetOptions } from './key-set.ts';
import type { Requirements } from './requirements.ts';
import { UNMATCHABLE } from './requirements.ts';
import type { ResourceMetadataOptions } from './resource-metadata.ts';
import type { TokenCacheOptions } from './token-cache.ts';
import type { Check, Item, Level, Resolved, Rule, Rules } from './option-checks.ts';
import {
  boolean,
  configError,
  count,
  describe,
  func,
  httpUrl,
  hasQueryOrFragment,
  httpUrlString,
  isHttpUrlString,
  isIssuerUrl,
  isUrlWithoutExtras,
  isNonEmptyString,
  isPlainObject,
  isScopeToken,
  isTrimmedString,
  list,
  nested,
  nonEmptyString,
  publishedUrlString,
  string,
  oneOrMore,
  optional,
  quotable,
  quote,
  record,
  required,
  resolveLevel,
  seconds,
  withDefault,
} from './option-checks.ts';

/** Rules for exactly the keys of an options interface (a compile error otherwise). */
type RulesFor<O> = { readonly [K in keyof O]-?: Rule<unknown> };

/** An algorithm resource-guard can verify with. */
export type Algorithm = (typeof DEFAULT_ALGORITHMS)[number];

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

/**
 * Durations: no tighter bound than a safe integer number of seconds. The third argument of
 * `seconds()` is the longest plausible value: above it (and from 1000 up), a warning asks whether
 * milliseconds were meant.
 */
const MAX_SECONDS = Number.MAX_SAFE_INTEGER;
const DAY = 86_400;
/** Longest `maxTokenLength`: 1 MiB of characters (real access tokens are a few KiB). */
export const MAX_TOKEN_LENGTH = 1024 * 1024;

const isAlgorithm: Item<string> = (value): value is string =>
  (DEFAULT_ALGORITHMS as readonly unknown[]).includes(value);

/** `keys`: the key-set cache. Every duration in seconds. */
const KEYS = {
  rules: {
    /** Keys younger than this are used without asking the issuer. Default: 600. */
    maxAge: withDefault(seconds(0, MAX_SECONDS, DAY), 600),
    /** At most one refetch per cooldown for unknown `kid`s. Default: 30. */
    cooldown: withDefault(seconds(0, MAX_SECONDS, DAY), 30),
    /** Timeout of one JWKS or discovery request, from 0.001 to 600. Default: 5. */
    timeout: withDefault(seconds(0.001, 600, 120), 5),
    /** How long the last good keys serve past `maxAge` while refreshes fail. Default: 43200. */
    maxStale: withDefault(seconds(0, MAX_SECONDS, 90 * DAY), 43_200),
  } satisfies RulesFor<KeySetOptions>,
  path: 'keys',
  prefix: 'keys.',
  noun: 'a `keys` option',
  hints: {},
};

/** `cache`: the verified-token cache (or `false`). */
const CACHE = {
  rules: {
    /** Most tokens kept. Default: 10000. */
    maxEntries: withDefault(count('entries', 0, Number.MAX_SAFE_INTEGER), 10_000),
    /** Approximate memory bound of the entries. Default: 48 MiB. */
    maxBytes: withDefault(count('bytes', 0, Number.MAX_SAFE_INTEGER), 48 * 1024 * 1024),
  } satisfies RulesFor<TokenCacheOptions>,
  path: 'cache',
  prefix: 'cache.',
  noun: 'a `cache` option',
  hints: {},
};

const cacheOrFalse: Check<Resolved<typeof CACHE.rules> | false> = (value, path) => {
  if (value === false) return false;
  if (!isPlainObject(value)) {
    configError(path, `must be a plain object or false (got ${describe(value)})`);
  }
  return resolveLevel(value, CACHE, path);
};

/** `resourceMetadata`: RFC 9728 protected resource metadata. */
const RESOURCE_METADATA = {
  rules: {
    /** The resource identifier: the API's http(s) URL. Default: the first audience. */
    resource: optional(publishedUrlString),
    /** `resource_name`. Default: none. */
    resourceName: optional(nonEmptyString),
    /** `scopes_supported`: an array of scope tokens. Default: none. */
    scopesSupported: optional(list(isScopeToken, 'scope tokens')),
    /** `authorization_servers`: a non-empty array of issuer URLs. Default: the issuers. */
    authorizationServers: optional(
      list(isIssuerUrl, 'issuer URLs (no query, fragment, credentials or whitespace)', 1),
    ),
    /** `resource_documentation`: an http(s) URL. Default: none. */
    resourceDocumentation: optional(publishedUrlString),
  } satisfies RulesFor<ResourceMetadataOptions>,
  path: 'resourceMetadata',
  prefix: 'resourceMetadata.',
  noun: 'a `resourceMetadata` option',
  hints: {},
};

const ROUTE_HINT =
  "it is a route requirement; pass it to verifier.guard(), verify(), authenticate() or the adapter's requireAuth()";
const ROUTE_HINTS = Object.fromEntries(
  [
    'scopes',
    'scope',
    'any',
    'machine',
    'organization',
    'anyOrganization',
    'claimEquals',
    'claimIncludes',
    'checks',
    'optional',
  ].map((key) => [key, ROUTE_HINT]),
);

/** A value `claimEquals` compares: a string, a boolean, or a finite number short of 2^53. */
const isClaimValue = (value: unknown): value is string | number | boolean =>
  typeof value === 'string' ||
  typeof value === 'boolean' ||
  (typeof value === 'number' &&
    Number.isFinite(value) &&
    (!Number.isInteger(value) || Number.isSafeInteger(value)));

const claimValue: Check<string | number | boolean> = (value, path) => {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number' && Number.isFinite(value)) {
    // Past 2^53 a JSON number is rounded before it is compared: another id would equal it.
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      configError(
        path,
        'is an integer beyond Number.MAX_SAFE_INTEGER: compared after rounding, another id would equal it (have the issuer write such ids as strings)',
      );
    }
    return value;
  }
  return configError(
    path,
    `must be a string, a finite number or a boolean (got ${describe(value)})`,
  );
};

/** A static JSON Web Key Set: `{ keys: [...] }`, each a public JWK object or a PEM (SPKI) string. */
const staticJwks: Check<{ readonly keys: readonly unknown[] }> = (value, path) => {
  if (!isPlainObject(value) || !Array.isArray(value.keys) || value.keys.length === 0) {
    configError(path, 'must be a JSON Web Key Set: `{ keys: [...] }` with at least one key');
  }
  for (const [i, key] of value.keys.entries()) {
    const pem = typeof key === 'string' && key.includes('-----BEGIN PUBLIC KEY-----');
    if (!pem && !isPlainObject(key)) {
      configError(`${path}.keys`, `item ${i} must be a public JWK object or a PEM public key`);
    }
  }
  return Object.freeze({ keys: Object.freeze([...value.keys]) });
};

// RFC 6265 §4.1.1: cookie-name is an RFC 2616 token.
const isCookieName: Item<string> = (value): value is string =>
  typeof value === 'string' && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value);
const cookieName: Check<string> = (value, path) => {
  if (!isCookieName(value)) configError(path, `must be a cookie name (got ${describe(value)})`);
  return value;
};

const DPOP_MODES = ['disabled', 'allowed', 'required'] as const;
const dpopMode: Check<(typeof DPOP_MODES)[number]> = (value, path) => {
  if (!(DPOP_MODES as readonly unknown[]).includes(value)) {
    configError(path, "must be 'disabled', 'allowed' or 'required'");
  }
  return value as (typeof DPOP_MODES)[number];
};

/** `scheme://host[:port]`, nothing more. */
const isOrigin: Item<string> = (value): value is string => {
  if (!isHttpUrlString(value) || /[?#]/.test(value)) return false;
  const url = new URL(value);
  return url.pathname === '/' && url.username === '' && url.password === '';
};

const replayStore: Check<{ insertIfAbsent(key: string, ttlMs: number): unknown }> = (
  value,
  path,
) => {
  if (typeof (value as { insertIfAbsent?: unknown } | null)?.insertIfAbsent !== 'function') {
    configError(path, 'must be a replay store: an object with insertIfAbsent(key, ttlMs)');
  }
  return value as { insertIfAbsent(key: string, ttlMs: number): unknown };
};

const nonceSecret: Check<Uint8Array> = (value, path) => {
  const bytes =
    typeof value === 'string'
      ? new TextEncoder().encode(value)
      : value instanceof Uint8Array
        ? value.slice()
        : undefined;
  if (bytes === undefined || bytes.length < 32) {
    configError(path, 'must be a string or a Uint8Array of at least 32 bytes');
  }
  return bytes;
};

/** `createVerifier(options)`. Every duration in seconds. */
const VERIFIER = {
  rules: {
    /** Trusted issuer URL(s): a string or a non-empty array. Required. */
    issuer: required(
      oneOrMore(
        isIssuerUrl,
        'an absolute http(s) URL as a URL parser writes it (lower-case host, no default port, no dot segments), without query, fragment, credentials or whitespace',
        'such issuer URLs',
      ),
    ),
    /** Accepted audience(s): a non-empty string or a non-empty array of them. Required. */
    audience: required(
      oneOrMore(
        isTrimmedString,
        'a non-empty string without surrounding whitespace or control characters',
        'such strings',
      ),
    ),
    /** The issuer's JWKS URL. Default: discovered from each issuer. */
    jwksUri: optional(httpUrl),
    /** A non-empty array of {@link DEFAULT_ALGORITHMS} members. Default: all of them. */
    algorithms: withDefault(
      list(isAlgorithm, DEFAULT_ALGORITHMS.join(' / '), 1),
      DEFAULT_ALGORITHMS as readonly string[],
    ),
    /** Leeway for `exp`, `nbf` and `iat`. Default: 5. */
    clockTolerance: withDefault(seconds(0, MAX_SECONDS, 900), 5),
    /** Oldest `iat` accepted. Default: no limit. */
    maxTokenAge: optional(seconds(0, MAX_SECONDS, 366 * DAY)),
    /** Also accept Logto organization tokens. Default: false. */
    organizations: withDefault(boolean, false),
    /** Extra claims that must be present: an array of claim names. Default: none. */
    requiredClaims: withDefault(
      list(isTrimmedString, 'claim names (no surrounding whitespace or control characters)'),
      [] as readonly string[],
    ),
    /** RFC 9068 profile. Default: true. */
    strict: withDefault(boolean, true),
    /** The key-set cache. Default: see `keys` above. */
    keys: nested(KEYS),
    /** A static key set instead of a JWKS URL: no network. Default: none. */
    jwks: optional(staticJwks),
    /** Asked on every request whether a verified token was revoked. Default: none. */
    isRevoked: optional(func<(auth: never) => unknown>()),
    /** How long `isRevoked`'s answer for a token is remembered. Default: 0 (ask every time). */
    revocationMemo: withDefault(seconds(0, 86_400, 3600), 0),
    /** Longest wait for `isRevoked`, from 0.001 to 60 (then 503). Default: 2. */
    revocationTimeout: withDefault(seconds(0.001, 60), 2),
    /** Longest wait for an async route `checks` rule, from 0.001 to 60 (then 503). Default: 2. */
    checkTimeout: withDefault(seconds(0.001, 60), 2),
    /** Also read the token from this cookie (opt-in; mind CSRF). Default: none. */
    cookie: optional(cookieName),
    /** Also read the token with this function (a custom header, say). Default: none. */
    getToken: optional(func<(request: never) => unknown>()),
    /** No work outlives or crosses a request. Default: true on Cloudflare Workers, else false. */
    requestScoped: optional(boolean),
    /** Called with every rejection. Default: none. */
    onRejected: optional(func<(event: never) => unknown>()),
    /** The verified-token cache, or `false`. Default: see `cache` above. */
    cache: withDefault(cacheOrFalse, Object.freeze(resolveLevel({}, CACHE))),
    /** `realm="..."` on every challenge. Default: none. */
    realm: optional(quotable),
    /** RFC 9728 metadata. Default: off. */
    resourceMetadata: optional((value, path) => resolveLevel(value, RESOURCE_METADATA, path)),
    /** Longest token accepted, in characters, from 1 to 1 MiB. Default: 8192. */
    maxTokenLength: withDefault(count('characters', 1, MAX_TOKEN_LENGTH), 8192),
    /** The `fetch` for discovery and the JWKS. Default: global fetch. */
    fetch: optional(func<typeof globalThis.fetch>()),
    /** DPoP (RFC 9449). Default: off. */
    dpop: optional((value, path) => resolveLevel(value, DPOP, path)),
  },
  path: 'options',
  prefix: '',
  noun: 'a createVerifier() option',
  hints: ROUTE_HINTS,
};

/** `dpop.nonce`: stateless server nonces (RFC 9449 §9). */
const DPOP_NONCE = {
  rules: {
    /** The secret shared by every instance: a string or bytes, at least 32 of them. Required. */
    secret: required(nonceSecret),
    /** Seconds per nonce; a nonce is good for its step and the next. From 1 to 86400. Default: 300. */
    step: withDefault(seconds(1, 86_400), 300),
  },
  path: 'dpop.nonce',
  prefix: 'dpop.nonce.',
  noun: 'a `dpop.nonce` option',
  hints: {},
};

/** `dpop`: RFC 9449 sender-constrained tokens. */
const DPOP = {
  rules: {
    /** `'disabled'`, `'allowed'` or `'required'`. Default: `'allowed'`. */
    mode: withDefault(dpopMode, 'allowed' as const),
    /** The API's public origin(s), for `htu`: `https://api.example.com`. Default: none. */
    origin: optional(oneOrMore(isOrigin, 'an http(s) origin (scheme://host[:port])', 'origins')),
    /** Take the origin's host from the request's Host header. Default: false. */
    trustHost: withDefault(boolean, false),
    /** Proof algorithms, a non-empty array. Default: every asymmetric one. */
    algorithms: withDefault(
      list(isAlgorithm, DEFAULT_ALGORITHMS.join(' / '), 1),
      DEFAULT_ALGORITHMS as readonly string[],
    ),
    /** Seconds a proof is accepted after its `iat`, from 1 to 3600. Default: 60. */
    maxAge: withDefault(seconds(1, 3600), 60),
    /** Where used proofs are remembered. Default: a new in-memory store (one process). */
    replay: optional(replayStore),
    /** Longest wait for the replay store, from 0.001 to 60 (then 503). Default: 1. */
    replayTimeout: withDefault(seconds(0.001, 60), 1),
    /** Server nonces. Default: off. */
    nonce: optional((value, path) => resolveLevel(value, DPOP_NONCE, path)),
    /** Longest proof accepted, in characters, from 256 to 65536. Default: 8192. */
    maxProofLength: withDefault(count('characters', 256, 65_536), 8192),
  },
  path: 'dpop',
  prefix: 'dpop.',
  noun: 'a `dpop` option',
  hints: {
    publicOrigin: 'the public origin is `dpop.origin`',
    origins: 'give one origin or an array of them as `dpop.origin`',
  },
};

/** A Logto custom domain: a host name, or an http(s) origin. */
const isCustomDomain: Item<string> = (value): value is string => {
  if (typeof value !== 'string' || value === '') return false;
  const href = /^https?:\/\//i.test(value) ? value : `https://${value}`;
  if (!URL.canParse(href)) return false;
  const url = new URL(href);
  return (
    url.pathname === '/' && !hasQueryOrFragment(url) && url.username === '' && url.password === ''
  );
};

const logtoEndpoint: Check<string> = (value, path) => {
  const endpoint = httpUrlString(value, path);
  if (!isUrlWithoutExtras(endpoint)) {
    configError(
      path,
      `must be the tenant's URL without query, fragment, credentials or surrounding whitespace (got ${quote(endpoint)})`,
    );
  }
  // The parsed path, as logto() builds the issuer from it (`/oidc/.` is `/oidc/`).
  if (new URL(endpoint).pathname.replace(/\/+$/, '').endsWith('/oidc')) {
    configError(path, 'is the Logto endpoint without `/oidc`');
  }
  return endpoint;
};

const { issuer: _issuer, jwksUri: _jwksUri, ...PASSED_TO_VERIFIER } = VERIFIER.rules;

/** `logto(options)`: every createVerifier() option but `issuer` and `jwksUri`, plus these. */
const LOGTO = {
  rules: {
    /** The tenant endpoint, e.g. `https://your-tenant.logto.app` (no `/oidc`). Required. */
    endpoint: required(logtoEndpoint),
    /** Custom domains: an array of host names or http(s) origins. Default: none. */
    customDomains: withDefault(
      list(isCustomDomain, 'host names or http(s) origins'),
      [] as readonly string[],
    ),
    ...PASSED_TO_VERIFIER,
  },
  path: 'options',
  prefix: '',
  noun: 'a logto() option',
  hints: {
    ...ROUTE_HINTS,
    issuer:
      'logto() derives the issuer from `endpoint` (`<endpoint>/oidc`, plus one per custom domain); call createVerifier() without logto() for another issuer',
    jwksUri: 'logto() derives the JWKS URL from `endpoint` (`<endpoint>/oidc/jwks`)',
  },
};

const VERIFIER_HINT = 'it is a createVerifier() option, set once per verifier';

const scopeList = list(isScopeToken, 'scope tokens (printable ASCII, no space, `"` or `\\`)');
const claimValues = list(isNonEmptyString, 'claim values (strings)', 1);

/** A route's requirements: `verifier.guard()`, `verify()`, `authenticate()`, the adapters. */
const REQUIREMENTS = {
  rules: {
    /** An array of RFC 6749 scope tokens, all required (or any one, with `any`). Default: none. */
    scopes: optional(scopeList),
    /** Any one of `scopes` is enough. Default: false. */
    any: withDefault(boolean, false),
    /** Only machine-to-machine tokens. Default: false. */
    machine: withDefault(boolean, false),
    /**
     * The organization the token must be for: a non-empty string where a route is declared; per
     * call (`verify`, `authenticate`), anything else matches no token. Default: none.
     */
    organization: optional(string),
    /** Also accept organization tokens of any organization. Default: false. */
    anyOrganization: withDefault(boolean, false),
    /** `{ claim: value }`, each a string, number or boolean, compared with `===`. Default: none. */
    claimEquals: optional(record(claimValue, true)),
    /** `{ claim: ['value', ...] }`: each value must be in the claim. Default: none. */
    claimIncludes: optional(record(claimValues, true)),
    /** `{ name: (auth) => boolean | Promise<boolean> }`. Default: none. */
    checks: optional(record(func<(auth: never) => unknown>())),
    /** A request without credentials proceeds anonymously. Default: false. */
    optional: withDefault(boolean, false),
    /** DPoP on this route. Default: the verifier's `dpop.mode`. */
    dpop: optional(dpopMode),
  } satisfies RulesFor<Requirements>,
  path: 'requirements',
  prefix: '',
  noun: 'a route requirement',
  hints: {
    ...Object.fromEntries(Object.keys(VERIFIER.rules).map((key) => [key, VERIFIER_HINT])),
    endpoint: 'it is a logto() option',
    customDomains: 'it is a logto() option',
  },
};

/**
 * A requirement value as `verify`, `authenticate` and a guard's second argument are given it: it
 * may come from the request (a header, a query parameter: absent, repeated, blank, with a space).
 * One that is not a valid value becomes {@link UNMATCHABLE}: it matches no token (403), as the
 * request's `organization` does; never a TypeError (a 500 for anyone, token or not), and never a
 * rule dropped. The shape is still checked: names, and `scopes` and `claimIncludes` lists being
 * arrays.
 */
const fromRequest =
  <T>(item: Item<T>) =>
  (value: unknown): T =>
    item(value) ? value : (UNMATCHABLE as T);
/**
 * An array (its shape checked as a route's is: a TypeError otherwise), each item read by index as
 * {@link list} reads it (not through an iterator, which may yield fewer), mapped by `item`.
 */
function listFromRequest(
  item: Item<string>,
  strict: Check<readonly string[]>,
  orNone = false,
): Check<readonly string[]> {
  const read = fromRequest(item);
  return (value, path) => {
    if (!Array.isArray(value)) return strict(value, path);
    const items: string[] = [];
    for (let i = 0; i < value.length; i++) items.push(read(value[i]));
    // An empty list of values a claim must include is a rule no claim meets (a route's is refused).
    if (orNone && items.length === 0) items.push(UNMATCHABLE);
    return Object.freeze(items);
  };
}

/** Per call: {@link REQUIREMENTS}, with its values as {@link fromRequest} reads them. */
export const REQUEST_REQUIREMENTS = {
  ...REQUIREMENTS,
  rules: {
    ...REQUIREMENTS.rules,
    scopes: optional(listFromRequest(isScopeToken, scopeList)),
    claimEquals: optional(record(fromRequest(isClaimValue), true)),
    claimIncludes: optional(record(listFromRequest(isNonEmptyString, claimValues, true), true)),
  } satisfies RulesFor<Requirements>,
} satisfies Level<Rules>;

/** The one table: every level's rules, defaults and hints. */
export const OPTION_RULES = Object.freeze({
  verifier: VERIFIER,
  keys: KEYS,
  cache: CACHE,
  resourceMetadata: RESOURCE_METADATA,
  requirements: REQUIREMENTS,
  logto: LOGTO,
  dpop: DPOP,
  dpopNonce: DPOP_NONCE,
}) satisfies Readonly<Record<string, Level<Rules>>>;
