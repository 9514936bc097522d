import type { Context, MiddlewareHandler } from 'hono';
import type { AuthInfo, Verifier } from 'resource-guard';
import { metadataRoute, ownOptions, routeGuard } from 'resource-guard/kit';
import type { RouteOptions } from 'resource-guard/kit';

/**
 * The Hono `Env` of a guarded route: `c.get('auth')` (and `c.var.auth`) is the verified token,
 * typed by `CustomClaims`. A route that lists `requireAuth` gets it by inference; for
 * `app.use('/api/*', requireAuth(...))` declare it on the app: `new Hono<AuthEnv>()`.
 */
export type AuthEnv = { Variables: { auth: AuthInfo } };

/** The `Env` of an `optional: true` route: `c.get('auth')` is `undefined` for an anonymous request. */
export type OptionalAuthEnv = { Variables: { auth: AuthInfo | undefined } };

/**
 * A route's requirements, and how failures are answered (`errors: 'throw'` throws the
 * `AuthError` to `app.onError`, which renders it with `c.json(err.body, err.status, err.headers)`).
 * The organization is, e.g., `(c) => c.req.param('orgId')`.
 */
export type RequireAuthOptions = RouteOptions<Context> & {
  /**
   * For DPoP under `mount(path, app.fetch)`, which hands the app a new Request without `path`:
   * that path (`'/api'`), so a proof's `htu` is checked against the URL the client called. Not
   * needed with `app.route()` or `basePath()`, which keep the whole URL. Its limits: `/api` and
   * `/api/` both reach the app as `/` (read as `/api/`), escapes Hono decoded stay decoded, and a
   * guard in the outer app and one in the mounted app each consume the proof.
   */
  readonly mountPath?: string;
};

/**
 * Hono middleware that verifies the bearer token, checks the route's requirements and sets
 * `c.get('auth')`: `AuthInfo` in the route's handlers, `AuthInfo | undefined` with `optional: true`.
 * A repeat token passes straight to `next()` without a promise of ours. Reads the Web `Request`
 * (`c.req.raw`), so it runs on every runtime Hono runs on.
 *
 * @example
 * ```ts
 * import { createVerifier } from 'resource-guard';
 * import { requireAuth } from 'resource-guard/hono';
 *
 * const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
 * app.get('/products', requireAuth(verifier, { scopes: ['read:products'] }), (c) =>
 *   c.json({ client: c.get('auth').clientId }),
 * );
 * ```
 */
export function requireAuth(
  verifier: Verifier,
  options: RequireAuthOptions & { readonly optional: true },
): MiddlewareHandler<OptionalAuthEnv>;
export function requireAuth(
  verifier: Verifier,
  options?: RequireAuthOptions & { readonly optional?: false },
): MiddlewareHandler<AuthEnv>;
export function requireAuth(
  verifier: Verifier,
  options?: RequireAuthOptions,
): MiddlewareHandler<OptionalAuthEnv>;
export function requireAuth(verifier: Verifier, options?: RequireAuthOptions): MiddlewareHandler {
  const { route, prefix } = withMountPath(options);
  // For DPoP: the URL's path and query count; its origin comes from the verifier's `dpop.origin`.
  // The Request this app was handed: never `c.env.incoming` (node's request for the client),
  // which Hono hands on to every sub-request an app makes with `app.request(…, c.env)`.
  const guard = routeGuard<Context>(verifier, route, (c) => ({
    method: c.req.method,
    url: prefix === '' ? c.req.url : prefix + c.req.url.replace(ORIGIN, ''),
  }));
  // Promise.resolve of next()'s promise is that promise itself: no extra one for a repeat token.
  return (c: Context<OptionalAuthEnv>, next) =>
    Promise.resolve(
      guard.run<Promise<void> | Response>(c, c.req.raw, {
        pass(auth, _c, _res, _next, headers) {
          c.set('auth', auth);
          if (headers === undefined) return next();
          // After the handler: on whatever answer it made, a `new Response()` of its own included.
          return next().then(() => {
            for (const [name, value] of Object.entries(headers)) c.header(name, value);
          });
        },
        // c.json keeps the headers set before us (c.header(): a request id, CORS).
        respond: (error) => c.json(error.body, error.status, error.headers),
        fail(error) {
          throw error;
        },
      }),
    );
}

/** `scheme://authority` at the start of an absolute URL. */
const ORIGIN = /^[a-z][a-z\d+.-]*:\/\/[^/?#]*/i;

/**
 * The route's options without `mountPath` (the kit checks the rest), and the prefix it names:
 * `''` without one, else `/segments` without a trailing slash.
 */
function withMountPath(options: RequireAuthOptions | undefined): {
  route: RouteOptions<Context> | undefined;
  prefix: string;
} {
  const own = ownOptions(options);
  if (own === undefined) return { route: options, prefix: '' }; // the kit refuses it
  // The copy, not the options again: each getter read once, here.
  if (!Object.hasOwn(own, 'mountPath')) return { route: own as RouteOptions<Context>, prefix: '' };
  const { mountPath, ...route } = own as RequireAuthOptions;
  if (mountPath === undefined) return { route, prefix: '' };
  if (typeof mountPath !== 'string' || !/^\/[^?#\\\s]*$/.test(mountPath)) {
    throw new TypeError(
      "resource-guard: `mountPath` must be the path mount() strips, such as '/api' (a string starting with /, no query)",
    );
  }
  return { route, prefix: mountPath.replace(/\/+$/, '') };
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
export function resourceMetadata(verifier: Verifier): MiddlewareHandler {
  const route = metadataRoute(verifier);
  return (c, next) =>
    route.matches(c.req.method, c.req.path)
      ? Promise.resolve(c.json(route.document, 200, route.headers))
      : next();
}
