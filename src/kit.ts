/**
 * The adapter kit (`resource-guard/kit`): everything a framework adapter needs, written once, so
 * that an adapter only translates the framework's request and response. It owns the option
 * checks, the sync-or-promise fork (a repeat token is answered without a promise, so a framework
 * whose chain rewards it stays synchronous), the error policy, and the RFC 9728 metadata rule.
 * The adapters for Express, Koa, Fastify, NestJS, Hapi and Hono are built on it; so can yours be.
 */
import { attemptOf } from './attempts.ts';
import { AuthError } from './errors.ts';
import { configError, isPlainObject } from './option-checks.ts';
import { isMetadataRequest, RESOURCE_METADATA_HEADERS } from './resource-metadata.ts';
import type {
  AuthInfo,
  Awaitable,
  RequestLike,
  Requirements,
  ResourceMetadata,
  Verifier,
} from './types.ts';

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
 * `AuthInfo`, or `AuthInfo | undefined` on an optional route (an anonymous request).
 */
export interface Outcome<R, A = AuthInfo> {
  /** Verified (or anonymous, on an optional route): attach `auth` and continue the chain. */
  pass(auth: A): R;
  /** A rejection to answer here (`errors: 'respond'`): render `error.status/headers/body`. */
  respond(error: AuthError): R;
  /** For the framework's error handling: an `AuthError` with `errors: 'throw'`, or a bug. */
  fail(error: unknown): R;
}

/** A route's guard, checked once when the route is declared. */
export interface RouteGuard<Req, A = AuthInfo> {
  /**
   * Verifies the request and calls one of `outcome`'s functions: at once when the answer is known
   * at once (a repeat token), otherwise when it is. Returns what that function returns, or a
   * promise of it. `request` is what holds the headers (node's `IncomingMessage` where the
   * framework has one: its raw header list is the fastest to read and shows a repeated header).
   */
  run<R>(req: Req, request: RequestLike, outcome: Outcome<R, A>): Awaitable<R>;
}

const OPTION_PATH = 'options';

/**
 * Checks a route's options and builds its guard once.
 *
 * @example
 * ```ts
 * import type { IncomingMessage, ServerResponse } from 'node:http';
 * import { createVerifier } from 'resource-guard';
 * import { routeGuard } from 'resource-guard/kit';
 *
 * const verifier = createVerifier({ issuer: 'https://tenant.logto.app/oidc', audience: 'https://shopping.api' });
 * const guard = routeGuard<IncomingMessage>(verifier, { scopes: ['read:products'] });
 * function middleware(req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) {
 *   guard.run(req, req, {
 *     pass: () => next(),
 *     respond: (error) => res.writeHead(error.status, error.headers).end(JSON.stringify(error.body)),
 *     fail: next,
 *   });
 * }
 * ```
 */
export function routeGuard<Req>(
  verifier: Verifier,
  options: RouteOptions<Req> & { readonly optional: true },
): RouteGuard<Req, AuthInfo | undefined>;
export function routeGuard<Req>(
  verifier: Verifier,
  options?: RouteOptions<Req> & { readonly optional?: false },
): RouteGuard<Req>;
export function routeGuard<Req>(
  verifier: Verifier,
  options?: RouteOptions<Req>,
): RouteGuard<Req, AuthInfo | undefined>;
export function routeGuard<Req>(
  verifier: Verifier,
  options: RouteOptions<Req> = {},
): RouteGuard<Req, AuthInfo | undefined> {
  checkVerifier(verifier);
  if (!isPlainObject(options)) configError(OPTION_PATH, 'must be a plain object');
  const { errors, organization, ...requirements } = options;
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
  const attempt = attemptOf(verifier.guard(requirements));
  const respondHere = errors !== 'throw';

  const route = <R>(error: unknown, outcome: Outcome<R, AuthInfo | undefined>): R =>
    respondHere && error instanceof AuthError ? outcome.respond(error) : outcome.fail(error);

  return Object.freeze({
    run<R>(
      req: Req,
      request: RequestLike,
      outcome: Outcome<R, AuthInfo | undefined>,
    ): Awaitable<R> {
      let result: Awaitable<AuthInfo | undefined>;
      try {
        result = attempt(request, organization && { organization: organization(req) });
      } catch (error) {
        return route(error, outcome);
      }
      if (!(result instanceof Promise)) return outcome.pass(result);
      // `pass` throwing (a bug downstream) rejects the returned promise; it never calls `fail`
      // too, so a continuation runs at most once.
      return result.then(outcome.pass, (error: unknown) => route(error, outcome));
    },
  });
}

/** The RFC 9728 metadata as an adapter serves it. */
export interface MetadataRoute {
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly document: ResourceMetadata['document'];
  /** Whether a request (its method, and its path without the query) asks for the metadata. */
  matches(method: string | undefined, path: string | undefined): boolean;
}

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
    matches: (method: string | undefined, path: string | undefined) =>
      isMetadataRequest(metadata, method, path),
  });
}

function checkVerifier(verifier: Verifier): void {
  if (typeof (verifier as Partial<Verifier> | null)?.guard !== 'function') {
    configError('verifier', 'must be a verifier from createVerifier()');
  }
}
