/**
 * Session 32 (no 500): one small API per adapter, written the way the README shows, whose routes
 * hand request-derived values to resource-guard. Every app has the same routes:
 *
 * - `GET /orgs/:orgId`: the adapter's `organization` option reading the route parameter;
 * - `GET /qorg`: `organization` from the query string (as the framework parses it, cast to string);
 * - `GET /horg`: `organization` from the `x-org` header (node joins a repeated one with `, `);
 * - `GET /featured`: `optional: true`;
 * - `GET /any`: `anyOrganization: true`;
 * - `GET /dpop/:orgId` (not on Hapi and NestJS): a DPoP verifier (`trustHost`), `organization`
 *   from the parameter;
 * - `GET /direct` (not on Hapi and NestJS, whose guards are declared): `verifier.authenticate(req,
 *   …)` with `organization` from `x-org` beside `anyOrganization: true`, and `scopes`,
 *   `claimEquals` and `claimIncludes` values from the query;
 * - `GET /guard/:orgId` (Express, node:http): `verifier.guard()`'s function with `{ organization }`;
 * - `POST /verify` (Express): `verifier.verify(body.token, { organization: body.organization })`.
 *
 * Every handler answers `{ org }` (the token's organization) so a test can check what passed.
 * Errors that are not an AuthError are answered 500 with `{ error: 'server_error', message }`, so
 * a test sees which library call threw.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import 'reflect-metadata';
import { Catch, Controller, Get, HttpException, Inject } from '@nestjs/common';
import type { ArgumentsHost, ExceptionFilter } from '@nestjs/common';
import { APP_FILTER, HttpAdapterHost } from '@nestjs/core';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import type { Request as HapiRequest } from '@hapi/hapi';
import type { RouterContext } from '@koa/router';
import type { Context as HonoContext } from 'hono';
import qs from 'qs';
import { AuthError, authErrorResponse, sendAuthError } from 'resource-guard';
import type { AuthInfo, Requirements, Verifier } from 'resource-guard';
import { requireAuth as expressAuth } from 'resource-guard/express';
import type { HttpRequest } from 'resource-guard/nestjs';
import { startNest } from './nest-app.ts';

export interface Verifiers {
  /** Bearer (plus cookie and getToken), organizations on. */
  readonly bearer: Verifier;
  /** DPoP allowed, `trustHost`, organizations on. */
  readonly dpop: Verifier;
}

export interface RunningApp {
  readonly name: string;
  readonly url: string;
  close(): Promise<void>;
}

const orgOf = (auth: AuthInfo | undefined) => ({ org: auth?.organizationId ?? null });
const serverError = (error: unknown) => ({
  error: 'server_error',
  message: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
});

/** What a query parser hands the app, as the README's snippets cast it. */
const asString = (value: unknown) => value as string;

/** The per-call requirements of `GET /direct`, from a header and the parsed query. */
export function directRequirements(
  header: unknown,
  query: Readonly<Record<string, unknown>>,
): Requirements {
  return {
    organization: asString(header),
    anyOrganization: true,
    scopes: [asString(query.scope)],
    claimEquals: { tenant_id: asString(query.tenant) },
    claimIncludes: { roles: [asString(query.role)] },
  };
}

async function listen(server: Server, name: string): Promise<RunningApp> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function expressApp({ bearer, dpop }: Verifiers): Promise<RunningApp> {
  const app = express();
  app.set('query parser', (text: string) => qs.parse(text)); // qs: nested objects and arrays
  app.get(
    '/orgs/:orgId',
    expressAuth(bearer, { organization: (req) => asString(req.params.orgId) }),
    ok,
  );
  app.get('/qorg', expressAuth(bearer, { organization: (req) => asString(req.query.org) }), ok);
  app.get('/horg', expressAuth(bearer, { organization: (req) => asString(req.get('x-org')) }), ok);
  app.get('/featured', expressAuth(bearer, { optional: true }), ok);
  app.get('/any', expressAuth(bearer, { anyOrganization: true }), ok);
  app.get(
    '/dpop/:orgId',
    expressAuth(dpop, { organization: (req) => asString(req.params.orgId) }),
    ok,
  );
  app.get('/direct', (req, res, next) => {
    bearer
      .authenticate(req, directRequirements(req.headers['x-org'], req.query))
      .then((auth) => res.json(orgOf(auth)), next);
  });
  const guard = bearer.guard({ scopes: ['read:products'] });
  app.get('/guard/:orgId', (req, res, next) => {
    guard(req, { organization: asString(req.params.orgId) }).then(
      (auth) => res.json(orgOf(auth)),
      next,
    );
  });
  app.post('/verify', express.json({ limit: '64kb' }), (req, res, next) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    bearer
      .verify(asString(body.token), { organization: asString(body.organization) })
      .then((auth) => res.json(orgOf(auth)), next);
  });
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (error instanceof AuthError)
      return void res.status(error.status).set(error.headers).json(error.body);
    const status = (error as { status?: unknown }).status;
    // body-parser's own 4xx (bad JSON, too large): not ours.
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return void res.status(status).json({ error: 'bad_request' });
    }
    res.status(500).json(serverError(error));
  });
  return listen(createServer(app), 'express');

  function ok(req: Request, res: Response) {
    res.json(orgOf(req.auth));
  }
}

