import { Rejection } from './errors.ts';
import type { HeadersGetter, HeaderValue, RequestLike } from './types.ts';

export type { HeadersGetter, HeaderValue, RequestLike } from './types.ts';

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Reads the bearer token from the `Authorization` header (RFC 6750 §2.1). The token is never read
 * from the query string or the body. Throws a {@link Rejection}: `missing_token` when there are no
 * bearer credentials (no header, or another scheme), `multiple_credentials` for two headers,
 * `token_too_large` past `maxLength`. Its syntax is checked by {@link checkBearerSyntax}.
 */
export function extractBearerToken(request: RequestLike, maxLength: number): string {
  if (request === null || typeof request !== 'object') {
    throw new TypeError('authenticate() needs a request with headers');
  }
  // node's raw list first: it shows a repeated header, and reading it does not build the lazy
  // `headers` object of an IncomingMessage.
  // (A header set by code rather than sent, absent from the raw list, is still found below.)
  const raw = request.rawHeaders;
  let header: string | undefined;
  if (Array.isArray(raw)) {
    refuseCut(request, raw);
    header = readRawAuthorization(raw);
  }
  if (header === undefined) {
    if (request.headers == null) throw new TypeError('authenticate() needs a request with headers');
    header = readAuthorization(request.headers);
  }
  if (header === undefined) throw new Rejection('missing_token');
  return bearerToken(header, maxLength);
}

/**
 * The token of one `Authorization` field value, by the RFC 6750 §2.1 grammar exactly:
 * `"Bearer" 1*SP b64token`, the scheme case-insensitive (RFC 9110 §11.1). Only the field's own
 * optional whitespace (SP / HTAB around the whole value, RFC 9110 §5.5) is ignored; any other
 * whitespace (a TAB or NBSP after the scheme, an NBSP after the token) makes it malformed. A value
 * holding two credentials (two `Authorization` fields joined with a comma, as `Headers` does) is
 * `multiple_credentials`; another scheme alone is `missing_token` (no Bearer credentials).
 */
function bearerToken(field: string, maxLength: number): string {
  let start = 0;
  let end = field.length;
  while (start < end && isOws(field.charCodeAt(start))) start++;
  while (end > start && isOws(field.charCodeAt(end - 1))) end--;
  if (start === end) throw new Rejection('missing_token');
  if (field.includes(',', start) && hasTwoCredentials(field.slice(start, end))) {
    throw new Rejection('multiple_credentials');
  }
  refuseEmptyFirstElement(field, start);
  if (!isBearerScheme(field, start)) {
    // Another scheme (Basic, DPoP, ...): no Bearer credentials at all.
    throw new Rejection('missing_token');
  }
  let at = start + 6;
  if (at < end && field.charCodeAt(at) !== 0x20) {
    // `Bearer` then TAB, NBSP or any other non-space: a Bearer credential, malformed.
    if (!TCHAR.test(field[at] as string)) throw new Rejection('malformed_header');
    throw new Rejection('missing_token'); // a longer scheme name, such as `Bearerx`
  }
  while (at < end && field.charCodeAt(at) === 0x20) at++;
  const length = end - at;
  if (length > maxLength) throw new Rejection('token_too_large', { length, maxLength });
  return field.slice(at, end);
}

const isOws = (code: number) => code === 0x20 || code === 0x09;

/**
 * A field value that opens with an empty list element (`, Bearer x`, or `, ` alone) is how
 * `Headers` joins two `Authorization` fields, the first empty: `multiple_credentials`, as node's
 * raw list of the same two fields is, so the same bytes get the same answer everywhere (two blank
 * fields too). Never read as "no credentials", which an optional route would answer anonymously.
 */
function refuseEmptyFirstElement(field: string, start: number): void {
  if (field.charCodeAt(start) === 0x2c) throw new Rejection('multiple_credentials');
}

