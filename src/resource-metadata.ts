/** RFC 9728 protected resource metadata: what a client needs to find how to call this API. */
export interface ResourceMetadataOptions {
  /**
   * The resource identifier: the https URL of the API (RFC 9728 §1.2). The metadata is served at
   * `/.well-known/oauth-protected-resource` inserted between its host and path. Default: the first
   * audience.
   */
  readonly resource?: string;
  /** `resource_name`, for people. Default: none. */
  readonly resourceName?: string;
  /** `scopes_supported`. Default: none. */
  readonly scopesSupported?: readonly string[];
  /** `authorization_servers`: issuer identifiers. Default: the configured issuers. */
  readonly authorizationServers?: readonly string[];
  /** `resource_documentation`, a URL. Default: none. */
  readonly resourceDocumentation?: string;
}

/** The metadata document and where it lives. */
export interface ResourceMetadata {
  /** Absolute URL, as announced in `resource_metadata="..."` on every challenge. */
  readonly url: string;
  /** The path to serve it at: `/.well-known/oauth-protected-resource[/<resource path>]`. */
  readonly path: string;
  /** The JSON document (RFC 9728 §2). */
  readonly document: Readonly<Record<string, unknown>>;
}

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** Builds the metadata once, at start-up. Throws a `TypeError` naming a bad option. */
export function buildResourceMetadata(
  options: ResourceMetadataOptions,
  audiences: readonly string[],
  issuers: readonly string[],
): ResourceMetadata {
  const fail = (message: string): never => {
    throw new TypeError(`resource-guard: ${message}`);
  };
  const resource = options.resource ?? audiences[0];
  if (typeof resource !== 'string' || !URL.canParse(resource)) {
    fail('`resourceMetadata.resource` must be the API URL (RFC 9728 §1.2)');
  }
  const url = new URL(resource as string);
  if (url.search !== '' || url.hash !== '') {
    fail('`resourceMetadata.resource` must have no query or fragment');
  }
  const path = `${WELL_KNOWN}${url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')}`;
  const document: Record<string, unknown> = {
    resource,
    authorization_servers: [...(options.authorizationServers ?? issuers)],
    bearer_methods_supported: ['header'],
  };
  if (options.scopesSupported) document.scopes_supported = [...options.scopesSupported];
  if (options.resourceName !== undefined) document.resource_name = options.resourceName;
  if (options.resourceDocumentation !== undefined) {
    document.resource_documentation = options.resourceDocumentation;
  }
  return Object.freeze({ url: `${url.origin}${path}`, path, document: Object.freeze(document) });
}
