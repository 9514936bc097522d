/**
 * Every error of resource-guard, in one module: the client-facing {@link AuthError}, the internal
 * {@link Rejection} the verification steps throw, the {@link KeySourceError} of a failed key-set
 * fetch, and the {@link RejectionEvent} reported to `onRejected`.
 */
import { safeText } from './safe-text.ts';

/**
 * The OAuth 2.0 error code an {@link AuthError} presents to the client (RFC 6750 §3.1), plus
 * `missing_token` for a request without credentials (its challenge carries no error code) and
 * `temporarily_unavailable` for a key-set outage (503).
 */
export type AuthErrorCode =
  | 'missing_token'
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'organization_mismatch'
  | 'machine_required'
  | 'access_denied'
  | 'temporarily_unavailable'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce';

/**
 * The exact, machine-readable reason for a rejection. Clients never see it; it reaches
 * `onRejected` and {@link AuthError.reason}. The README's troubleshooting table is keyed by it.
 */
export type RejectionReason =
  | 'missing_token'
  | 'malformed_header'
  | 'multiple_credentials'
  | 'token_too_large'
  | 'opaque_token'
  | 'encrypted_token'
  | 'malformed_token'
  | 'typ_mismatch'
  | 'alg_not_allowed'
  | 'untrusted_key_header'
  | 'unsupported_crit'
  | 'issuer_mismatch'
  | 'audience_mismatch'
  | 'unknown_kid'
  | 'key_mismatch'
  | 'bad_signature'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'token_too_old'
  | 'missing_claim'
  | 'invalid_claim'
  | 'insufficient_scope'
  | 'organization_mismatch'
  | 'organization_token'
  | 'machine_required'
  | 'claim_mismatch'
  | 'check_failed'
  | 'revoked'
  | 'keys_unavailable'
  | 'revocation_unavailable'
  | 'check_unavailable'
  | 'crypto_unavailable'
  | 'dpop_required'
  | 'dpop_bound_token'
  | 'dpop_unbound_token'
  | 'cnf_unsupported'
  | 'dpop_key_mismatch'
  | 'dpop_proof_missing'
  | 'dpop_multiple_proofs'
  | 'dpop_proof_invalid'
  | 'dpop_proof_alg'
  | 'dpop_proof_signature'
  | 'dpop_htm_mismatch'
  | 'dpop_htu_mismatch'
  | 'dpop_proof_stale'
  | 'dpop_ath_mismatch'
  | 'dpop_replayed'
  | 'dpop_nonce_required'
  | 'dpop_replay_unavailable';

interface ReasonInfo {
  readonly code: AuthErrorCode;
  readonly status: 400 | 401 | 403 | 503;
  /** Short, fixed, safe for a header: printable ASCII without `"` or `\`. */
  readonly description: string;
}

const invalidToken = (description: string): ReasonInfo => ({
  code: 'invalid_token',
  status: 401,
  description,
});
const invalidProof = (description: string): ReasonInfo => ({
  code: 'invalid_dpop_proof',
  status: 401,
  description,
});

