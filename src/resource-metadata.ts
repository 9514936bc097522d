import { configError, hasQueryOrFragment } from './option-checks.ts';
import type { ResourceMetadata } from './types.ts';

export type { ResourceMetadata } from './types.ts';

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

/** The options once checked (see the rule table): every key present, `undefined` when unset. */
export type CheckedResourceMetadataOptions = {
  readonly [K in keyof ResourceMetadataOptions]-?: ResourceMetadataOptions[K] | undefined;
};

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * Builds the metadata once, at start-up, from checked options. Throws a `TypeError` naming
 * `resourceMetadata.resource` when the resource (by default the first audience) is no API URL.
 */
export function buildResourceMetadata(
  options: CheckedResourceMetadataOptions,
  audiences: readonly string[],
  issuers: readonly string[],
): ResourceMetadata {
  const resource = options.resource ?? (audiences[0] as string);
  const given = options.resource === undefined ? ' (default: the first audience)' : '';
  const url = URL.canParse(resource) ? new URL(resource) : undefined;
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    return configError('resourceMetadata.resource', `must be the API's http(s) URL${given}`);
  }
  if (hasQueryOrFragment(url)) {
    configError('resourceMetadata.resource', `must have no query or fragment${given}`);
  }
  // RFC 9728 §3.1: only the slash that is the whole path goes (`https://shopping.api/`); a path's
  // own trailing slash stays (`https://shopping.api/v1/` → `/.well-known/oauth-protected-resource/v1/`),
  // where a client that builds the URL from the resource, as §3.1 says, asks for it.
  const path = `${WELL_KNOWN}${url.pathname === '/' ? '' : url.pathname}`;
  const document: Record<string, unknown> = {
    resource,
    authorization_servers: [...(options.authorizationServers ?? issuers)],
    bearer_methods_supported: ['header'],
  };
  if (options.scopesSupported !== undefined) {
    document.scopes_supported = [...options.scopesSupported];
  }
  if (options.resourceName !== undefined) document.resource_name = options.resourceName;
  if (options.resourceDocumentation !== undefined) {
    document.resource_documentation = options.resourceDocumentation;
  }
  return Object.freeze({ url: `${url.origin}${path}`, path, document: Object.freeze(document) });
}

/** Headers for the RFC 9728 metadata document. */
export const RESOURCE_METADATA_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'application/json',
  'cache-control': 'public, max-age=3600',
});

/**
 * The one rule for serving the metadata: a `GET` or `HEAD` of exactly its path. `target` is the
 * path or the request target as received: its query is not considered, and an absolute-form
 * target (`http://host/path`, RFC 9112 §3.2.2) is its path, as the routers that parse it read it.
 */
export function isMetadataRequest(
  metadata: ResourceMetadata,
  method: string | undefined,
  target: string | undefined,
): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  return target === metadata.path || pathOfTarget(target) === metadata.path;
}

const ABSOLUTE_FORM = /^[a-z][a-z\d+.-]*:\/\/[^/?#]*/i;

function pathOfTarget(target: string | undefined): string | undefined {
  // Not a string: Koa's `ctx.path` is null for a target it cannot parse (`//a@b?#@`).
  if (typeof target !== 'string') return undefined;
  const origin = ABSOLUTE_FORM.exec(target);
  const rest = origin === null ? target : target.slice(origin[0].length);
  const path = rest.split('?', 1)[0] as string;
  return origin !== null && path === '' ? '/' : path;
}