/** `name` (lower case) in any ASCII case: no Unicode case mapping (a KELVIN SIGN is no `k`). */
export function isHeaderName(key: string, name: string): boolean {
  if (key.length !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    let code = key.charCodeAt(i);
    if (code >= 0x41 && code <= 0x5a) code += 0x20;
    if (code !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** SP and HTAB trimmed from both ends (RFC 9110 §5.6.3 OWS), and nothing else: no NBSP. */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && isOws(value.charCodeAt(start))) start++;
  while (end > start && isOws(value.charCodeAt(end - 1))) end--;
  return value.slice(start, end);
}

/** `Bearer`, case-insensitive, at `at`: compared by character code (no lower-cased copy). */
function isBearerScheme(field: string, at: number): boolean {
  if (field.length - at < 6) return false;
  for (let i = 0; i < 6; i++) {
    // ASCII letters only: `| 0x20` lower-cases A-Z and leaves a-z as they are.
    if ((field.charCodeAt(at + i) | 0x20) !== BEARER.charCodeAt(i)) return false;
  }
  return true;
}
const BEARER = 'bearer';

// RFC 9110 §5.6.2 tchar: what an auth-scheme is made of.
const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;

/**
 * Whether a comma-separated field value holds more than one credential (RFC 9110 §11.6.2 list
 * syntax). Stops at the second: linear, and cheap on a huge hostile header.
 */
function hasTwoCredentials(value: string): boolean {
  let count = 0;
  for (let from = 0; from <= value.length;) {
    let end = value.indexOf(',', from);
    if (end === -1) end = value.length;
    let at = from;
    while (at < end && isOws(value.charCodeAt(at))) at++;
    if (startsCredential(value, at, end) && ++count > 1) return true;
    from = end + 1;
  }
  return false;
}

/** An auth-scheme (tchar+) at `at`, followed by a space or the element's end. */
function startsCredential(value: string, at: number, end: number): boolean {
  let i = at;
  while (i < end && TCHAR.test(value[i] as string)) i++;
  return i > at && (i === end || value.charCodeAt(i) === 0x20);
}

/**
 * The token's syntax (RFC 6750 §2.1 b64token): `malformed_header` otherwise. Skipped for a token
 * the verified-token cache already holds, which passed it.
 */
export function checkBearerSyntax(token: string): void {
  if (!B64TOKEN.test(token)) throw new Rejection('malformed_header');
}

function readAuthorization(headers: RequestLike['headers']): string | undefined {
  let value: HeaderValue;
  if (typeof (headers as HeadersGetter).get === 'function') {
    value = (headers as HeadersGetter).get('authorization');
  } else {
    value = readRecord(headers as Readonly<Record<string, HeaderValue>>);
  }
  if (Array.isArray(value)) {
    if (value.length > 1) throw new Rejection('multiple_credentials');
    value = value[0];
  }
  return typeof value === 'string' && !isBlank(value) ? value : undefined;
}

/**
 * The raw list entries node keeps by default: node 20 (and Deno's node:http) keep the first
 * `server.maxHeadersCount` fields of a request (1,000 by default: 2,000 entries) and drop the rest
 * without a word, where newer node answers 431. A second `Authorization`, `DPoP`, `Host` or
 * `Cookie` field after a thousand others would be unseen, so such a request is refused: whether
 * it holds one credential cannot be told. No client needs a thousand fields.
 */
const DEFAULT_MAX_ENTRIES = 2000;

/** Whether node may have dropped some of the request's fields (see {@link DEFAULT_MAX_ENTRIES}). */
export function mayBeCut(request: RequestLike, raw: readonly unknown[]): boolean {
  if (raw.length < 2) return false;
  let limit = DEFAULT_MAX_ENTRIES;
  try {
    // When the server sets it, node keeps `maxHeadersCount << 1` entries (a 32-bit integer; 0 or
    // less is no limit, taken as the default here). An HTTP/2 request's socket proxy may throw
    // once the stream is gone: the default then.
    const server = (request as { socket?: { server?: { maxHeadersCount?: unknown } } }).socket
      ?.server;
    const count = server?.maxHeadersCount;
    const entries = typeof count === 'number' ? count << 1 : 0;
    if (entries > 0) limit = Math.min(entries, limit);
  } catch {
    // the default
  }
  return raw.length >= limit;
}

function refuseCut(request: RequestLike, raw: readonly unknown[]): void {
  if (mayBeCut(request, raw)) {
    throw new Rejection('multiple_credentials', {
      problem: 'too many header fields: the server may have dropped some',
      fields: Math.floor(raw.length / 2),
    });
  }
}

function readRawAuthorization(rawHeaders: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (typeof name === 'string' && isAuthorization(name)) {
      if (value !== undefined) throw new Rejection('multiple_credentials');
      value = rawHeaders[i + 1];
    }
  }
  return typeof value === 'string' && !isBlank(value) ? value : undefined;
}