/** What each reason looks like to the client. Never dynamic: no claim values, no token text. */
export const REASONS: Readonly<Record<RejectionReason, ReasonInfo>> = Object.freeze({
  missing_token: {
    code: 'missing_token',
    status: 401,
    description: 'Authentication required: send an access token as Authorization: Bearer',
  },
  malformed_header: {
    code: 'invalid_request',
    status: 400,
    description: 'Malformed Authorization header: expected Bearer followed by one token',
  },
  multiple_credentials: {
    code: 'invalid_request',
    status: 400,
    description: 'More than one set of credentials in the request',
  },
  token_too_large: invalidToken('The access token is too large'),
  opaque_token: invalidToken('The access token is not a JWT'),
  encrypted_token: invalidToken('Encrypted access tokens are not supported'),
  malformed_token: invalidToken('The access token is malformed'),
  typ_mismatch: invalidToken('The token is not an access token (typ must be at+jwt)'),
  alg_not_allowed: invalidToken('The token signing algorithm is not allowed'),
  untrusted_key_header: invalidToken('The token names its own key, which is never trusted'),
  unsupported_crit: invalidToken('The token has an unsupported critical header'),
  issuer_mismatch: invalidToken('The token issuer is not trusted'),
  audience_mismatch: invalidToken('The token audience is not accepted'),
  unknown_kid: invalidToken('The token signing key is unknown'),
  key_mismatch: invalidToken('The token signing key does not fit its algorithm'),
  bad_signature: invalidToken('The token signature is invalid'),
  expired: invalidToken('The access token expired'),
  not_yet_valid: invalidToken('The access token is not valid yet'),
  issued_in_future: invalidToken('The access token was issued in the future'),
  token_too_old: invalidToken('The access token is too old'),
  missing_claim: invalidToken('The access token lacks a required claim'),
  invalid_claim: invalidToken('The access token has an invalid claim'),
  insufficient_scope: {
    code: 'insufficient_scope',
    status: 403,
    description: 'The access token lacks the required scope',
  },
  organization_mismatch: {
    code: 'organization_mismatch',
    status: 403,
    description: 'The access token is not for this organization',
  },
  organization_token: {
    code: 'organization_mismatch',
    status: 403,
    description: 'Organization-scoped access tokens are not accepted on this route',
  },
  machine_required: {
    code: 'machine_required',
    status: 403,
    description: 'Only machine-to-machine tokens are accepted here',
  },
  claim_mismatch: {
    code: 'access_denied',
    status: 403,
    description: 'The access token does not carry the claims this route requires',
  },
  check_failed: {
    code: 'access_denied',
    status: 403,
    description: 'The access token is not allowed on this route',
  },
  revoked: invalidToken('The access token was revoked'),
  revocation_unavailable: {
    code: 'temporarily_unavailable',
    status: 503,
    description: 'Whether the access token was revoked cannot be checked right now; retry later',
  },
  check_unavailable: {
    code: 'temporarily_unavailable',
    status: 503,
    description: 'The access token cannot be checked against this route right now; retry later',
  },
  crypto_unavailable: {
    code: 'temporarily_unavailable',
    status: 503,
    description: 'The access token cannot be verified on this server right now',
  },
  keys_unavailable: {
    code: 'temporarily_unavailable',
    status: 503,
    description: 'The signing keys cannot be obtained right now; retry later',
  },
  // RFC 9449 (DPoP)
  dpop_required: invalidToken('This resource requires a DPoP-bound access token and a DPoP proof'),
  dpop_bound_token: invalidToken('The access token is DPoP-bound: present it with the DPoP scheme'),
  dpop_unbound_token: invalidToken('The access token is not DPoP-bound: present it as Bearer'),
  cnf_unsupported: invalidToken('The access token is bound to a key in a way not supported here'),
  dpop_key_mismatch: invalidToken('The DPoP proof key is not the key the token is bound to'),
  dpop_proof_missing: invalidProof('A DPoP proof is required in the DPoP header'),
  dpop_multiple_proofs: {
    code: 'invalid_request',
    status: 400,
    description: 'More than one DPoP proof in the request',
  },
  dpop_proof_invalid: invalidProof('The DPoP proof is malformed'),
  dpop_proof_alg: invalidProof('The DPoP proof signing algorithm is not allowed'),
  dpop_proof_signature: invalidProof('The DPoP proof signature is invalid'),
  dpop_htm_mismatch: invalidProof('The DPoP proof is for another HTTP method'),
  dpop_htu_mismatch: invalidProof('The DPoP proof is for another URL'),
  dpop_proof_stale: invalidProof('The DPoP proof is too old or issued in the future'),
  dpop_ath_mismatch: invalidProof('The DPoP proof is for another access token'),
  dpop_replayed: invalidProof('The DPoP proof was already used'),
  dpop_nonce_required: {
    code: 'use_dpop_nonce',
    status: 401,
    description: 'Resend the request with a DPoP proof carrying the server nonce',
  },
  dpop_replay_unavailable: {
    code: 'temporarily_unavailable',
    status: 503,
    description: 'The DPoP proof cannot be checked for replay right now; retry later',
  },
});

/** Parameters of the `WWW-Authenticate: Bearer` challenge that come from the configuration. */
export interface ChallengeParams {
  /** `realm="..."` on every challenge. */
  readonly realm?: string | undefined;
  /** RFC 9728 `resource_metadata="..."` on every challenge. */
  readonly resourceMetadata?: string | undefined;
  /** RFC 9449 §7.1: where the route accepts DPoP, the `algs` of its `DPoP` challenge. */
  readonly dpopAlgs?: string | undefined;
  /** `false` where the route accepts DPoP only: no `Bearer` challenge. Default: `true`. */
  readonly bearer?: boolean | undefined;
}

