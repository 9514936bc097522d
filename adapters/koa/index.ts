import type { Context, Middleware, Next } from 'koa';
import type { AuthInfo, Verifier } from 'resource-guard';
import { metadataRoute, routeGuard } from 'resource-guard/kit';
import type { Outcome, RouteOptions } from 'resource-guard/kit';

declare module 'koa' {
  interface DefaultState {
    /** Set by `requireAuth` once the token is verified (typed by `CustomClaims`); `undefined` for an anonymous request to an optional route. */
    auth?: AuthInfo | undefined;
  }
}

/**
 * A route's requirements, and how failures are answered (`errors: 'throw'` throws the
 * `AuthError`, whose `status` and `headers` Koa's default handler honours). With @koa/router the
 * organization is `(ctx) => (ctx as RouterContext).params.orgId`.
 */
export type RequireAuthOptions = RouteOptions<Context>;

/**
 * Koa middleware that verifies the bearer token, checks the route's requirements and sets
 * `ctx.state.auth`. A repeat token passes straight to `next()` without a promise of ours.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 * import { requireAuth } from 'resource-guard/koa';
 *
 * const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
 * router.get('/products', requireAuth(verifier, { scopes: ['read:products'] }), (ctx) => {
 *   ctx.body = { client: ctx.state.auth?.clientId };
 * });
 * ```
 */
export function requireAuth(verifier: Verifier, options?: RequireAuthOptions): Middleware {
  const guard = routeGuard<Context>(verifier, options, target);
  return (ctx, next) => guard.run(ctx, ctx.req, OUTCOME, undefined, next);
}

/** One for every request: no closures per request. */
const OUTCOME: Outcome<unknown, AuthInfo | undefined, Context, undefined, Next> = {
  pass(auth, ctx, _res, next, headers) {
    if (headers !== undefined) ctx.set(headers);
    ctx.state.auth = auth;
    return next();
  },
  respond(error, ctx) {
    ctx.status = error.status;
    ctx.set(error.headers);
    ctx.body = error.body;
  },
  fail(error) {
    throw error;
  },
};

/** The request as routed, for DPoP: `originalUrl` (koa-mount rewrites `url`). */
const target = (ctx: Context) => ({ method: ctx.method, url: ctx.originalUrl });

/**
 * Serves the verifier's RFC 9728 metadata at its well-known path (set the `resourceMetadata`
 * option of `createVerifier`).
 *
 * @example
 * ```ts
 * app.use(resourceMetadata(verifier)); // GET /.well-known/oauth-protected-resource
 * ```
 */
export function resourceMetadata(verifier: Verifier): Middleware {
  const route = metadataRoute(verifier);
  return (ctx, next) => {
    if (!route.matches(ctx.method, ctx.path)) return next();
    ctx.set(route.headers);
    ctx.body = route.document;
  };
}