/** The first `Authorization` value of a request whose fields were found to be more than one. */
function firstAuthorization(request: RequestLike): HeaderValue {
  const raw = request.rawHeaders;
  if (Array.isArray(raw)) {
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i];
      if (typeof name === 'string' && isAuthorization(name)) return raw[i + 1];
    }
  }
  const headers = request.headers;
  if (headers == null || typeof (headers as HeadersGetter).get === 'function') return undefined;
  for (const name of Object.keys(headers)) {
    if (!isAuthorization(name)) continue;
    const value = (headers as Readonly<Record<string, HeaderValue>>)[name];
    return Array.isArray(value) ? (value[0] as HeaderValue) : value;
  }
  return undefined;
}

/** Whether a field value's scheme is `DPoP` (any case), after optional whitespace. */
function isDpopScheme(value: HeaderValue): boolean {
  if (typeof value !== 'string') return false;
  let start = 0;
  while (start < value.length && isOws(value.charCodeAt(start))) start++;
  if (!isHeaderName(value.slice(start, start + 4), 'dpop')) return false;
  const next = value[start + 4];
  return next === undefined || !TCHAR.test(next);
}

/** `authorization` in any case, compared by character code (no lower-cased copy). */
function isAuthorization(name: string): boolean {
  if (name.length !== 13) return false;
  for (let i = 0; i < 13; i++) {
    // `| 0x20` lower-cases A-Z; no other character becomes one of these letters by it.
    if ((name.charCodeAt(i) | 0x20) !== AUTHORIZATION.charCodeAt(i)) return false;
  }
  return true;
}
const AUTHORIZATION = 'authorization';

/** Empty, or only SP / HTAB. */
function isBlank(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (!isOws(value.charCodeAt(i))) return false;
  return true;
}

/**
 * `authorization` from a plain record, in any case. Two keys that differ only in case (say
 * `authorization` and `Authorization`) are two headers: `multiple_credentials`.
 */
function readRecord(record: Readonly<Record<string, HeaderValue>>): HeaderValue {
  let value: HeaderValue;
  let found = false;
  for (const name of Object.keys(record)) {
    if (!isAuthorization(name)) continue;
    if (found) throw new Rejection('multiple_credentials');
    found = true;
    value = record[name];
  }
  return value;
}

/** Where else a token may come from, when the verifier opts in. */
export interface TokenSources {
  readonly maxLength: number;
  /** A cookie name. */
  readonly cookie: string | undefined;
  /** The user's own extractor. */
  readonly getToken: ((request: RequestLike) => unknown) | undefined;
}

/**
 * The token from every source the verifier opted into: the `Authorization: Bearer` header, a
 * cookie, a custom extractor. Exactly one may offer a token: two are `multiple_credentials` (RFC
 * 6750 §2: one method per request), none is `missing_token`.
 */
export function extractToken(request: RequestLike, sources: TokenSources): string {
  let found: string | undefined;
  const offer = (token: string | undefined) => {
    if (token === undefined) return;
    if (found !== undefined) throw new Rejection('multiple_credentials');
    if (token.length > sources.maxLength) {
      throw new Rejection('token_too_large', {
        length: token.length,
        maxLength: sources.maxLength,
      });
    }
    found = token;
  };
  try {
    offer(extractBearerToken(request, sources.maxLength));
  } catch (error) {
    if (!(error instanceof Rejection && error.reason === 'missing_token')) throw error;
  }
  if (sources.cookie !== undefined) offer(readCookie(request, sources.cookie));
  if (sources.getToken !== undefined) {
    const token = sources.getToken(request);
    if (token !== undefined && token !== null && typeof token !== 'string') {
      throw new Rejection('malformed_header', { problem: 'getToken returned no string' });
    }
    offer(token === null || token === '' ? undefined : token);
  }
  if (found === undefined) throw new Rejection('missing_token');
  return found;
}

