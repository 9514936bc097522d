import type { Middleware } from 'koa';
import { AuthError } from 'resource-guard';
import type { AuthInfo, Requirements, Verifier } from 'resource-guard';

declare module 'koa' {
  interface DefaultState {
    /** Set by `requireAuth` once the access token is verified. */
    auth?: AuthInfo;
  }
}

/** A route's requirements, and how failures are answered. */
export interface RequireAuthOptions extends Requirements {
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
  const guard = verifier.guard(options);
  const rethrow = options.errors === 'throw';
  return async (ctx, next) => {
    try {
      ctx.state.auth = await guard(ctx.req);
    } catch (error) {
      if (rethrow || !(error instanceof AuthError)) throw error;
      ctx.status = error.status;
      ctx.set(error.headers);
      ctx.body = error.body;
      return;
    }
    await next();
  };
}
