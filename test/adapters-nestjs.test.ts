/**
 * What is specific to the NestJS adapter, on both of Nest's platforms (Express and Fastify); what
 * every adapter shares is in contract/contract.test.ts (the shopping API example runs there on
 * both). Here the apps are bare: Nest's own exception layer renders the rejections.
 */
import 'reflect-metadata';
import { Catch, Controller, Get, Module, Param, Post, Req } from '@nestjs/common';
import type {
  ArgumentsHost,
  DynamicModule,
  ExceptionFilter,
  INestApplication,
  ModuleMetadata,
} from '@nestjs/common';
import { APP_FILTER, APP_GUARD, NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { AuthInfo, Verifier } from 'resource-guard';
import {
  Auth,
  RequireAuth,
  ResourceGuard,
  ResourceGuardModule,
  type HttpRequest,
} from 'resource-guard/nestjs';
import { jwks, key, token, useAdapterFixture, verifier } from './helpers/adapter-fixture.ts';
import { bearer } from './helpers/http.ts';
import { AUDIENCE, ISSUER, m2mClaims, mint } from './helpers/keys.ts';

useAdapterFixture({ resourceMetadata: { scopesSupported: ['read:products'] } });

@Controller()
class OpenController {
  @Get('open')
  open() {
    return 'open';
  }
}

@Controller('products')
@RequireAuth({ scopes: ['read:products'] })
class ProductsController {
  @Get()
  list(@Auth() auth: AuthInfo) {
    return { client: auth.clientId, scopes: auth.scopes };
  }

  @Post()
  @RequireAuth({ scopes: ['write:products'], errors: 'throw' })
  create() {
    return { created: true };
  }
}

@Controller('orgs/:orgId')
class OrgController {
  @Get('members')
  @RequireAuth({ organization: (req) => req.params.orgId })
  members(@Param('orgId') orgId: string, @Auth() auth: AuthInfo) {
    return { orgId, organization: auth.organizationId };
  }
}

/** A user's filter for `errors: 'throw'`: the AuthError, rendered its own way. */
@Catch(AuthError)
class AuthErrors implements ExceptionFilter {
  catch(error: AuthError, host: ArgumentsHost) {
    const reply = host.switchToHttp().getResponse<{ raw?: unknown }>();
    const res = (reply.raw ?? reply) as ServerResponse;
    res
      .writeHead(error.status, { ...error.headers, 'content-type': 'application/json' })
      .end(JSON.stringify({ custom: error.reason }));
  }
}

type Platform = 'express' | 'fastify';

interface Running {
  readonly app: INestApplication;
  readonly url: string;
  close(): Promise<void>;
}

async function start(platform: Platform, module: DynamicModule | ModuleMetadata): Promise<Running> {
  const adapter = platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(module, adapter, { logger: false });
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as Server;
  return {
    app,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await app.close();
    },
  };
}

const appModule = (extra: ModuleMetadata = {}): ModuleMetadata => ({
  imports: [ResourceGuardModule.forRoot({ verifier }), ...(extra.imports ?? [])],
  controllers: [OpenController, ProductsController, OrgController, ...(extra.controllers ?? [])],
  providers: [{ provide: APP_FILTER, useClass: AuthErrors }, ...(extra.providers ?? [])],
});

