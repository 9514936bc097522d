import { Rejection } from './errors.ts';

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
}

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
  let header = Array.isArray(raw) ? readRawAuthorization(raw) : undefined;
  if (header === undefined) {
    if (request.headers == null) throw new TypeError('authenticate() needs a request with headers');
    header = readAuthorization(request.headers);
  }
  if (header === undefined) throw new Rejection('missing_token');

  const value = header.trim();
  const space = value.indexOf(' ');
  const scheme = space === -1 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') throw new Rejection('missing_token');

  const token = space === -1 ? '' : value.slice(space + 1).trimStart();
  if (token.length > maxLength) {
    throw new Rejection('token_too_large', { length: token.length, maxLength });
  }
  return token;
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
    const record = headers as Readonly<Record<string, HeaderValue>>;
    value = record.authorization;
    if (value === undefined) {
      const key = Object.keys(record).find((name) => name.toLowerCase() === 'authorization');
      if (key !== undefined) value = record[key];
    }
  }
  if (Array.isArray(value)) {
    if (value.length > 1) throw new Rejection('multiple_credentials');
    value = value[0];
  }
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  return value;
}

function readRawAuthorization(rawHeaders: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (typeof name === 'string' && name.length === 13 && name.toLowerCase() === 'authorization') {
      if (value !== undefined) throw new Rejection('multiple_credentials');
      value = rawHeaders[i + 1];
    }
  }
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}
