/**
 * The shared types at the bottom of the import graph: every module may import them, this module
 * imports no other module of resource-guard (only jose's types).
 */
import type { JWTHeaderParameters, JWTPayload } from 'jose';

/** A value, or a promise of it: the answer of a step that is synchronous when it can be. */
export type Awaitable<T> = T | Promise<T>;

/** The claims of an access token (RFC 9068 §2.2), as Logto issues them. */
export interface AccessTokenClaims extends JWTPayload {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string | string[];
  readonly exp: number;
  readonly iat?: number;
  readonly jti?: string;
  readonly client_id?: string;
  /** Space-delimited scopes; absent when none were granted. */
  readonly scope?: string;
  readonly organization_id?: string;
  /**
   * RFC 7800 confirmation: `jkt` for a DPoP-bound token (RFC 9449 §6.1), the thumbprint of the key
   * whose proof must come with it. A token with `cnf` is accepted only with that proof.
   */
  readonly cnf?: { readonly jkt?: string; readonly [member: string]: unknown };
}

/**
 * Your own claims, declared once for every `auth` object (`req.auth`, `ctx.state.auth`,
 * `request.auth`, Nest's `@Auth()`, Hono's `c.get('auth')`, `verify()`'s result). Empty by
 * default; extend it by declaration merging. The claims are not checked against it (say so with
 * `requiredClaims`, or check them in your handler): it types what your issuer puts in.
 *
 * @example
 * ```ts
 * declare module 'resource-guard' {
 *   interface CustomClaims {
 *     readonly tenant_id?: string;
 *     readonly roles?: readonly string[];
 *   }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface CustomClaims {}

/**
 * A verified access token. Deeply frozen: the same object answers every request that presents the
 * same token, so nothing a handler does can change what the next request sees. `token` is not
 * enumerable, so logging or serialising the object does not print it.
 */
