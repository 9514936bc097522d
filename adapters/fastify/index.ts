import type { FastifyPluginCallback, FastifyRequest, onRequestHookHandler } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { AuthError, RESOURCE_METADATA_HEADERS } from 'resource-guard';
import type { AuthInfo, Requirements, Verifier } from 'resource-guard';

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

/** A route's requirements, and how failures are answered. */
export interface RequireAuthOptions extends Omit<Requirements, 'organization'> {
  /**
   * Makes this an organization route: returns the organization the request is about, e.g.
   * `(request) => (request.params as { orgId: string }).orgId`. The token must be for that
   * organization. Default: none.
   */
  readonly organization?: (request: FastifyRequest) => string | undefined;
  /**
   * `'respond'`: answer a failure here (status, `WWW-Authenticate`, JSON body).
   * `'throw'`: throw the `AuthError` to Fastify's error handler (it carries `statusCode` via
   * `status`, and `headers`). Default: `'respond'`.
   */
  readonly errors?: 'respond' | 'throw';
}

/**
 * An `onRequest` hook that verifies the bearer token before the body is parsed, checks the
 * route's scopes and sets `request.auth`.
 *
 * @example
 * ```ts
 * app.register(resourceGuard, { verifier });
 * app.get('/products', { onRequest: requireAuth(verifier, { scopes: ['read:products'] }) },
 *   async (request) => ({ products, client: request.auth?.clientId }));
 * ```
 */
export function requireAuth(
  verifier: Verifier,
  options: RequireAuthOptions = {},
): onRequestHookHandler {
  const { errors, organization, ...requirements } = options;
  const guard = verifier.guard(requirements);
  const rethrow = errors === 'throw';
  return (request, reply, done) => {
    const ok = (auth: AuthInfo) => {
      request.auth = auth;
      done();
    };
    const fail = (error: unknown) => {
      if (rethrow || !(error instanceof AuthError)) return done(error as Error);
      reply.code(error.status).headers(error.headers).send(error.body); // answered: no done()
    };
    // Callback style, synchronous when the answer is known at once (a repeat token).
    let result: AuthInfo | Promise<AuthInfo>;
    try {
      result = guard.attempt(request.raw, organization && { organization: organization(request) });
    } catch (error) {
      return fail(error);
    }
    if (result instanceof Promise) result.then(ok, fail);
    else ok(result);
  };
}

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
  ((fastify, options, done) => {
    fastify.decorateRequest('auth', null);
    const metadata = options.verifier.resourceMetadata;
    if (metadata !== undefined) {
      fastify.get(metadata.path, (_request, reply) => {
        reply.headers(RESOURCE_METADATA_HEADERS).send(metadata.document);
      });
    }
    fastify.decorate('requireAuth', (requirements?: RequireAuthOptions) =>
      requireAuth(options.verifier, requirements),
    );
    done();
  }) as FastifyPluginCallback<ResourceGuardPluginOptions>,
  { fastify: '5.x', name: 'resource-guard' },
);
