import type { Request, RequestHandler } from 'express';
import { AuthError, RESOURCE_METADATA_HEADERS } from 'resource-guard';
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
export interface RequireAuthOptions extends Omit<Requirements, 'organization'> {
  /**
   * Makes this an organization route: returns the organization the request is about, e.g.
   * `(req) => req.params.orgId`. The token must be for that organization. Default: none.
   */
  readonly organization?: (req: Request) => string | undefined;
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
  const { errors, organization, ...requirements } = options;
  const guard = verifier.guard(requirements);
  const forward = errors === 'next';
  return (req, res, next) => {
    const ok = (auth: AuthInfo) => {
      req.auth = auth;
      next();
    };
    const fail = (error: unknown) => {
      if (forward || !(error instanceof AuthError)) return next(error);
      res.status(error.status).set(error.headers).json(error.body);
    };
    // Synchronous when the answer is known at once (a repeat token): Express pays for every
    // middleware that defers next() to a promise.
    let result: AuthInfo | Promise<AuthInfo>;
    try {
      result = guard.attempt(req, organization && { organization: organization(req) });
    } catch (error) {
      return fail(error);
    }
    if (result instanceof Promise) result.then(ok, fail).catch(next);
    else ok(result);
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
export function resourceMetadata(verifier: Verifier): RequestHandler {
  const metadata = verifier.resourceMetadata;
  if (metadata === undefined) {
    throw new TypeError('resource-guard: the verifier has no `resourceMetadata` option');
  }
  return (req, res, next) => {
    if (req.path !== metadata.path || (req.method !== 'GET' && req.method !== 'HEAD'))
      return next();
    res.set(RESOURCE_METADATA_HEADERS).json(metadata.document);
  };
}