export async function koaApp({ bearer, dpop }: Verifiers): Promise<RunningApp> {
  const { default: Koa } = await import('koa');
  const { default: Router } = await import('@koa/router');
  const { requireAuth } = await import('resource-guard/koa');
  const router = new Router();
  const ok = (ctx: RouterContext) => {
    ctx.body = orgOf(ctx.state.auth as AuthInfo | undefined);
  };
  router.get(
    '/orgs/:orgId',
    requireAuth(bearer, { organization: (ctx) => (ctx as RouterContext).params.orgId }),
    ok,
  );
  router.get('/qorg', requireAuth(bearer, { organization: (ctx) => asString(ctx.query.org) }), ok);
  router.get('/horg', requireAuth(bearer, { organization: (ctx) => ctx.get('x-org') }), ok);
  router.get('/featured', requireAuth(bearer, { optional: true }), ok);
  router.get('/any', requireAuth(bearer, { anyOrganization: true }), ok);
  router.get(
    '/dpop/:orgId',
    requireAuth(dpop, { organization: (ctx) => (ctx as RouterContext).params.orgId }),
    ok,
  );
  router.get('/direct', async (ctx) => {
    ctx.body = orgOf(
      await bearer.authenticate(ctx.req, directRequirements(ctx.headers['x-org'], ctx.query)),
    );
  });
  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (error instanceof AuthError) {
        ctx.status = error.status;
        ctx.set(error.headers);
        ctx.body = error.body;
        return;
      }
      ctx.status = 500;
      ctx.body = serverError(error);
    }
  });
  app.use(router.routes());
  return listen(createServer(app.callback()), 'koa');
}

