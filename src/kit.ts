/**
 * The adapter kit (`resource-guard/kit`): everything a framework adapter needs, written once, so
 * that an adapter only translates the framework's request and response. It owns the option
 * checks, the sync-or-promise fork (a repeat token is answered without a promise, so a framework
 * whose chain rewards it stays synchronous), the error policy, and the RFC 9728 metadata rule.
 * The adapters for Express, Koa, Fastify, NestJS, Hapi and Hono are built on it; so can yours be.
 */
import { attemptOf, usesTarget } from './attempts.ts';
import { AuthError } from './errors.ts';
import { configError, ownData } from './option-checks.ts';
import { OPTION_RULES } from './option-rules.ts';
import { isMetadataRequest, RESOURCE_METADATA_HEADERS } from './resource-metadata.ts';
import type {
  AuthInfo,
  Awaitable,
  RequestLike,
  RequestTarget,
  Requirements,
  ResourceMetadata,
  Verifier,
} from './types.ts';

export type { RequestTarget } from './types.ts';

/**
 * How a route answers a failure. `'respond'`: the adapter answers it at once (status,
 * `WWW-Authenticate`, JSON body). `'throw'`: the `AuthError` goes to the framework's own error
 * handling (`next(err)`, a thrown error, Fastify's error handler), which can render it from its
 * `status`, `headers` and `body`.
 */
export type ErrorMode = 'respond' | 'throw';

/** A route's options, the same in every adapter; `Req` is the framework's request or context. */
export interface RouteOptions<Req> extends Omit<Requirements, 'organization'> {
  /**
   * Makes this an organization route: returns the organization the request is about (a route
   * parameter, a header). The token must be for that organization; a request that names none (or
   * anything but a non-empty string) matches no token. Default: none.
   */
  readonly organization?: (req: Req) => string | undefined;
  /** Default: `'respond'`. */
  readonly errors?: ErrorMode;
}

/**
 * What an adapter does with the answer; exactly one of them is called for each request. `A` is
 * `AuthInfo`, or `AuthInfo | undefined` on an optional route (an anonymous request). Each gets the
 * framework's request and the `res` and `next` given to {@link RouteGuard.run}, so an adapter can
 * define its outcome once, outside the per-request path (no closures per request).
 */
export interface Outcome<R, A = AuthInfo, Req = unknown, Res = unknown, Next = unknown> {
  /**
   * Verified (or anonymous, on an optional route): attach `auth` and continue the chain. `headers`,
   * when given, go on the answer (a `DPoP-Nonce`: a newer server nonce, RFC 9449 §9).
   */
  pass(auth: A, req: Req, res: Res, next: Next, headers?: Readonly<Record<string, string>>): R;
  /** A rejection to answer here (`errors: 'respond'`): render `error.status/headers/body`. */
  respond(error: AuthError, req: Req, res: Res, next: Next): R;
  /** For the framework's error handling: an `AuthError` with `errors: 'throw'`, or a bug. */
  fail(error: unknown, req: Req, res: Res, next: Next): R;
}

/** A route's guard, checked once when the route is declared. */
export interface RouteGuard<Req, A = AuthInfo> {
  /**
   * Verifies the request and calls one of `outcome`'s functions: at once when the answer is known
   * at once (a repeat token), otherwise when it is. Returns what that function returns, or a
   * promise of it. `request` is what holds the headers (node's `IncomingMessage` where the
   * framework has one: its raw header list is the fastest to read and shows a repeated header).
   * `res` and `next` (the framework's response and continuation, say) are handed to `outcome`.
   */
  run<R, Res = undefined, Next = undefined>(
    req: Req,
    request: RequestLike,
    outcome: Outcome<R, A, Req, Res, Next>,
    res?: Res,
    next?: Next,
  ): Awaitable<R>;
}

const OPTION_PATH = 'options';

/** Every name a route's options may hold: the kit's own and the verifier's requirements. */
const ROUTE_OPTION_NAMES = Object.freeze([
  ...Object.keys(OPTION_RULES.requirements.rules),
  'errors',
]);

/**
 * Checks a route's options and builds its guard once. `target` gives the request's method and
 * target (path and query) as the framework routed it, for DPoP (RFC 9449 `htm`, `htu`); it is
 * called only on routes that accept DPoP. Without it they are read from `request` (`method`,
 * `url`), which a mounted router may have rewritten.
 *
 * @example
 * ```ts
 * import type { IncomingMessage, ServerResponse } from 'node:http';
 * import { createVerifier } from 'resource-guard';
 * import type { AuthInfo } from 'resource-guard';
 * import { routeGuard } from 'resource-guard/kit';
 * import type { Outcome } from 'resource-guard/kit';
 *
 * const verifier = createVerifier({ issuer: 'https://tenant.logto.app/oidc', audience: 'https://shopping.api' });
 * type Next = (error?: unknown) => void;
 * const guard = routeGuard<IncomingMessage>(verifier, { scopes: ['read:products'] });
 * // Once, not per request: the outcome gets the request, `res` and `next` of each call.
 * const outcome: Outcome<void, AuthInfo, IncomingMessage, ServerResponse, Next> = {
 *   pass: (_auth, _req, _res, next) => next(),
 *   respond: (error, _req, res) =>
 *     void res.writeHead(error.status, error.headers).end(JSON.stringify(error.body)),
 *   fail: (error, _req, _res, next) => next(error),
 * };
 * function middleware(req: IncomingMessage, res: ServerResponse, next: Next) {
 *   guard.run(req, req, outcome, res, next);
 * }
 * ```
 */
