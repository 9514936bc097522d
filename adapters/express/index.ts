import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AuthInfo, Verifier } from 'resource-guard';
import { metadataRoute, routeGuard } from 'resource-guard/kit';
import type { Outcome, RouteOptions } from 'resource-guard/kit';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `requireAuth` once the token is verified (typed by `CustomClaims`); `undefined` for an anonymous request to an optional route. */
      auth?: AuthInfo | undefined;
    }
  }
}

/** A route's requirements, and how failures are answered (`errors: 'throw'` → `next(err)`). */
export type RequireAuthOptions = RouteOptions<Request>;

/**
 * Express middleware that verifies the bearer token, checks the route's requirements and sets
 * `req.auth`. Synchronous for a repeat token: Express pays for every middleware that defers
 * `next()` to a promise.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 * import { requireAuth } from 'resource-guard/express';
 *
 * const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
 * app.get('/products', requireAuth(verifier, { scopes: ['read:products'] }), (req, res) => {
 *   res.json({ client: req.auth?.clientId });
 * });
 * ```
 */
export function requireAuth(verifier: Verifier, options?: RequireAuthOptions): RequestHandler {
  const guard = routeGuard<Request>(verifier, options, target);
  return (req, res, next) => void guard.run(req, req, OUTCOME, res, next);
}

/** One for every request: no closures per request. */
const OUTCOME: Outcome<void, AuthInfo | undefined, Request, Response, NextFunction> = {
  pass(auth, req, res, next, headers) {
    // Not once an answer is out (a timeout middleware's, say): set() would throw.
    if (headers !== undefined && !res.headersSent) res.set(headers);
    req.auth = auth;
    next();
  },
  respond(error, _req, res) {
    // Not once an answer is out (a timeout middleware's, during a slow verification): the
    // refusal has no one to reach, and writing it would throw into a discarded promise.
    if (res.headersSent) return;
    res.status(error.status).set(error.headers).json(error.body);
  },
  fail: (error, _req, _res, next) => next(error),
};

/** The request as routed, for DPoP: `originalUrl` (a mounted router rewrites `url`). */
const target = (req: Request) => ({ method: req.method, url: req.originalUrl });

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
  const route = metadataRoute(verifier);
  return (req, res, next) => {
    if (!route.matches(req.method, req.path)) return next();
    res.set(route.headers).json(route.document);
  };
}
