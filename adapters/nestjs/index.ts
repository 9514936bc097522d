import {
  applyDecorators,
  ConfigurableModuleBuilder,
  createParamDecorator,
  HttpException,
  Inject,
  Injectable,
  Module,
  UseGuards,
} from '@nestjs/common';
import type { CanActivate, ExecutionContext, InjectionToken, OnModuleInit } from '@nestjs/common';
import {
  DiscoveryModule,
  DiscoveryService,
  HttpAdapterHost,
  MetadataScanner,
  Reflector,
} from '@nestjs/core';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { AuthError } from 'resource-guard';
import type { AuthInfo, Verifier } from 'resource-guard';
import { metadataRoute, routeGuard } from 'resource-guard/kit';
import type { RouteGuard, RouteOptions } from 'resource-guard/kit';

/** What an `organization` function gets: Express's `req` or Fastify's `request`, as Nest has it. */
export interface HttpRequest {
  readonly params: Readonly<Record<string, string | undefined>>;
  readonly headers: IncomingHttpHeaders;
  readonly method?: string;
  /** The target as sent (Express's and Fastify's `originalUrl`; `url` otherwise). */
  readonly originalUrl?: string;
  readonly url?: string;
}

/**
 * A route's requirements, and how failures are answered: `'respond'` (the default) throws an
 * `HttpException` that Nest renders as the challenge; `'throw'` throws the `AuthError` itself, for
 * your own `@Catch(AuthError)` filter. The organization is, e.g., `(req) => req.params.orgId`.
 */
export type RequireAuthOptions = RouteOptions<HttpRequest>;

export interface ResourceGuardModuleOptions {
  /** The verifier from `createVerifier()`, shared by every guarded route of the application. */
  readonly verifier: Verifier;
}

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } =
  new ConfigurableModuleBuilder<ResourceGuardModuleOptions>()
    .setClassMethodName('forRoot')
    .setExtras({}, (definition) => ({ ...definition, global: true }))
    .build();

const Requirements = Reflector.createDecorator<RequireAuthOptions>();
/** The verified request's `AuthInfo`, for `@Auth()`: the last route that checked it. */
const verified = new WeakMap<object, { readonly auth: AuthInfo | undefined }>();
/**
 * The route invocations already checked, with the requirements they were checked for. Nest runs a
 * route's guards (global, controller, handler) with one `ExecutionContext` per invocation, so
 * those guards run one check (one DPoP proof consumed once); another route the request is handed
 * on to with `@Next()` is another invocation and runs its own, even with the same requirements
 * object and the same handler function (an inherited method, or one method on two paths: its
 * `organization` reads that route's params).
 */
const checkedIn = new WeakMap<ExecutionContext, RequireAuthOptions>();

/**
 * The application's route guards, one per `@RequireAuth` (built at start-up: a bad option is a
 * `TypeError` from `app.init()`/`app.listen()`), and the RFC 9728 metadata route. Provided by
 * `ResourceGuardModule`; exported for Nest's injector, not to be used directly.
 */
export class RouteGuards implements OnModuleInit {
  readonly #guards = new WeakMap<RequireAuthOptions, RouteGuard<HttpRequest>>();