export async function fastifyApp({ bearer, dpop }: Verifiers): Promise<RunningApp> {
  const { default: Fastify } = await import('fastify');
  const { requireAuth } = await import('resource-guard/fastify');
  // qs, as a Fastify app that wants nested query objects configures it.
  const app = Fastify({ routerOptions: { querystringParser: (text) => qs.parse(text) } });
  const ok = async (request: { auth: AuthInfo | null }) => orgOf(request.auth ?? undefined);
  const params = (request: { params: unknown }) => (request.params as { orgId: string }).orgId;
  const query = (request: { query: unknown }) => request.query as Record<string, unknown>;
  app.get('/orgs/:orgId', { onRequest: requireAuth(bearer, { organization: params }) }, ok);
  app.get(
    '/qorg',
    { onRequest: requireAuth(bearer, { organization: (r) => asString(query(r).org) }) },
    ok,
  );
  app.get(
    '/horg',
    { onRequest: requireAuth(bearer, { organization: (r) => asString(r.headers['x-org']) }) },
    ok,
  );
  app.get('/featured', { onRequest: requireAuth(bearer, { optional: true }) }, ok);
  app.get('/any', { onRequest: requireAuth(bearer, { anyOrganization: true }) }, ok);
  app.get('/dpop/:orgId', { onRequest: requireAuth(dpop, { organization: params }) }, ok);
  app.get('/direct', async (request) =>
    orgOf(
      await bearer.authenticate(
        request.raw,
        directRequirements(request.headers['x-org'], query(request)),
      ),
    ),
  );
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof AuthError) {
      return reply.code(error.status).headers(error.headers).send(error.body);
    }
    const status = (error as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return reply.code(status).send({ error: 'bad_request' });
    }
    return reply.code(500).send(serverError(error));
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { name: 'fastify', url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

export async function honoApp({ bearer, dpop }: Verifiers): Promise<RunningApp> {
  const { Hono } = await import('hono');
  const { createAdaptorServer } = await import('@hono/node-server');
  const { requireAuth } = await import('resource-guard/hono');
  const app = new Hono();
  const ok = (c: HonoContext<{ Variables: { auth: AuthInfo | undefined } }>) =>
    c.json(orgOf(c.get('auth')));
  app.get('/orgs/:orgId', requireAuth(bearer, { organization: (c) => c.req.param('orgId') }), ok);
  // Every value of a repeated parameter, as `queries()` gives them (an array, cast).
  app.get(
    '/qorg',
    requireAuth(bearer, { organization: (c) => asString(c.req.queries('org')) }),
    ok,
  );
  app.get('/horg', requireAuth(bearer, { organization: (c) => c.req.header('x-org') }), ok);
  app.get('/featured', requireAuth(bearer, { optional: true }), ok);
  app.get('/any', requireAuth(bearer, { anyOrganization: true }), ok);
  app.get('/dpop/:orgId', requireAuth(dpop, { organization: (c) => c.req.param('orgId') }), ok);
  app.get('/direct', async (c) => {
    const query = Object.fromEntries(
      ['scope', 'tenant', 'role'].map((name) => [name, c.req.queries(name)?.[0]]),
    );
    return c.json(
      orgOf(await bearer.authenticate(c.req.raw, directRequirements(c.req.header('x-org'), query))),
    );
  });
  app.onError((error, c) => {
    if (error instanceof AuthError) return c.json(error.body, error.status, error.headers);
    return c.json(serverError(error), 500);
  });
  return listen(createAdaptorServer({ fetch: app.fetch }) as Server, 'hono');
}

export async function hapiApp({ bearer }: Verifiers): Promise<RunningApp> {
  const Hapi = await import('@hapi/hapi');
  const { resourceGuard, SCHEME } = await import('resource-guard/hapi');
  const server = Hapi.server({ port: 0, host: '127.0.0.1' });
  await server.register({ plugin: resourceGuard, options: { verifier: bearer } });
  const strategies: Record<string, object> = {
    param: { organization: (r: HapiRequest) => r.params.orgId as string },
    query: { organization: (r: HapiRequest) => asString(r.query.org) },
    header: { organization: (r: HapiRequest) => asString(r.headers['x-org']) },
    optional: { optional: true },
    any: { anyOrganization: true },
  };
  for (const [name, options] of Object.entries(strategies)) {
    server.auth.strategy(name, SCHEME, options);
  }
  const ok = (request: HapiRequest) =>
    orgOf(request.auth.credentials?.auth as AuthInfo | undefined);
  server.route([
    { method: 'GET', path: '/orgs/{orgId}', options: { auth: 'param' }, handler: ok },
    { method: 'GET', path: '/qorg', options: { auth: 'query' }, handler: ok },
    { method: 'GET', path: '/horg', options: { auth: 'header' }, handler: ok },
    {
      method: 'GET',
      path: '/featured',
      options: { auth: { strategy: 'optional', mode: 'optional' } },
      handler: ok,
    },
    { method: 'GET', path: '/any', options: { auth: 'any' }, handler: ok },
  ]);
  await server.start();
  return { name: 'hapi', url: server.info.uri, close: () => server.stop({ timeout: 0 }) };
}

/** node:http with the verifier's own calls, as the README's plain node:http section. */
export async function nodeApp({ bearer, dpop }: Verifiers): Promise<RunningApp> {
  const guard = bearer.guard({ scopes: ['read:products'] });
  const dpopGuard = dpop.guard({});
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://h');
        const query = Object.fromEntries(
          ['scope', 'tenant', 'role'].map((name) => {
            const all = url.searchParams.getAll(name);
            return [name, all.length === 1 ? all[0] : all];
          }),
        );
        const org = /^\/(?:orgs|guard|dpop)\/([^/]*)$/.exec(url.pathname)?.[1];
        let auth: AuthInfo | undefined;
        if (url.pathname === '/direct') {
          auth = await bearer.authenticate(req, directRequirements(req.headers['x-org'], query));
        } else if (org !== undefined && url.pathname.startsWith('/dpop/')) {
          auth = await dpopGuard(req, { organization: safeDecode(org) });
        } else if (org !== undefined) {
          auth = await guard(req, { organization: safeDecode(org) });
        } else if (url.pathname === '/horg') {
          auth = await bearer.authenticate(req, { organization: asString(req.headers['x-org']) });
        } else if (url.pathname === '/featured') {
          auth = await bearer.authenticate(req, { optional: true });
        } else {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(orgOf(auth)));
      } catch (error) {
        if (error instanceof AuthError) return sendAuthError(res, error);
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(serverError(error)));
      }
    })();
  });
  return listen(server, 'node:http');
}

