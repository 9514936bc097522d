import { Boom, isBoom, unauthorized } from '@hapi/boom';
import type { Payload } from '@hapi/boom';
import type { Plugin, Request, ServerAuthScheme } from '@hapi/hapi';
import { AuthError } from 'resource-guard';
import type { AuthInfo, Verifier } from 'resource-guard';
import { metadataRoute, routeGuard } from 'resource-guard/kit';
import type { RouteOptions } from 'resource-guard/kit';

declare module '@hapi/hapi' {
  interface AuthCredentials {
    /**
     * Set by a `resource-guard` strategy once the access token is verified (typed by
     * `CustomClaims`); absent when another strategy authenticated the request.
     */
    auth?: AuthInfo;
  }
}

/** The name of the auth scheme the {@link resourceGuard} plugin registers. */
export const SCHEME = 'resource-guard';

/**
 * A strategy's requirements, and how failures are answered. `errors: 'respond'` (the default)
 * answers with the RFC 6750 body; `'throw'` keeps Boom's own body (`{ statusCode, error,
 * message }`) for an app that formats every Boom in `onPreResponse`. Either way the error is a
 * Boom with the same status and headers (`WWW-Authenticate`, `Retry-After`) and the `AuthError`
 * as its `data`. The organization is, e.g., `(request) => request.params.orgId`. Optional
 * authentication is the route's auth mode (`mode: 'optional'`): a missing token is then reported
 * to Hapi as missing credentials, and so is an anonymous request with `optional: true`.
 */
export type StrategyOptions = RouteOptions<Request>;

/** What a `resource-guard` strategy puts in `request.auth.credentials`. */
export interface ResourceGuardCredentials {
  readonly auth: AuthInfo;
  /** The granted scopes, so that a route's own `auth.access.scope` works on top. */
  scope: string[];
  /**
   * A user token's subject (absent on a machine-to-machine token), so that a route's own
   * `auth.access.entity` (`'user'`, `'app'`) tells them apart as Hapi does: by `credentials.user`.
   */
  user?: { readonly id: string };
}

/** For `server.route<ResourceGuardRefs>(...)`: `request.auth.credentials.auth` is not optional. */
export interface ResourceGuardRefs {
  AuthCredentialsExtra: ResourceGuardCredentials;
}

export interface ResourceGuardPluginOptions {
  readonly verifier: Verifier;
}

/**
 * Registers the auth scheme `'resource-guard'` over the verifier, and serves its RFC 9728
 * metadata (without auth) when it has the `resourceMetadata` option. Each strategy is one set of
 * requirements, checked once when it is declared; authentication runs before the payload is read.
 *
 * @example
 * ```ts
 * await server.register({ plugin: resourceGuard, options: { verifier } });
 * server.auth.strategy('read', 'resource-guard', { scopes: ['read:products'] } satisfies StrategyOptions);
 * server.route({
 *   method: 'GET',
 *   path: '/products',
 *   options: { auth: 'read' },
 *   handler: (request) => ({ client: request.auth.credentials.auth?.clientId }),
 * });
 * ```
 */
export const resourceGuard: Plugin<ResourceGuardPluginOptions> = {
  name: 'resource-guard',
  requirements: { hapi: '>=21' },
  register(server, { verifier }) {
    server.auth.scheme(SCHEME, scheme(verifier));
    if (verifier.resourceMetadata !== undefined) {
      const route = metadataRoute(verifier);
      // A server with `router.stripTrailingSlash` refuses a path ending in `/` (a resource such as
      // `https://shopping.api/v1/`), and routes the request without it: registered without it.
      const strip = server.settings.router?.stripTrailingSlash === true && route.path.endsWith('/');
      server.route({
        method: 'GET',
        path: strip ? route.path.slice(0, -1) : route.path,
        options: { auth: false },
        handler(request, h) {
          // The request's own path decides, exactly (`isCaseSensitive: false`, a stripped slash).
          if (!route.matches(request.raw.req.method, request.raw.req.url))
            throw new Boom('Not Found', { statusCode: 404 });
          const response = h.response(route.document);
          for (const [name, value] of Object.entries(route.headers)) response.header(name, value);
          return response;
        },
      });
    }
  },
};

function scheme(verifier: Verifier): ServerAuthScheme<StrategyOptions> {
  return (_server, options) => {
    // For DPoP: the request as sent (`request.setUrl()` may have rewritten `request.url`).
    const guard = routeGuard<Request>(verifier, options, (request) => ({
      method: request.raw.req.method,
      url: request.raw.req.url,
    }));
    return {
      authenticate: (request, h) =>
        guard.run(request, request.raw.req, {
          pass: (auth, _request, _res, _next, headers) => {
            // For the answer (a newer DPoP-Nonce): set by `response` below, once there is one.
            if (headers !== undefined) answerHeaders.set(request, headers);
            return auth
              ? h.authenticated({ credentials: credentialsOf(auth) })
              : h.unauthenticated(anonymous()); // `optional: true` and no credentials
          },
          respond: (error) => h.unauthenticated(boomOf(error, request, true)),
          fail(error) {
            if (error instanceof AuthError) return h.unauthenticated(boomOf(error, request, false));
            throw error; // a bug: Hapi answers 500 and logs it
          },
        }),
      response(request, h) {
        const headers = answerHeaders.get(request);
        const response = request.response;
        if (headers !== undefined && response !== null && response !== undefined) {
          if (isBoom(response)) Object.assign(response.output.headers, headers);
          else for (const [name, value] of Object.entries(headers)) response.header(name, value);
        }
        return h.continue;
      },
    };
  };
}

/** Hapi's credentials: `user` only for a user token (Hapi's `entity` reads it). */
const credentialsOf = (auth: AuthInfo): ResourceGuardCredentials =>
  auth.isMachine
    ? { auth, scope: [...auth.scopes] }
    : { auth, scope: [...auth.scopes], user: { id: auth.subject } };

/** Headers for the answer to a request the scheme authenticated (a newer DPoP-Nonce). */
const answerHeaders = new WeakMap<Request, Readonly<Record<string, string>>>();

/** No credentials: Hapi goes on unauthenticated on an `optional` or `try` route. */
const anonymous = () => unauthorized(null, 'Bearer');

/**
 * The Boom Hapi renders: the `AuthError`'s status and headers, its RFC 6750 body when `exact`.
 * A missing token on an `optional` or `try` route is reported as missing, so the request
 * continues unauthenticated (on a `required` route it gets our answer, not Hapi's generic one).
 */
function boomOf(error: AuthError, request: Request, exact: boolean): Boom<AuthError> {
  const boom = new Boom<AuthError>(error.description, { statusCode: error.status, data: error });
  const { 'www-authenticate': challenge, ...headers } = error.headers;
  // Boom's spelling, which Hapi reads when it combines the challenges of missing credentials.
  Object.assign(boom.output.headers, headers, challenge && { 'WWW-Authenticate': challenge });
  if (exact) boom.output.payload = error.body as unknown as Payload;
  if (error.code === 'missing_token' && request.auth.mode !== 'required') {
    Object.assign(boom, { isMissing: true });
  }
  return boom;
}