  constructor(
    private readonly options: ResourceGuardModuleOptions,
    private readonly reflector: Reflector,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  of(requirements: RequireAuthOptions): RouteGuard<HttpRequest> {
    let guard = this.#guards.get(requirements);
    if (guard === undefined) {
      guard = routeGuard(this.options.verifier, requirements, target);
      this.#guards.set(requirements, guard);
    }
    return guard;
  }

  onModuleInit(): void {
    const build = (target: object) => {
      const requirements = this.reflector.get(Requirements, target as () => void);
      if (requirements !== undefined) this.of(requirements);
    };
    for (const { instance, metatype } of this.discovery.getControllers()) {
      if (metatype) build(metatype);
      const prototype = instance ? (Object.getPrototypeOf(instance) as object) : undefined;
      for (const name of prototype ? this.scanner.getAllMethodNames(prototype) : []) {
        build((prototype as Record<string, object>)[name] as object);
      }
    }
    const { httpAdapter } = this.adapterHost;
    if (httpAdapter && this.options.verifier.resourceMetadata !== undefined) {
      const route = metadataRoute(this.options.verifier);
      // The path as the platform's router reads it, never as a pattern: Express 5 (path-to-regexp)
      // escapes its special characters with a backslash; find-my-way (Fastify) escapes `:` as `::`, and
      // a `*` (a wildcard, last only) or an escape (it matches the decoded path against the
      // pattern as written) cuts the path there, and the request's own path is compared.
      const express = httpAdapter.getType() !== 'fastify';
      const cut = express ? -1 : route.path.search(/[*%]/);
      const pattern = express
        ? route.path.replace(/[:*(){}[\]+?!\\]/g, '\\$&')
        : (cut < 0 ? route.path : `${route.path.slice(0, cut)}*`).replaceAll(':', '::');
      httpAdapter.get(pattern, (req: unknown, res: unknown) => {
        // The request's own path decides: a cut pattern matches more, and Express's router (not
        // strict) takes a path with or without its trailing slash.
        if (!route.matches('GET', httpAdapter.getRequestUrl(req))) {
          httpAdapter.reply(res, { statusCode: 404, message: 'Not Found' }, 404);
          return;
        }
        for (const [name, value] of Object.entries(route.headers)) {
          httpAdapter.setHeader(res, name, value);
        }
        httpAdapter.reply(res, route.document, 200);
      });
    }
  }
}

/** The request as routed, for DPoP. */
const target = (req: HttpRequest) => ({ method: req.method, url: req.originalUrl ?? req.url });

/**
 * Verifies the bearer token against the requirements of `@RequireAuth` (the handler's, else the
 * controller's). Applied by `@RequireAuth`; as a global guard (`APP_GUARD`) it passes routes
 * without one.
 */
export class ResourceGuard implements CanActivate {
  constructor(
    private readonly guards: RouteGuards,
    private readonly reflector: Reflector,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const requirements = this.reflector.getAllAndOverride(Requirements, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (requirements === undefined) return true;
    // A microservice, WebSocket or GraphQL handler has no HTTP request to read a token from:
    // refused, with a message that says why (not a TypeError from deep inside).
    if (context.getType() !== 'http') {
      throw new TypeError(
        `@RequireAuth() guards HTTP routes; this handler runs in a '${context.getType()}' context`,
      );
    }
    const http = context.switchToHttp();
    const req = http.getRequest<HttpRequest & { raw?: IncomingMessage }>();
    if (checkedIn.get(context) === requirements) return true;
    return this.guards.of(requirements).run(req, req.raw ?? (req as unknown as IncomingMessage), {
      pass: (auth, _req, _res, _next, headers) => {
        if (headers !== undefined) {
          const res: unknown = http.getResponse();
          const { httpAdapter } = this.adapterHost;
          if (!httpAdapter.isHeadersSent(res)) {
            for (const [name, value] of Object.entries(headers)) {
              httpAdapter.setHeader(res, name, value);
            }
          }
        }
        verified.set(req, { auth });
        checkedIn.set(context, requirements);
        return true;
      },
      respond: (error) => {
        this.#challenge(http.getResponse(), error);
        throw new HttpException(error.body, error.status, { cause: error });
      },
      // The challenge is on the response for Nest's default handling too, which renders the
      // AuthError by its status and message (and headers set here): a 401 without
      // `WWW-Authenticate` otherwise. Your filter may set them again, or answer otherwise.
      fail: (error) => {
        if (error instanceof AuthError) this.#challenge(http.getResponse(), error);
        throw error;
      },
    });
  }

  /**
   * The refusal's headers on the response; not once an answer is out (a timeout's, during a slow
   * verification): the platform would throw, and Nest log that as an unexpected error.
   */
  #challenge(res: unknown, error: AuthError): void {
    const { httpAdapter } = this.adapterHost;
    if (httpAdapter.isHeadersSent(res)) return;
    for (const [name, value] of Object.entries(error.headers)) {
      httpAdapter.setHeader(res, name, value);
    }
  }
}

/**
 * Requires a verified access token on a handler, or on every handler of a controller (a handler's
 * own `@RequireAuth` replaces the controller's). A rejection is an `HttpException` (its `cause`
 * the `AuthError`) whose status and body Nest renders, with the `WWW-Authenticate` header set.
 *
 * @example
 * ```ts
 * import { Controller, Get } from '@nestjs/common';
 * import type { AuthInfo } from 'resource-guard';
 * import { Auth, RequireAuth } from 'resource-guard/nestjs';
 *
 * @Controller('products')
 * export class ProductsController {
 *   @Get()
 *   @RequireAuth({ scopes: ['read:products'] })
 *   list(@Auth() auth: AuthInfo) {
 *     return { client: auth.clientId };
 *   }
 * }
 * ```
 */
export function RequireAuth(options: RequireAuthOptions = {}): ReturnType<typeof applyDecorators> {
  return applyDecorators(Requirements(options), UseGuards(ResourceGuard));
}

/**
 * The verified {@link AuthInfo} of a route guarded by `@RequireAuth` (typed by `CustomClaims`);
 * `undefined` for an anonymous request to an optional route (type the parameter
 * `AuthInfo | undefined` there).
 *
 * @example
 * ```ts
 * @Get('me')
 * @RequireAuth()
 * me(@Auth() auth: AuthInfo) {
 *   return { subject: auth.subject };
 * }
 * ```
 */
export const Auth = createParamDecorator((_data: unknown, context: ExecutionContext): AuthInfo => {
  const entry = verified.get(context.switchToHttp().getRequest<object>());
  if (entry === undefined) throw new Error('@Auth() is for routes guarded by @RequireAuth()');
  // `undefined` only for an anonymous request to a `@RequireAuth({ optional: true })` route.
  return entry.auth as AuthInfo;
});

/**
 * Provides the verifier to `@RequireAuth` (a global module: import it once, in the root module)
 * and serves its RFC 9728 metadata when it has the `resourceMetadata` option. `forRootAsync`
 * takes `useFactory`/`inject`/`imports`, e.g. to build the verifier from `ConfigService`.
 *
 * @example
 * ```ts
 * import { Module } from '@nestjs/common';
 * import { createVerifier } from 'resource-guard';
 * import { ResourceGuardModule } from 'resource-guard/nestjs';
 *
 * const verifier = createVerifier({ issuer, audience: 'https://shopping.api' });
 *
 * @Module({
 *   imports: [ResourceGuardModule.forRoot({ verifier })],
 *   controllers: [ProductsController],
 * })
 * export class AppModule {}
 * ```
 */
export class ResourceGuardModule extends ConfigurableModuleClass {}

// Nest's decorators, applied as the functions they are: the package builds without
// `experimentalDecorators`, and every dependency is named (no `emitDecoratorMetadata` needed).
injectable(RouteGuards, [
  MODULE_OPTIONS_TOKEN,
  Reflector,
  DiscoveryService,
  MetadataScanner,
  HttpAdapterHost,
]);
injectable(ResourceGuard, [RouteGuards, Reflector, HttpAdapterHost]);
Module({
  imports: [DiscoveryModule],
  providers: [RouteGuards, ResourceGuard],
  exports: [RouteGuards, ResourceGuard],
})(ResourceGuardModule);

function injectable(
  type: abstract new (...args: never[]) => unknown,
  tokens: readonly InjectionToken[],
) {
  Injectable()(type);
  tokens.forEach((token, index) => Inject(token)(type, undefined, index));
}