describe.each(['express', 'fastify'] as const)('NestJS on %s', (platform) => {
  let api: Running;
  beforeAll(async () => {
    api = await start(platform, appModule());
  });
  afterAll(() => api.close());

  it("Nest's own exception layer answers exactly the contract: status, headers, JSON body", async () => {
    const answer = await fetch(`${api.url}/products`, { headers: bearer('abc{}') });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="https:\/\/shopping\.api", error="invalid_request", error_description="[^"]+", resource_metadata="https:\/\/shopping\.api\/\.well-known\/oauth-protected-resource"$/,
    );
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Object.keys((await answer.json()) as object).sort()).toEqual([
      'error',
      'error_description',
    ]);
    const anonymous = await fetch(`${api.url}/products`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({
      error: 'missing_token',
      error_description: expect.any(String) as string,
    });
  });

  it('@Auth() is the verified AuthInfo; the controller requirement guards the handler', async () => {
    const answer = await fetch(`${api.url}/products`, { headers: bearer(token) });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({
      client: 'app-123',
      scopes: ['read:products', 'write:products'],
    });
    const readOnly = await mint(key, m2mClaims({ scope: 'write:products' }));
    const denied = await fetch(`${api.url}/products`, { headers: bearer(readOnly) });
    expect(denied.status).toBe(403);
    expect(denied.headers.get('www-authenticate')).toContain('scope="read:products"');
  });

  it("a handler's @RequireAuth replaces the controller's", async () => {
    const writer = await mint(key, m2mClaims({ scope: 'write:products' }));
    const answer = await fetch(`${api.url}/products`, { method: 'POST', headers: bearer(writer) });
    expect(answer.status).toBe(201);
  });

  it("errors: 'throw' hands the AuthError itself to the app's exception filters", async () => {
    const answer = await fetch(`${api.url}/products`, { method: 'POST' });
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe(
      'Bearer realm="https://shopping.api", resource_metadata="https://shopping.api/.well-known/oauth-protected-resource"',
    );
    expect(await answer.json()).toEqual({ custom: 'missing_token' });
  });

  it('organization: (req) => req.params.orgId reads the route parameter on either platform', async () => {
    const acme = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const ok = await fetch(`${api.url}/orgs/acme/members`, { headers: bearer(acme) });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ orgId: 'acme', organization: 'acme' });
    const other = await fetch(`${api.url}/orgs/globex/members`, { headers: bearer(acme) });
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error: string }).error).toBe('organization_mismatch');
  });

  it('serves the RFC 9728 metadata (GET and HEAD), and leaves other routes alone', async () => {
    const answer = await fetch(`${api.url}/.well-known/oauth-protected-resource`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('cache-control')).toBe('public, max-age=3600');
    expect(((await answer.json()) as { resource: string }).resource).toBe(AUDIENCE);
    const head = await fetch(`${api.url}/.well-known/oauth-protected-resource`, {
      method: 'HEAD',
    });
    expect(head.status).toBe(200);
    expect((await fetch(`${api.url}/open`)).status).toBe(200);
  });

  it('a bad option is a TypeError at start-up (app.init), not a 500 per request', async () => {
    @Controller()
    class Misconfigured {
      @Get()
      @RequireAuth({ scopes: ['read products'] })
      get() {
        return 'never';
      }
    }
    const app = await NestFactory.create(
      { imports: [ResourceGuardModule.forRoot({ verifier })], controllers: [Misconfigured] },
      platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
      { logger: false, abortOnError: false },
    );
    await expect(app.init()).rejects.toThrow(TypeError);
    await app.close();
  });

  it('builds one route guard per @RequireAuth at start-up, never per request', async () => {
    let built = 0;
    const counting = Object.create(verifier, {
      guard: {
        value: (...args: Parameters<Verifier['guard']>) => {
          built += 1;
          return verifier.guard(...args);
        },
      },
    }) as Verifier;
    const counted = await start(platform, {
      imports: [ResourceGuardModule.forRoot({ verifier: counting })],
      controllers: [ProductsController, OrgController],
    });
    try {
      expect(built).toBe(3);
      for (let i = 0; i < 3; i += 1) {
        expect((await fetch(`${counted.url}/products`, { headers: bearer(token) })).status).toBe(
          200,
        );
      }
      expect(built).toBe(3);
    } finally {
      await counted.close();
    }
  });

  it("a controller's and a handler's @RequireAuth verify a request once", async () => {
    let calls = 0;
    @Controller('orgs/:orgId')
    @RequireAuth({ scopes: ['read:products'] })
    class Twice {
      @Get()
      @RequireAuth({ organization: (req) => (calls++, req.params.orgId) })
      get() {
        return 'ok';
      }
    }
    const app = await start(platform, {
      imports: [ResourceGuardModule.forRoot({ verifier })],
      controllers: [Twice],
    });
    try {
      const acme = await mint(key, m2mClaims({ organization_id: 'acme' }));
      expect((await fetch(`${app.url}/orgs/acme`, { headers: bearer(acme) })).status).toBe(200);
      expect(calls).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('forRootAsync builds the verifier from injected providers; APP_GUARD passes unguarded routes', async () => {
    const VERIFIER_CONFIG = Symbol('config');
    @Module({
      providers: [{ provide: VERIFIER_CONFIG, useValue: { jwksUri: jwks.url } }],
      exports: [VERIFIER_CONFIG],
    })
    class ConfigModule {}
    @Controller('me')
    class MeController {
      @Get()
      @RequireAuth()
      me(@Auth() auth: AuthInfo, @Req() req: HttpRequest) {
        return { subject: auth.subject, hasHeaders: typeof req.headers === 'object' };
      }
    }
    const app = await start(platform, {
      imports: [
        ResourceGuardModule.forRootAsync({
          imports: [ConfigModule],
          inject: [VERIFIER_CONFIG],
          useFactory: (config: { jwksUri: string }) => ({
            verifier: createVerifier({ issuer: ISSUER, audience: AUDIENCE, ...config }),
          }),
        }),
      ],
      controllers: [OpenController, MeController],
      providers: [{ provide: APP_GUARD, useClass: ResourceGuard }],
    });
    try {
      expect((await fetch(`${app.url}/open`)).status).toBe(200);
      expect((await fetch(`${app.url}/me`)).status).toBe(401);
      const me = await fetch(`${app.url}/me`, { headers: bearer(token) });
      expect(await me.json()).toEqual({ subject: 'app-123', hasHeaders: true });
    } finally {
      await app.close();
    }
  });

  it('a guarded handler outside HTTP (rpc, ws, graphql) is refused with a TypeError that says why; an unguarded one passes', async () => {
    const app = await start(platform, appModule());
    try {
      const guard = app.app.get(ResourceGuard);
      const handler = Object.getOwnPropertyDescriptor(ProductsController.prototype, 'list')
        ?.value as () => unknown;
      const open = Object.getOwnPropertyDescriptor(OpenController.prototype, 'open')
        ?.value as () => unknown;
      // What each transport hands a guard as its first argument: a message payload, a socket, a
      // GraphQL root; the token-bearing headers are nowhere Nest's HTTP layer would look.
      const message = { headers: bearer(token), authorization: `Bearer ${token}` };
      for (const type of ['rpc', 'ws', 'graphql']) {
        const context = new ExecutionContextHost(
          [message, {}, {}, {}],
          ProductsController,
          handler,
        );
        context.setType(type);
        expect(() => guard.canActivate(context)).toThrow(
          new TypeError(
            `@RequireAuth() guards HTTP routes; this handler runs in a '${type}' context`,
          ),
        );
        const unguarded = new ExecutionContextHost([message], OpenController, open);
        unguarded.setType(type);
        expect(guard.canActivate(unguarded)).toBe(true);
      }
    } finally {
      await app.close();
    }
  });

  it('@Auth() on a route without @RequireAuth is a programming error (500), never undefined', async () => {
    @Controller('unguarded')
    class Unguarded {
      @Get()
      get(@Auth() auth: AuthInfo) {
        return { auth };
      }
    }
    const app = await start(platform, {
      imports: [ResourceGuardModule.forRoot({ verifier })],
      controllers: [Unguarded],
    });
    try {
      expect((await fetch(`${app.url}/unguarded`, { headers: bearer(token) })).status).toBe(500);
    } finally {
      await app.close();
    }
  });
});
