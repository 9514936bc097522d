import type { RequestHandler } from 'express';
import { AuthError } from 'resource-guard';
import type { AuthInfo, Requirements, Verifier } from 'resource-guard';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `requireAuth` once the access token is verified. */
      auth?: AuthInfo;
    }
  }
}

/** A route's requirements, and how failures are answered. */
export interface RequireAuthOptions extends Requirements {
  /**
   * `'respond'`: answer a failure here (status, `WWW-Authenticate`, JSON body).
   * `'next'`: pass the `AuthError` to `next(err)` so your error handler renders it.
   * Default: `'respond'`.
   */
  readonly errors?: 'respond' | 'next';
}

/**
 * Express middleware that verifies the bearer token, checks the route's scopes and sets
 * `req.auth`.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 * import { requireAuth } from 'resource-guard/express';
 *
 * const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
 * app.get('/products', requireAuth(verifier, { scopes: ['read:products'] }), (req, res) => {
 *   res.json({ products, client: req.auth?.clientId });
 * });
 * ```
 */
export function requireAuth(verifier: Verifier, options: RequireAuthOptions = {}): RequestHandler {
  const guard = verifier.guard(options);
  const forward = options.errors === 'next';
  return (req, res, next) => {
    guard(req)
      .then(
        (auth) => {
          req.auth = auth;
          next();
        },
        (error: unknown) => {
          if (forward || !(error instanceof AuthError)) return next(error);
          res.status(error.status).set(error.headers).json(error.body);
        },
      )
      .catch(next);
  };
}