export interface AuthErrorInit {
  /** Structured facts for operators (expected vs actual issuer, seconds expired, ...). */
  readonly details?: Readonly<Record<string, unknown>> | undefined;
  /** The underlying error (jose's, a fetch error, ...). Never shown to clients. */
  readonly cause?: unknown;
  /** With `insufficient_scope`: the scopes the request needed, for the challenge's `scope`. */
  readonly scopes?: readonly string[] | undefined;
  /** With `keys_unavailable`: seconds for `Retry-After`. */
  readonly retryAfter?: number | undefined;
  readonly challenge?: ChallengeParams | undefined;
  /** The scheme the request used: its error goes in that challenge. Default: `Bearer`. */
  readonly scheme?: 'Bearer' | 'DPoP' | undefined;
  /** RFC 9449 §9: a server nonce for the `DPoP-Nonce` header. */
  readonly nonce?: string | undefined;
}

/** JSON body that every adapter renders for an {@link AuthError}. */
export interface AuthErrorBody {
  readonly error: AuthErrorCode;
  readonly error_description: string;
}

/**
 * A rejected request, ready to render: `status`, `headers` (with `WWW-Authenticate`) and `body`.
 * Its message and body hold only a short fixed description, never the token or a claim value;
 * the exact reason is in `reason` and `details`.
 *
 * @example
 * ```ts
 * try {
 *   await verifier.authenticate(req, { scopes: ['read:products'] });
 * } catch (error) {
 *   if (error instanceof AuthError) {
 *     res.writeHead(error.status, { ...error.headers, 'content-type': 'application/json' });
 *     res.end(JSON.stringify(error.body));
 *   }
 * }
 * ```
 */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly status: 400 | 401 | 403 | 503;
  readonly code: AuthErrorCode;
  readonly reason: RejectionReason;
  readonly description: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly details: Readonly<Record<string, unknown>>;
  /**
   * For Koa's and http-errors' conventions: a 4xx description is safe to show (and Koa then does
   * not log the stack of every rejected request).
   */
  readonly expose: boolean;

  constructor(reason: RejectionReason, init: AuthErrorInit = {}) {
    const info = describedFor(REASONS[reason], reason, init);
    super(info.description, init.cause === undefined ? undefined : { cause: init.cause });
    this.reason = reason;
    this.code = info.code;
    this.status = info.status;
    this.description = info.description;
    this.details = Object.freeze({ ...init.details });
    this.headers = Object.freeze(buildHeaders(info, init));
    this.expose = info.status < 500;
    // A framework's default error page may print `stack` or inspect the error (Express outside
    // production does): neither may carry frames, details or the cause's text to a client. The
    // reason, details and cause stay on the object, and reach onRejected.
    this.stack = `AuthError: ${info.description} (${reason})`;
  }

  /** What `util.inspect` (and so a default error page or console) shows: no details, no cause. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AuthError ${this.status} ${this.reason}: ${this.description}`;
  }

  /** The same as `status`, for Fastify's and other frameworks' error handlers. */
  get statusCode(): number {
    return this.status;
  }

  /** The JSON body to send: `{ error, error_description }`. */
  get body(): AuthErrorBody {
    return { error: this.code, error_description: this.description };
  }

  /**
   * The answer as a Web `Response` (status, headers, JSON body). Frameworks that render an error
   * with a `getResponse()` (Hono's default error handler) answer it correctly without a handler.
   */
  getResponse(): Response {
    return new Response(JSON.stringify(this.body), {
      status: this.status,
      headers: { ...this.headers, 'content-type': 'application/json' },
    });
  }
}

/**
 * The two descriptions that name a scheme name the one the request used, or the only one the route
 * accepts: DPoP for a malformed `Authorization: DPoP` field, or a token missing on a DPoP-only route.
 */
const DPOP_WORDING: Partial<Record<RejectionReason, string>> = {
  missing_token: 'Authentication required: send an access token as Authorization: DPoP',
  malformed_header: 'Malformed Authorization header: expected DPoP followed by one token',
};