/** The value of cookie `name` (RFC 6265 §4.2 `Cookie: a=b; c=d`), once; twice is two tokens. */
function readCookie(request: RequestLike, name: string): string | undefined {
  const field = readHeader(request, 'cookie');
  if (field === undefined) return undefined;
  let value: string | undefined;
  for (const pair of field.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1 || trimOws(pair.slice(0, eq)) !== name) continue;
    if (value !== undefined) throw new Rejection('multiple_credentials');
    let raw = trimOws(pair.slice(eq + 1));
    if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) raw = raw.slice(1, -1);
    value = raw;
  }
  return value === '' ? undefined : value;
}

/** Every value of header `name` (lower case), joined with `; ` (as node joins cookies). */
function readHeader(request: RequestLike, name: string): string | undefined {
  const values: string[] = [];
  const raw = request.rawHeaders;
  if (Array.isArray(raw)) {
    refuseCut(request, raw);
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i];
      if (typeof key === 'string' && isHeaderName(key, name)) values.push(String(raw[i + 1]));
    }
  }
  if (values.length === 0 && request.headers != null) {
    const headers = request.headers;
    const found: HeaderValue[] = [];
    if (typeof (headers as HeadersGetter).get === 'function') {
      found.push((headers as HeadersGetter).get(name));
    } else {
      // A plain record: the name in any case, as for `Authorization`.
      for (const key of Object.keys(headers)) {
        if (isHeaderName(key, name)) found.push((headers as Record<string, HeaderValue>)[key]);
      }
    }
    for (const value of found) {
      if (Array.isArray(value)) values.push(...value.map(String));
      else if (typeof value === 'string') values.push(value);
    }
  }
  return values.length === 0 ? undefined : values.join('; ');
}

/**
 * The token of an `Authorization: DPoP <token>` field (RFC 9449 §7.1), by the same rules as
 * Bearer's (one field, the scheme case-insensitive, `1*SP token68`); `undefined` when there is no
 * `Authorization` field or it holds another scheme. Throws a {@link Rejection} like
 * {@link extractBearerToken}.
 */
export function extractDpopToken(request: RequestLike, maxLength: number): string | undefined {
  if (request === null || typeof request !== 'object') {
    throw new TypeError('authenticate() needs a request with headers');
  }
  const raw = request.rawHeaders;
  let field: string | undefined;
  try {
    if (Array.isArray(raw)) {
      refuseCut(request, raw);
      field = readRawAuthorization(raw);
    }
    if (field === undefined) {
      if (request.headers == null) {
        throw new TypeError('authenticate() needs a request with headers');
      }
      field = readAuthorization(request.headers);
    }
  } catch (error) {
    // Two fields: refused either way, in the challenge of the first one's scheme, as when they
    // arrive joined into one (a Web `Headers`): a DPoP challenge only when it is DPoP.
    const twoFields = error instanceof Rejection && error.reason === 'multiple_credentials';
    if (twoFields && !isDpopScheme(firstAuthorization(request))) return undefined;
    throw error;
  }
  if (field === undefined) return undefined;
  let start = 0;
  let end = field.length;
  while (start < end && isOws(field.charCodeAt(start))) start++;
  while (end > start && isOws(field.charCodeAt(end - 1))) end--;
  if (start === end) return undefined;
  refuseEmptyFirstElement(field, start);
  if (end - start < 4 || !isHeaderName(field.slice(start, start + 4), 'dpop')) return undefined;
  let at = start + 4;
  if (at < end && field.charCodeAt(at) !== 0x20) {
    if (TCHAR.test(field[at] as string)) return undefined; // a longer scheme name, `DPoPx`
    throw new Rejection('malformed_header');
  }
  if (field.includes(',', start) && hasTwoCredentials(field.slice(start, end))) {
    throw new Rejection('multiple_credentials');
  }
  while (at < end && field.charCodeAt(at) === 0x20) at++;
  const length = end - at;
  if (length > maxLength) throw new Rejection('token_too_large', { length, maxLength });
  const token = field.slice(at, end);
  if (!B64TOKEN.test(token)) throw new Rejection('malformed_header');
  return token;
}