export interface AuthInfo<Claims extends object = CustomClaims> {
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

/** What a route needs from a verified token. Checked on every request, cached token or not. */
export interface Requirements {
  /** Scopes the token must carry, compared exactly (never by substring). Default: none. */
  readonly scopes?: readonly string[];
  /**
   * `true`: any one of `scopes` is enough (an empty `scopes` then admits no token). Default:
   * `false` (all of them).
   */
  readonly any?: boolean;
  /** `true`: only machine-to-machine tokens (`sub === client_id`). Default: `false`. */
  readonly machine?: boolean;
  /**
   * The organization this request is about (from a route parameter or header: the adapters'
   * `organization` option). The token must be for it: a Logto organization token
   * (`aud = urn:logto:organization:<id>`, with the verifier's `organizations: true`), or a token
   * for an organization-level API resource whose `organization_id` equals it. An empty
   * organization matches no token; so does, given per call (`verify`, `authenticate`), one that
   * is there but not a string (`undefined` from a missing header, an array: see
   * {@link RequestRequirements}). Default: none.
   */
  readonly organization?: string;
  /**
   * `true`: this route, which names no organization, also accepts organization-scoped tokens
   * (an `organization_id` claim, or an organization audience) of ANY organization; the handler
   * must then scope its data by `auth.organizationId`. Default: `false` — such tokens are refused
   * on routes that name no organization (their scopes come from a role in one organization).
   */
  readonly anyOrganization?: boolean;
  /**
   * Claims that must equal a value, compared with `===`: `{ tenant_id: 'acme', email_verified:
   * true }`. A string, number or boolean each. Refused as `claim_mismatch` (403). Default: none.
   * Per call (`verify`, `authenticate`), a value that is not one matches no token (403).
   */
  readonly claimEquals?: Readonly<Record<string, string | number | boolean>>;
  /**
   * Values a claim must include, each exactly: `{ roles: ['admin'] }`. The claim is an array of
   * strings or a space-separated string. Refused as `claim_mismatch` (403). Default: none.
   */
  readonly claimIncludes?: Readonly<Record<string, readonly string[]>>;
  /**
   * Your own rules, by name: each returns (or resolves to) `true` to allow the request. A rule that
   * says no is refused as `check_failed` (403), its name in the rejection's `details.check`; a rule
   * that throws is your bug and reaches the framework's error handling. Checked on every request,
   * after the other requirements. Default: none.
   *
   * @example
   * ```ts
   * { checks: { 'paid plan': (auth) => auth.claims.plan === 'paid' } }
   * ```
   */
  readonly checks?: Readonly<Record<string, (auth: AuthInfo) => boolean | Promise<boolean>>>;
  /**
   * `true`: a request without credentials proceeds anonymously (no `auth`). A request WITH a token
   * is verified as always: a bad token is refused, never downgraded to anonymous. Not for
   * `verify(token)`. Default: `false`.
   */
  readonly optional?: boolean;
  /**
   * DPoP (RFC 9449) on this route: `'disabled'`, `'allowed'` (Bearer or DPoP) or `'required'`
   * (DPoP only). Needs the verifier's `dpop` option. Default: the verifier's `dpop.mode`.
   */
  readonly dpop?: 'disabled' | 'allowed' | 'required';
}

/** Requirements that let a request without credentials through ({@link Requirements.optional}). */
export type OptionalRequirements = Requirements & { readonly optional: true };

/**
 * {@link Requirements} given per call (`verify`, `authenticate`), whose values may come from the
 * request: there `organization` may be `undefined` (a missing header), and then matches no token
 * (or, beside `anyOrganization: true`, leaves any organization). On a route (`guard`) it may not:
 * there `organization: undefined` would be no organization at all (a route meant for one whose
 * value went missing would be a global route), so it is a `TypeError` where the route is declared.
 */
export interface RequestRequirements extends Omit<Requirements, 'organization'> {
  readonly organization?: string | undefined;
}

/** A header value as the common request shapes hold it. */
export type HeaderValue = string | readonly string[] | number | undefined | null;

/** A Web `Headers` object, or anything with the same `get`. */
export interface HeadersGetter {
  get(name: string): string | null;
}

/**
 * Anything with headers: a node `IncomingMessage`, a Web `Request`, an Express/Koa/Fastify
 * request, or a plain `{ headers: { authorization: 'Bearer ...' } }`.
 */
export interface RequestLike {
  readonly headers: HeadersGetter | Readonly<Record<string, HeaderValue>>;
  /** node's raw header list, when present, lets a duplicated `Authorization` header be caught. */
  readonly rawHeaders?: readonly string[];
  /** The HTTP method (`GET`), for DPoP's `htm`. A node `IncomingMessage` and a Web `Request` have it. */
  readonly method?: string | undefined;
  /**
   * The request target (`/products?x=1`, or a Web `Request`'s absolute URL, whose origin is
   * ignored: it comes from the verifier's `dpop.origin`), for DPoP's `htu`.
   */
  readonly url?: string | undefined;
}

/** What only the request knows: the organization it is about (a route parameter, a header). */
export interface RequestContext {
  readonly organization?: string | undefined;
}

/**
 * Verifies a request and resolves its {@link AuthInfo} (or `undefined` for an anonymous request to
 * an optional route); rejects with an `AuthError`. (Adapters that can stay synchronous for a
 * repeat token use `resource-guard/kit` instead.)
 */
export interface Guard<Anonymous extends undefined = never> {
  <Claims extends object = CustomClaims>(
    request: RequestLike,
    context?: RequestContext,
  ): Promise<AuthInfo<Claims> | Anonymous>;
}

/**
 * The guard's check as adapters want it: the {@link AuthInfo} itself when it is known at once (a
 * repeat token, a small RSA key), a promise otherwise; throws the `AuthError` synchronously when
 * the rejection is known at once. Internal: reached through `resource-guard/kit`.
 */
export type Attempt = (
  request: RequestLike,
  context?: RequestContext,
  target?: RequestTarget,
) => Awaitable<AuthInfo | undefined>;

/**
 * A request's method and target (path and query) as the framework routed it (Express's
 * `originalUrl`, not a mounted router's `url`), for DPoP's `htm` and `htu`.
 */
export interface RequestTarget {
  readonly method: string | undefined;
  readonly url: string | undefined;
}

/** Verifies access tokens. Build one per API at start-up and share it between routes. */
export interface Verifier {
  /** Verifies a raw token against the configuration and the route's requirements. */
  verify<Claims extends object = CustomClaims>(
    token: string,
    requirements?: RequestRequirements,
  ): Promise<AuthInfo<Claims>>;
  /**
   * Reads the token (`Authorization: Bearer`, or the `cookie` / `getToken` sources when set) from
   * anything with headers, then verifies it. With the `dpop` option, `Authorization: DPoP` and its
   * proof too, checked against the request's `method` and `url`.
   */
  authenticate<Claims extends object = CustomClaims>(
    request: RequestLike,
    requirements: RequestRequirements & { readonly optional: true },
  ): Promise<AuthInfo<Claims> | undefined>;
  authenticate<Claims extends object = CustomClaims>(
    request: RequestLike,
    requirements?: RequestRequirements & { readonly optional?: false },
  ): Promise<AuthInfo<Claims>>;
  /** Requirements whose `optional` is only known at run time: anonymous is a possible answer. */
  authenticate<Claims extends object = CustomClaims>(
    request: RequestLike,
    requirements?: RequestRequirements,
  ): Promise<AuthInfo<Claims> | undefined>;
  /** `authenticate` with requirements checked once, up front: the building block of adapters. */
  guard(requirements: OptionalRequirements): Guard<undefined>;
  guard(requirements?: Requirements & { readonly optional?: false }): Guard;
  guard(requirements?: Requirements): Guard<undefined>;
  /** The RFC 9728 metadata to serve, when the `resourceMetadata` option is set. */
  readonly resourceMetadata: ResourceMetadata | undefined;
  /**
   * With `dpop.nonce`: the server nonce to send as a `DPoP-Nonce` header with the successful answer
   * to `request` (RFC 9449 §9), when its proof carried the previous, soon expired, one; else
   * `undefined`. The adapters send it; call it after `authenticate()` resolves when you answer
   * yourself.
   */
  dpopNonce(request: RequestLike): string | undefined;
  /**
   * The state of each issuer's keys, for a readiness probe: synchronous, never waits on the
   * network. Where a set is empty, unavailable or stale (and not backing off), it also starts a
   * refresh in the background (not in `requestScoped` mode), so a probe that keeps asking sees the
   * keys come back without any token traffic.
   */
  health(): readonly KeyHealth[];
  /**
   * Fetches every issuer's keys now, so the first request does not pay for it. Resolves with
   * {@link health}; rejects with a `WarmUpError` naming each issuer whose keys could not be had,
   * its URL and the root cause (`ECONNREFUSED`, `HTTP 404`, `timeout`, ...).
   */
  warm(): Promise<readonly KeyHealth[]>;
}

/**
 * A key set's state. `empty`: nothing fetched yet. `fresh`: younger than `keys.maxAge`. `stale`:
 * older, serving the last good keys (at most `keys.maxStale` past `maxAge`) while refreshes are
 * retried. `unavailable`: no keys to verify with (the first fetch failed, or stale too long).
 */
export type KeyState = 'empty' | 'fresh' | 'stale' | 'unavailable';

/** One issuer's keys, as {@link Verifier.health} reports them. */
export interface KeyHealth {
  readonly issuer: string;
  readonly state: KeyState;
  /** Seconds since the keys were fetched; `null` before the first success. */
  readonly ageSeconds: number | null;
  /** The last failed fetch since the last success: root cause and URL. `null` when none. */
  readonly lastError: string | null;
  /** Seconds until the next fetch may be tried, while backing off; `null` otherwise. */
  readonly retryInSeconds: number | null;
  /** The JWKS URL last fetched (or the static set's name); `null` before the first fetch. */
  readonly jwksUri: string | null;
  /** How many usable keys the set holds. */
  readonly keys: number;
}

/** RFC 9728 protected resource metadata: the document and where it lives. */
export interface ResourceMetadata {
  /** Absolute URL, as announced in `resource_metadata="..."` on every challenge. */
  readonly url: string;
  /** The path to serve it at: `/.well-known/oauth-protected-resource[/<resource path>]`. */
  readonly path: string;
  /** The JSON document (RFC 9728 §2). */
  readonly document: Readonly<Record<string, unknown>>;
}