function describedFor(info: ReasonInfo, reason: RejectionReason, init: AuthErrorInit): ReasonInfo {
  const dpop = init.scheme === 'DPoP' || init.challenge?.bearer === false;
  const description = dpop ? DPOP_WORDING[reason] : undefined;
  return description === undefined ? info : { ...info, description };
}

/** The longest `scope` a challenge carries (RFC 6750 §3 makes it optional); longer is left out. */
const MAX_CHALLENGE_SCOPE = 1024;

function buildHeaders(info: ReasonInfo, init: AuthErrorInit): Record<string, string> {
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (info.status === 503) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(init.retryAfter ?? 30)));
    return headers;
  }
  const { realm, resourceMetadata, dpopAlgs, bearer } = init.challenge ?? {};
  // Values that would break the quoted header value are left out rather than sent.
  const safe = (value: string | undefined): value is string =>
    value !== undefined && isSafeQuotedValue(value);
  const error: string[] = [];
  if (info.code !== 'missing_token') {
    error.push(`error="${info.code}"`, `error_description="${info.description}"`);
  }
  // Left out when a scope is not a string (one given per call that no token can hold), and when
  // the list is long: per call it may come from the request, and a challenge as long as the
  // client's URL or body is a header a proxy with a one-page buffer answers with a 502.
  const scopes = init.scopes;
  const scope = scopes?.every((item) => typeof item === 'string') ? scopes.join(' ') : undefined;
  if (
    info.code === 'insufficient_scope' &&
    scope &&
    scope.length <= MAX_CHALLENGE_SCOPE &&
    safe(scope)
  ) {
    error.push(`scope="${scope}"`);
  }
  const challenge = (scheme: string, params: string[]) => {
    if (safe(realm)) params.unshift(`realm="${realm}"`);
    if (safe(resourceMetadata)) params.push(`resource_metadata="${resourceMetadata}"`);
    return params.length > 0 ? `${scheme} ${params.join(', ')}` : scheme;
  };
  if (dpopAlgs === undefined) {
    headers['www-authenticate'] = challenge('Bearer', error);
    return headers;
  }
  // RFC 9449 §7.1: the error goes in the challenge of the scheme the request used (DPoP for a
  // proof's error); where both schemes are accepted, the other challenge is offered bare.
  const onDpop =
    init.scheme === 'DPoP' ||
    bearer === false ||
    info.code === 'invalid_dpop_proof' ||
    info.code === 'use_dpop_nonce';
  const challenges: string[] = [];
  if (bearer !== false) challenges.push(challenge('Bearer', onDpop ? [] : error));
  challenges.push(challenge('DPoP', [...(onDpop ? error : []), `algs="${dpopAlgs}"`]));
  headers['www-authenticate'] = challenges.join(', ');
  if (init.nonce !== undefined) headers['dpop-nonce'] = init.nonce;
  return headers;
}

/** True for a value that can sit inside a quoted `WWW-Authenticate` parameter as is. */
export function isSafeQuotedValue(value: string): boolean {
  return /^[\x20\x21\x23-\x5B\x5D-\x7E]*$/.test(value);
}

/**
 * Internal: what the verification steps throw. The verifier turns it into an {@link AuthError}
 * with the configured challenge and reports it to `onRejected`.
 */
export class Rejection {
  readonly details: Readonly<Record<string, unknown>> | undefined;
  constructor(
    readonly reason: RejectionReason,
    details?: Readonly<Record<string, unknown>>,
    readonly cause?: unknown,
    readonly retryAfter?: number,
    /** RFC 9449 §9: the server nonce to hand the client (`use_dpop_nonce`). */
    readonly nonce?: string,
  ) {
    // Details often quote the token's own (attacker-chosen) values: bound them before they reach
    // a log hook.
    this.details =
      details === undefined ? undefined : (clip(details, 0) as Record<string, unknown>);
  }
}

const MAX_DETAIL_STRING = 200;
const MAX_DETAIL_ITEMS = 10;

function clip(value: unknown, depth: number): unknown {
  // Bounded, and safe to print: a kid or an iss may carry CR/LF, terminal escapes or bidi controls.
  if (typeof value === 'string') return safeText(value, MAX_DETAIL_STRING);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 2) return '[…]';
  if (Array.isArray(value)) {
    return value.slice(0, MAX_DETAIL_ITEMS).map((item) => clip(item, depth + 1));
  }
  const entries = Object.entries(value).slice(0, MAX_DETAIL_ITEMS);
  return Object.fromEntries(
    entries.map(([key, item]) => [clip(key, depth + 1), clip(item, depth + 1)]),
  );
}