export function routeGuard<Req>(
  verifier: Verifier,
  options: RouteOptions<Req> & { readonly optional: true },
  target?: (req: Req) => RequestTarget,
): RouteGuard<Req, AuthInfo | undefined>;
export function routeGuard<Req>(
  verifier: Verifier,
  options?: RouteOptions<Req> & { readonly optional?: false },
  target?: (req: Req) => RequestTarget,
): RouteGuard<Req>;
export function routeGuard<Req>(
  verifier: Verifier,
  options?: RouteOptions<Req>,
  target?: (req: Req) => RequestTarget,
): RouteGuard<Req, AuthInfo | undefined>;
export function routeGuard<Req>(
  verifier: Verifier,
  options: RouteOptions<Req> = {},
  target?: (req: Req) => RequestTarget,
): RouteGuard<Req, AuthInfo | undefined> {
  checkVerifier(verifier);
  // Each member read once, non-enumerable ones included: the requirements checked are the ones used.
  const own = ownData(options, ROUTE_OPTION_NAMES, OPTION_PATH);
  if (own === undefined) configError(OPTION_PATH, 'must be a plain object');
  const { errors, organization, ...requirements } = own as RouteOptions<Req>;
  if (errors !== undefined && errors !== 'respond' && errors !== 'throw') {
    configError(
      'errors',
      errors === 'next'
        ? "is 'respond' or 'throw': 'throw' passes the AuthError to next(err)"
        : "must be 'respond' or 'throw'",
    );
  }
  if (organization !== undefined && typeof organization !== 'function') {
    configError('organization', 'must be a function returning the request’s organization');
  }
  if (organization !== undefined && requirements.anyOrganization === true) {
    configError('anyOrganization', 'contradicts `organization`: a route names one or accepts any');
  }
  // The requirements (scopes, any, machine, anyOrganization) are checked by the verifier, with
  // a did-you-mean for a misspelt one.
  if (target !== undefined && typeof target !== 'function') {
    configError('target', "must be a function returning the request's method and url");
  }
  const guard = verifier.guard(requirements);
  const attempt = attemptOf(guard);
  // DPoP's htm and htu: asked of the adapter only on routes that accept DPoP.
  const dpopRoute = usesTarget(guard);
  const targetOf = target !== undefined && dpopRoute ? target : undefined;
  const respondHere = errors !== 'throw';

  const route = <R, Res, Next>(
    error: unknown,
    outcome: Outcome<R, AuthInfo | undefined, Req, Res, Next>,
    req: Req,
    res: Res,
    next: Next,
  ): R =>
    respondHere && error instanceof AuthError
      ? outcome.respond(error, req, res, next)
      : outcome.fail(error, req, res, next);

  return Object.freeze({
    run<R, Res, Next>(
      req: Req,
      request: RequestLike,
      outcome: Outcome<R, AuthInfo | undefined, Req, Res, Next>,
      res?: Res,
      next?: Next,
    ): Awaitable<R> {
      let result: Awaitable<AuthInfo | undefined>;
      try {
        result =
          organization === undefined
            ? targetOf === undefined
              ? attempt(request)
              : attempt(request, undefined, targetOf(req))
            : attempt(request, { organization: organization(req) }, targetOf?.(req));
      } catch (error) {
        return route(error, outcome, req, res as Res, next as Next);
      }
      if (!(result instanceof Promise)) return outcome.pass(result, req, res as Res, next as Next);
      // `pass` throwing (a bug downstream) rejects the returned promise; it never calls `fail`
      // too, so a continuation runs at most once. (Closures on this path only: a first sighting.)
      return result.then(
        (auth) => {
          // A DPoP request (always this path) whose proof carried a soon expired server nonce.
          const nonce = dpopRoute ? verifier.dpopNonce(request) : undefined;
          return nonce === undefined
            ? outcome.pass(auth, req, res as Res, next as Next)
            : outcome.pass(auth, req, res as Res, next as Next, { 'dpop-nonce': nonce });
        },
        (error: unknown) => route(error, outcome, req, res as Res, next as Next),
      );
    },
  });
}

/** The RFC 9728 metadata as an adapter serves it. */
export interface MetadataRoute {
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly document: ResourceMetadata['document'];
  /**
   * Whether a request asks for the metadata: its method, and its path or its request target as
   * received (the query, and an absolute-form target's scheme and authority, not considered).
   */
  matches(method: string | undefined, target: string | undefined): boolean;
}

/**
 * A route's options as data, for an adapter that takes an option of its own out before handing
 * the rest to {@link routeGuard}: each member read once, non-enumerable ones included, so that
 * what the kit checks is what the route enforces. `undefined` for anything but a plain object
 * (hand that to `routeGuard` as it is: it refuses it).
 */
export const ownOptions: (options: unknown) => Record<string, unknown> | undefined = ownData;

/** The verifier's metadata route; a `TypeError` when the verifier has no `resourceMetadata`. */
export function metadataRoute(verifier: Verifier): MetadataRoute {
  checkVerifier(verifier);
  const metadata = verifier.resourceMetadata;
  if (metadata === undefined) {
    configError('resourceMetadata', 'is not set on this verifier: pass it to createVerifier()');
  }
  return Object.freeze({
    path: metadata.path,
    headers: RESOURCE_METADATA_HEADERS,
    document: metadata.document,
    matches: (method: string | undefined, target: string | undefined) =>
      isMetadataRequest(metadata, method, target),
  });
}

function checkVerifier(verifier: Verifier): void {
  if (typeof (verifier as Partial<Verifier> | null)?.guard !== 'function') {
    configError('verifier', 'must be a verifier from createVerifier()');
  }
}
