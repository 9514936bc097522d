import { KeySourceError } from './errors.ts';
import { fetchJson, isLoopback } from './fetch-json.ts';

export interface DiscoveryOptions {
  readonly timeout: number;
  readonly fetch: typeof globalThis.fetch;
  /** Concurrent callers share one request. `false` where a promise must not cross requests. */
  readonly share?: boolean;
}

const MAX_DISCOVERY_BYTES = 256 * 1024;

/**
 * The issuer's metadata URLs, in the order tried: OpenID Connect Discovery 1.0 §4 (appended to
 * the issuer), then RFC 8414 §3 (`/.well-known/oauth-authorization-server` inserted before the
 * issuer's path).
 */
export function discoveryUrls(issuer: string): URL[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    new URL(`${url.origin}${path}/.well-known/openid-configuration`),
    new URL(`${url.origin}/.well-known/oauth-authorization-server${path}`),
  ];
}

/**
 * A JWKS URL source that reads `jwks_uri` from the issuer's metadata for every JWKS fetch, as a
 * cold verifier does: an issuer that moves its keys is followed by the next fetch (a refresh, or
 * an unknown `kid`), and a stale copy left at the old URL is never read again. A failure is the
 * fetch's failure (the key set's back-off paces the retries, its last good keys serve within
 * `maxStale`, `health()` shows it). Concurrent calls share one request. The document's `issuer`
 * must equal the configured issuer exactly.
 */
export function discoverJwksUri(
  issuer: string,
  options: DiscoveryOptions,
): (request?: () => void) => Promise<URL> {
  // `request` (see KeySource) for the unshared reads only: a shared read serves several callers.
  if (options.share === false) return (request) => discover(issuer, options, request);
  let inflight: Promise<URL> | undefined;
  return () =>
    (inflight ??= discover(issuer, options).finally(() => {
      inflight = undefined;
    }));
}

async function discover(
  issuer: string,
  options: DiscoveryOptions,
  request?: () => void,
): Promise<URL> {
  const [openid, oauth] = discoveryUrls(issuer) as [URL, URL];
  let document: unknown;
  let url = openid;
  try {
    document = await fetchJson(openid, { ...options, maxBytes: MAX_DISCOVERY_BYTES });
  } catch (error) {
    // Only a document that is not there sends us to RFC 8414: an issuer that is down or busy
    // (5xx, 429, 408) is reported as it answered, and not asked a second URL it may not serve.
    if (!(error instanceof KeySourceError && error.code === 'http_status' && !unavailable(error))) {
      throw error;
    }
    url = oauth;
    request?.();
    document = await fetchJson(oauth, { ...options, maxBytes: MAX_DISCOVERY_BYTES });
  }
  const metadata = (document ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
  if (metadata.issuer !== issuer) {
    throw new KeySourceError(
      'invalid_document',
      'metadata issuer differs from the issuer',
      url.href,
    );
  }
  if (typeof metadata.jwks_uri !== 'string' || !URL.canParse(metadata.jwks_uri)) {
    throw new KeySourceError('invalid_document', 'metadata has no valid jwks_uri', url.href);
  }
  const jwksUri = new URL(metadata.jwks_uri);
  if (jwksUri.username !== '' || jwksUri.password !== '') {
    // As a configured jwksUri is: credentials in a URL end up in errors, health and logs.
    throw new KeySourceError('invalid_document', 'jwks_uri must not hold credentials', url.href);
  }
  const issuerProtocol = new URL(issuer).protocol;
  const plainAllowed = issuerProtocol === 'http:' || isLoopback(jwksUri);
  if (jwksUri.protocol !== 'https:' && !(jwksUri.protocol === 'http:' && plainAllowed)) {
    throw new KeySourceError('invalid_document', 'jwks_uri must use https', url.href);
  }
  return jwksUri;
}

/** An HTTP answer that says the server cannot answer now, not that the document is absent. */
function unavailable(error: KeySourceError): boolean {
  const status = error.status ?? 0;
  return status >= 500 || status === 429 || status === 408;
}
