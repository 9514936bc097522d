/**
 * What a DPoP request says about itself: its one `DPoP` header, its method and target, and the
 * URL comparisons of RFC 9449 §4.3 step 9. Where those come from is the adapter's business (the
 * kit passes them); what they must be is the verifier's.
 */
import { isHeaderName, mayBeCut, trimOws } from './request.ts';
import type { HeadersGetter, HeaderValue, RequestLike, RequestTarget } from './types.ts';

/**
 * `htu` without query and fragment, normalised as a URL (RFC 9449 §4.3: RFC 3986 §6.2.2 and
 * §6.2.3 normalisation): `undefined` for anything but an absolute http(s) URL.
 */
export function normalizeHtu(htu: string): string | undefined {
  if (!HTU_SHAPE.test(htu) || !URL.canParse(htu)) return undefined;
  const url = new URL(htu);
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.username || url.password) {
    return undefined;
  }
  // The host as written, but for case and a default port (RFC 3986 §6.2.2.1, §6.2.3), as for a
  // configured origin: one the parser had to rewrite (`%2E` or `0x7f.1` in it) is no URI's.
  // The common case first: the authority as the parser writes it, up to case.
  const authority = htu.indexOf('//') + 2;
  const end = htu.slice(authority).search(/[/?#]/);
  const written = end < 0 ? htu : htu.slice(0, authority + end);
  if (written.slice(authority).toLowerCase() !== url.host && originOf(written) !== url.origin) {
    return undefined;
  }
  const path = normalizeEscapes(url.pathname);
  return path === undefined ? undefined : `${url.origin}${path}`;
}

/**
 * `http(s)://` and printable ASCII, with no `\` before a query: what a client's URL serialiser
 * writes. The URL parser takes more and rewrites it (drops surrounding spaces and any tab or line
 * break, reads `\` as `/`, finds a host in `https:host` or `https:///host`, maps a full-width or
 * other Unicode host to ASCII): an `htu` that only parsing turns into the request's URL is refused.
 */
const HTU_SHAPE = /^https?:\/\/[\x21\x22\x24-\x3e\x40-\x5b\x5d-\x7e]*(?:[?#][\x21-\x7e]*)?$/i;

/**
 * RFC 3986 §6.2.2.1 and §6.2.2.2, which the URL parser leaves alone: an escaped unreserved
 * character (`%7E`, `%41`) is that character, and the hex digits of the other escapes are upper
 * case. So `/%7Euser` and `/~user`, `/a%2fb` and `/a%2Fb` are one path; `%2F` stays escaped.
 * A `%` that is not an escape (not followed by two hex digits) is no URI path at all:
 * `undefined`, or it would join what is decoded after it into a new escape (`%2%46` → `%2F`).
 */
function normalizeEscapes(path: string): string | undefined {
  if (!path.includes('%')) return path;
  if (STRAY_PERCENT.test(path)) return undefined;
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_escape, hex: string) => {
    const code = Number.parseInt(hex, 16);
    return isUnreserved(code) ? String.fromCharCode(code) : `%${hex.toUpperCase()}`;
  });
}

const STRAY_PERCENT = /%(?![0-9A-Fa-f]{2})/;

/** ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3). */
const isUnreserved = (code: number): boolean =>
  (code >= 0x41 && code <= 0x5a) ||
  (code >= 0x61 && code <= 0x7a) ||
  (code >= 0x30 && code <= 0x39) ||
  code === 0x2d ||
  code === 0x2e ||
  code === 0x5f ||
  code === 0x7e;

/** The normalised path of a request target; the origin of an absolute one is ignored. */
export function pathOf(url: string | undefined): string | undefined {
  if (typeof url !== 'string' || url === '') return undefined;
  try {
    // An origin-form target is appended, never resolved: `//evil/x` stays a path.
    const parsed = url.startsWith('/') ? new URL(`http://h${url}`) : new URL(url);
    // A target that parsing rewrites (dot segments, `%2e%2e`, `\`, bytes it escapes) is one the
    // router may read otherwise: `/admin/../products` must not pass a proof for `/products`.
    const raw = (url.startsWith('/') ? url : url.replace(/^[^:/?#]+:\/\/[^/?#]*/, '')).split(
      /[?#]/,
      1,
    )[0];
    return raw === parsed.pathname ? normalizeEscapes(parsed.pathname) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The origin of `scheme://host[:port]` when `value` is nothing more (no path, query, fragment or
 * credentials), as `URL.origin` spells it: a default port dropped (`:443` on https), the host
 * lower-cased, an IPv6 address in its one spelling. Else `undefined`.
 */
export function originOf(value: string): string | undefined {
  const start = value.indexOf('//');
  if (start < 0) return undefined;
  const authority = value.slice(start + 2);
  const match = AUTHORITY.exec(authority);
  if (match === null || !URL.canParse(value)) return undefined;
  const url = new URL(value);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') return undefined;
  // The host as written, up to ASCII case: the parser's other rewrites (Unicode mapping, IPv4
  // shorthand such as `0x7f.1`) would make another name this origin. An IPv6 literal is
  // compared as parsed: its spellings are one address.
  const [, host = '', ipv6] = match;
  return ipv6 !== undefined || host.toLowerCase() === url.hostname ? url.origin : undefined;
}

/**
 * `host[:port]` in RFC 3986's ASCII characters (a reg-name without escapes, or a bracketed IPv6
 * literal): group 1 the host, group 2 set for an IPv6 literal.
 */
const AUTHORITY = /^(?:([A-Za-z0-9._~!$&'()*+,;=-]+)|(\[[0-9A-Fa-f:.]+\]))(?::[0-9]*)?$/;

/** `method` and `url` of a node `IncomingMessage` or a Web `Request`. */
export function targetOf(request: RequestLike): RequestTarget {
  const { method, url } = request as { method?: unknown; url?: unknown };
  return {
    method: typeof method === 'string' ? method : undefined,
    url: typeof url === 'string' ? url : undefined,
  };
}

export const MANY = Symbol('many');

/**
 * One header's single value, `undefined` when absent (or blank), {@link MANY} when it appears
 * twice (two fields, or one joined with a comma, which no compact JWS or host contains).
 */
export function readOneHeader(
  request: RequestLike,
  name: string,
): string | undefined | typeof MANY {
  let value: HeaderValue;
  const raw = request.rawHeaders;
  if (Array.isArray(raw)) {
    // Fields node may have dropped could hold a second one.
    if (mayBeCut(request, raw)) return MANY;
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i];
      if (typeof key === 'string' && isHeaderName(key, name)) {
        if (value !== undefined) return MANY;
        value = raw[i + 1];
      }
    }
  }
  if (value === undefined && request.headers != null) {
    const headers = request.headers;
    if (typeof (headers as HeadersGetter).get === 'function') {
      value = (headers as HeadersGetter).get(name);
    } else {
      for (const key of Object.keys(headers)) {
        if (!isHeaderName(key, name)) continue;
        if (value !== undefined) return MANY;
        value = (headers as Readonly<Record<string, HeaderValue>>)[key];
      }
    }
  }
  if (Array.isArray(value)) {
    if (value.length > 1) return MANY;
    value = value[0];
  }
  if (typeof value !== 'string') return undefined;
  const trimmed = trimOws(value);
  if (trimmed === '') return undefined;
  return trimmed.includes(',') ? MANY : trimmed;
}

/**
 * The host a request names, for `trustHost`: a node request's absolute-form target's; else its
 * `Host` field; over HTTP/2, where a client sends `:authority` instead (RFC 9113 §8.3.1), that
 * pseudo-header as node lists it; else the host of an absolute request URL (a Web `Request`'s,
 * built from either). `undefined` when a field is repeated, or `Host` and `:authority` disagree.
 */
export function hostOf(request: RequestLike): string | undefined {
  const { url } = targetOf(request);
  const absolute = url !== undefined && /^https?:\/\//i.test(url) && URL.canParse(url);
  const web =
    !Array.isArray(request.rawHeaders) &&
    typeof (request.headers as HeadersGetter)?.get === 'function';
  // A node request with an absolute-form target names its host there, whatever `Host` says
  // (RFC 9112 §3.2.2). A Web `Request`'s URL is always absolute: its fields are read first.
  if (absolute && !web) return new URL(url).host || undefined;
  const host = readOneHeader(request, 'host');
  // A Web `Headers` refuses the name `:authority` (it throws): there the URL already holds it.
  const authority = web ? undefined : readOneHeader(request, ':authority');
  if (host === MANY || authority === MANY) return undefined;
  if (host !== undefined && authority !== undefined) {
    return host.toLowerCase() === authority.toLowerCase() ? host : undefined;
  }
  const named = host ?? authority;
  if (named !== undefined) return named;
  return absolute ? new URL(url).host || undefined : undefined;
}