/** A Web `Request` handler (Bun, Deno, Next.js shape), served through @hono/node-server. */
export async function webApp({ bearer, dpop }: Verifiers): Promise<RunningApp> {
  const { createAdaptorServer } = await import('@hono/node-server');
  const handle = async (request: globalThis.Request): Promise<globalThis.Response> => {
    // @hono/node-server builds the URL from the Host header: one no URL parser takes
    // (`Host: xn--`) is the app's own 400, before resource-guard is asked anything.
    if (!URL.canParse(request.url))
      return globalThis.Response.json({ error: 'bad_request' }, { status: 400 });
    try {
      const url = new URL(request.url);
      const query = Object.fromEntries(
        ['scope', 'tenant', 'role'].map((name) => [name, url.searchParams.get(name) ?? undefined]),
      );
      const org = /^\/(?:orgs|dpop)\/([^/]*)$/.exec(url.pathname)?.[1];
      const verifier = url.pathname.startsWith('/dpop/') ? dpop : bearer;
      let auth: AuthInfo | undefined;
      if (url.pathname === '/direct') {
        auth = await bearer.authenticate(
          request,
          directRequirements(request.headers.get('x-org') ?? undefined, query),
        );
      } else if (org !== undefined) {
        auth = await verifier.authenticate(request, { organization: safeDecode(org) });
      } else if (url.pathname === '/qorg') {
        auth = await bearer.authenticate(request, {
          organization: asString(url.searchParams.getAll('org')),
        });
      } else if (url.pathname === '/featured') {
        auth = await bearer.authenticate(request, { optional: true });
      } else {
        return new globalThis.Response(null, { status: 404 });
      }
      return globalThis.Response.json(orgOf(auth));
    } catch (error) {
      if (error instanceof AuthError) return authErrorResponse(error);
      return globalThis.Response.json(serverError(error), { status: 500 });
    }
  };
  return listen(createAdaptorServer({ fetch: handle }) as Server, 'web Request');
}

/** A path parameter as the app decodes it; a broken escape stays as written. */
function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** NestJS on Express or Fastify: `@RequireAuth` with `organization` from the param, query, header. */
export async function nestApp(
  { bearer }: Verifiers,
  platform: 'express' | 'fastify',
): Promise<RunningApp> {
  const { Auth, RequireAuth, ResourceGuardModule } = await import('resource-guard/nestjs');
  type NestReq = HttpRequest & { query?: Record<string, unknown> };

  @Controller()
  class HostileController {
    @Get('orgs/:orgId')
    @RequireAuth({ organization: (req) => req.params.orgId })
    param(@Auth() auth: AuthInfo) {
      return orgOf(auth);
    }

    @Get('qorg')
    @RequireAuth({ organization: (req) => asString((req as NestReq).query?.org) })
    query(@Auth() auth: AuthInfo) {
      return orgOf(auth);
    }

    @Get('horg')
    @RequireAuth({ organization: (req) => asString(req.headers['x-org']) })
    header(@Auth() auth: AuthInfo) {
      return orgOf(auth);
    }

    @Get('featured')
    @RequireAuth({ optional: true })
    featured(@Auth() auth: AuthInfo | undefined) {
      return orgOf(auth);
    }

    @Get('any')
    @RequireAuth({ anyOrganization: true })
    any(@Auth() auth: AuthInfo) {
      return orgOf(auth);
    }
  }

  /** Nest's own rendering for HttpExceptions (ours included); anything else shown as a 500. */
  @Catch()
  class Everything implements ExceptionFilter {
    constructor(@Inject(HttpAdapterHost) private readonly host: HttpAdapterHost) {}
    catch(error: unknown, host: ArgumentsHost) {
      const res: unknown = host.switchToHttp().getResponse();
      if (error instanceof HttpException) {
        this.host.httpAdapter.reply(res, error.getResponse(), error.getStatus());
        return;
      }
      this.host.httpAdapter.reply(res, serverError(error), 500);
    }
  }

  const app = await startNest(
    {
      imports: [ResourceGuardModule.forRoot({ verifier: bearer })],
      controllers: [HostileController],
      providers: [{ provide: APP_FILTER, useClass: Everything }],
    },
    platform,
  );
  return { name: `nestjs (${platform})`, url: app.url, close: app.close };
}