/** Why fetching a key set or a discovery document failed. Reaches `onRejected` as the `cause`. */
export type KeySourceErrorCode =
  'timeout' | 'network' | 'http_status' | 'too_large' | 'invalid_json' | 'invalid_document';

/** A failed JWKS or discovery fetch (the `cause` of a `keys_unavailable` rejection). */
export class KeySourceError extends Error {
  override readonly name = 'KeySourceError';
  /** With `http_status`: the status the server answered. */
  readonly status: number | undefined;
  /** The URL as diagnostics show it (no query, no credentials: see {@link displayUrl}). */
  readonly url: string;
  constructor(
    readonly code: KeySourceErrorCode,
    message: string,
    url: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    // The error travels as `cause` to onRejected and AuthError: a log sink, where a query's
    // `api_key=` must not go.
    this.url = displayUrl(url);
    this.status = options?.status;
    URL_SECRETS.set(this, urlSecrets(url));
  }
}

/** What of a failed URL must not be shown (see {@link urlSecrets}), kept off the error itself. */
const URL_SECRETS = new WeakMap<KeySourceError, readonly string[]>();

/**
 * The parts of a URL that may be secret, as they could appear in an error's message: the query
 * whole, each of its values (as written and decoded) and the userinfo. Longest first; parts under
 * 4 characters hide nothing and would blank out every digit of a message.
 */
