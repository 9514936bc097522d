import type {
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  onRequestHookHandler,
} from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import type { AuthInfo, Verifier } from 'resource-guard';
import { metadataRoute, routeGuard } from 'resource-guard/kit';
import type { Outcome, RouteOptions } from 'resource-guard/kit';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requireAuth` once the access token is verified; `null` on unguarded routes. */
    auth: AuthInfo | null;
  }
  interface FastifyInstance {
    /** `requireAuth` bound to the verifier given to the `resourceGuard` plugin. */
    requireAuth(options?: RequireAuthOptions): onRequestHookHandler;
  }
}

/**
 * A route's requirements, and how failures are answered (`errors: 'throw'` hands the `AuthError`
 * to Fastify's error handler; it carries `statusCode` and `headers`). The organization is, e.g.,
 * `(request) => (request.params as { orgId: string }).orgId`.
 */
export type RequireAuthOptions = RouteOptions<FastifyRequest>;

/**
 * An `onRequest` hook that verifies the bearer token before the body is parsed, checks the
 * route's requirements and sets `request.auth`. Callback style, synchronous for a repeat token.
 *
 * @example
 * ```ts
 * app.register(resourceGuard, { verifier });
 * app.get('/products', { onRequest: requireAuth(verifier, { scopes: ['read:products'] }) },
 *   async (request) => ({ client: request.auth?.clientId }));
 * ```
 */
export function requireAuth(
  verifier: Verifier,
  options?: RequireAuthOptions,
): onRequestHookHandler {
  const guard = routeGuard<FastifyRequest>(verifier, options, target);
  return (request, reply, done) => void guard.run(request, request.raw, OUTCOME, reply, done);
}

/** One for every request: no closures per request. */
const OUTCOME: Outcome<
  void,
  AuthInfo | undefined,
  FastifyRequest,
  FastifyReply,
  HookHandlerDoneFunction
> = {
  pass(auth, request, reply, done, headers) {
    if (headers !== undefined) reply.headers(headers);
    request.auth = auth ?? null; // null: anonymous, on an optional route
    done();
  },
  respond: (error, _request, reply) =>
    void reply.code(error.status).headers(error.headers).send(error.body),
  fail: (error, _request, _reply, done) => done(error as Error),
};

/** The request as sent, for DPoP (`rewriteUrl` changes `url`, not `originalUrl`). */
const target = (request: FastifyRequest) => ({
  method: request.method,
  url: request.originalUrl,
});

export interface ResourceGuardPluginOptions {
  readonly verifier: Verifier;
}

/**
 * Declares `request.auth` (`null` until a guard sets it) and `fastify.requireAuth(options)`, and
 * serves the verifier's RFC 9728 metadata when it has the `resourceMetadata` option.
 *
 * @example
 * ```ts
 * await app.register(resourceGuard, { verifier });
 * app.get('/products', { onRequest: app.requireAuth({ scopes: ['read:products'] }) }, handler);
 * ```
 */
export const resourceGuard = fastifyPlugin<ResourceGuardPluginOptions>(
  ((fastify, { verifier }, done) => {
    fastify.decorateRequest('auth', null);
    if (verifier.resourceMetadata !== undefined) {
      const route = metadataRoute(verifier);
      // The path as find-my-way reads it: a `:` escaped (else a parameter). A `*` (a wildcard,
      // last only) or an escape (find-my-way matches the decoded path against the pattern as
      // written) cuts it there, into a wildcard. The request's own path decides, exactly: a cut
      // pattern matches more, and so does a router with `ignoreTrailingSlash`,
      // `ignoreDuplicateSlashes` or `caseSensitive: false`.
      const cut = route.path.search(/[*%]/);
      const pattern = (cut < 0 ? route.path : `${route.path.slice(0, cut)}*`).replaceAll(':', '::');
      fastify.get(pattern, (request, reply) => {
        if (!route.matches(request.method, request.url)) {
          return reply.callNotFound();
        }
        reply.headers(route.headers).send(route.document);
      });
    }
    fastify.decorate('requireAuth', (options?: RequireAuthOptions) =>
      requireAuth(verifier, options),
    );
    done();
  }) as FastifyPluginCallback<ResourceGuardPluginOptions>,
  { fastify: '5.x', name: 'resource-guard' },
);
