import type { Context, Middleware } from 'koa';
import { AuthError, RESOURCE_METADATA_HEADERS } from 'resource-guard';
import type { AuthInfo, Requirements, Verifier } from 'resource-guard';

declare module 'koa' {
  interface DefaultState {
    /** Set by `requireAuth` once the access token is verified. */
    auth?: AuthInfo;
  }
}

/** A route's requirements, and how failures are answered. */
export interface RequireAuthOptions extends Omit<Requirements, 'organization'> {
  /**
   * Makes this an organization route: returns the organization the request is about, e.g.
   * `(ctx) => (ctx as RouterContext).params.orgId` with @koa/router. The token must be for that
   * organization. Default: none.
   */
  readonly organization?: (ctx: Context) => string | undefined;
  /**
   * `'respond'`: answer a failure here (status, `WWW-Authenticate`, JSON body).
   * `'throw'`: throw the `AuthError` for your error handler; it carries `status` and `headers`,
   * which Koa's default handler honours. Default: `'respond'`.
   */
  readonly errors?: 'respond' | 'throw';
}

/**
 * Koa middleware that verifies the bearer token, checks the route's scopes and sets
 * `ctx.state.auth`.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 * import { requireAuth } from 'resource-guard/koa';
 *
 * const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
 * router.get('/products', requireAuth(verifier, { scopes: ['read:products'] }), (ctx) => {
 *   ctx.body = { products, client: ctx.state.auth?.clientId };
 * });
 * ```
 */
export function requireAuth(verifier: Verifier, options: RequireAuthOptions = {}): Middleware {
  const { errors, organization, ...requirements } = options;
  const guard = verifier.guard(requirements);
  const rethrow = errors === 'throw';
  const fail = (ctx: Context, error: unknown) => {
    if (rethrow || !(error instanceof AuthError)) throw error;
    ctx.status = error.status;
    ctx.set(error.headers);
    ctx.body = error.body;
  };
  // Not an async function: a repeat token passes straight to next() without a promise of ours.
  return (ctx, next) => {
    let result: AuthInfo | Promise<AuthInfo>;
    try {
      result = guard.attempt(ctx.req, organization && { organization: organization(ctx) });
    } catch (error) {
      return fail(ctx, error);
    }
    if (result instanceof Promise) {
      return result.then(
        (auth) => {
          ctx.state.auth = auth;
          return next();
        },
        (error: unknown) => fail(ctx, error),
      );
    }
    ctx.state.auth = result;
    return next();
  };
}

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
  const metadata = verifier.resourceMetadata;
  if (metadata === undefined) {
    throw new TypeError('resource-guard: the verifier has no `resourceMetadata` option');
  }
  return async (ctx, next) => {
    if (ctx.path !== metadata.path || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) {
      return next();
    }
    ctx.set(RESOURCE_METADATA_HEADERS);
    ctx.body = metadata.document;
  };
}