function urlSecrets(url: string): readonly string[] {
  const secrets = new Set<string>();
  const query = /\?([^#]*)/.exec(url)?.[1] ?? '';
  secrets.add(query);
  for (const pair of query.split('&')) {
    const value = pair.slice(pair.indexOf('=') + 1);
    secrets.add(value);
    secrets.add(decodeLoosely(value.replaceAll('+', ' ')));
  }
  const userinfo = /^[a-z][a-z0-9+.-]*:[\\/]*([^/?#]*)@/i.exec(url)?.[1];
  if (userinfo !== undefined) {
    for (const part of [userinfo, ...userinfo.split(':')]) {
      secrets.add(part);
      secrets.add(decodeLoosely(part));
    }
  }
  return [...secrets].filter((part) => part.length >= 4).sort((a, b) => b.length - a.length);
}

function decodeLoosely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A failed key-set fetch, summed up for operators: where, and the root cause. */
export interface KeyFailure {
  /** The URL that failed (JWKS or discovery), when known. */
  readonly url: string | undefined;
  /** `ECONNREFUSED`, `ENOTFOUND`, `HTTP 404`, `timeout`, or what was wrong with the document. */
  readonly error: string;
  /** The HTTP status, when the failure was one. */
  readonly status: number | undefined;
}

/**
 * The root cause of a failed fetch, as a developer can act on it: the system error code of a
 * network failure (found in the `cause` chain, where `fetch` hides it), the HTTP status, the
 * timeout, or the document's problem.
 */
export function describeKeyFailure(error: unknown): KeyFailure {
  const failure = describeRaw(error);
  return failure.url === undefined ? failure : { ...failure, url: displayUrl(failure.url) };
}

/**
 * A URL as diagnostics show it (health reports, events, metric attributes, rejection details): no
 * credentials, no query (an API key in a JWKS URL must not reach a public health page or a
 * metrics backend), no fragment.
 */
export function displayUrl(url: string): string {
  if (!URL.canParse(url)) {
    // Not a URL to the WHATWG parser, still no query or credentials: cut at `?`/`#`, drop `…@`.
    const head = /^[^?#]*/.exec(url)?.[0] ?? '';
    // Anything up to the last `@` may be userinfo (a `/` in a password, `https:\\u:p@…`).
    const shown = head.replace(/^((?:[a-z][a-z0-9+.-]*:)?[\\/]*)[^]*@/i, '$1').slice(0, 200);
    return url[head.length] === '?' ? `${shown}?…` : shown;
  }
  const parsed = new URL(url);
  // No host: `user:PASSWORD@host/…` read as a scheme `user:` and an opaque path.
  if (parsed.host === '') return `${parsed.protocol}…`;
  const query = parsed.search === '' ? '' : '?…';
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${query}`;
}

function describeRaw(error: unknown): KeyFailure {
  if (!(error instanceof KeySourceError)) {
    return {
      url: undefined,
      error: systemCode(error) ?? 'the key set could not be loaded',
      status: undefined,
    };
  }
  const { url, status } = error;
  switch (error.code) {
    case 'network':
      return {
        url,
        error: systemCode(error.cause) ?? innermostMessage(error.cause, URL_SECRETS.get(error)),
        status,
      };
    case 'http_status':
      return { url, error: `HTTP ${status ?? '?'}`, status };
    case 'timeout':
      return { url, error: `timeout (${error.message})`, status };
    default:
      return { url, error: error.message, status };
  }
}

/** The first system error code (`ECONNREFUSED`, `UND_ERR_...`) in an error's `cause` chain. */
function systemCode(error: unknown): string | undefined {
  let current = error;
  for (let depth = 0; depth < 6 && typeof current === 'object' && current !== null; depth++) {
    const { code } = current as { code?: unknown };
    if (
      typeof code === 'string' &&
      /^(E[A-Z0-9_]+|UND_ERR_[A-Z0-9_]+|ERR_[A-Z0-9_]+)$/.test(code)
    ) {
      return code;
    }
    // AggregateError (a host with several addresses, all refused): the first one's code.
    const errors = (current as { errors?: unknown }).errors;
    const next = Array.isArray(errors) && errors.length > 0 ? errors[0] : undefined;
    current = (current as { cause?: unknown }).cause ?? next;
  }
  return undefined;
}

/**
 * The message of the innermost error in a `cause` chain (`fetch failed` says nothing), without
 * what it may quote of the URL: a `fetch` of the user's may put the URL in its message
 * (node-fetch: `network timeout at: <url>`), and this text reaches health pages and metrics.
 * Every `scheme://…` in it is shown as {@link displayUrl} shows it, and the failed URL's query and
 * userinfo (`secrets`) are cut out wherever they appear, however the URL was written.
 */
function innermostMessage(error: unknown, secrets: readonly string[] = []): string {
  let message = 'network error';
  let current = error;
  for (let depth = 0; depth < 6 && typeof current === 'object' && current !== null; depth++) {
    const text = (current as { message?: unknown }).message;
    // Bounded before any matching: the text is the fetch's, or the server's it quotes.
    if (typeof text === 'string' && text.length > 0) message = text.slice(0, 1024);
    current = (current as { cause?: unknown }).cause;
  }
  let shown = message.replace(URL_IN_TEXT, displayUrl);
  for (const secret of secrets) shown = shown.replaceAll(secret, '…');
  return safeText(shown, 120);
}

/**
 * A URL inside free text: a scheme (at most 32 characters: no quadratic scan of a long run of
 * letters and dots), `//`, and everything up to a space, a quote or an angle bracket.
 */
const URL_IN_TEXT = /[a-z][a-z0-9+.-]{0,31}:\/\/[^\s"'<>`]+/gi;

/** Raised by `verifier.warm()`: the issuers whose keys could not be loaded, and why. */
export class WarmUpError extends Error {
  override readonly name = 'WarmUpError';
  constructor(
    /** One line per issuer that failed: `<issuer>: <root cause> fetching <url>`. */
    readonly failures: readonly string[],
  ) {
    super(`resource-guard: the signing keys could not be loaded.\n  ${failures.join('\n  ')}`);
  }
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

/**
 * Reports a rejection to the `onRejected` hook. A failing hook, synchronous or async, must not
 * change the answer or crash the process.
 */
export function reportRejection(
  onRejected: ((event: RejectionEvent) => unknown) | undefined,
  error: AuthError,
): void {
  if (onRejected === undefined) return;
  try {
    const result: unknown = onRejected({
      reason: error.reason,
      code: error.code,
      status: error.status,
      description: error.description,
      details: error.details,
      ...(error.cause === undefined ? {} : { cause: error.cause }),
    });
    // Any thenable, a promise of another realm (a vm context) included: a rejection left
    // unhandled would end the process.
    if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
      Promise.resolve(result).catch(() => undefined);
    }
  } catch {
    // ignored
  }
}
