/**
 * What is specific to each adapter; everything they share is in contract/contract.test.ts.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import Koa from 'koa';
import { describe, expect, it } from 'vitest';
import { AuthError } from 'resource-guard';
import type { AuthInfo } from 'resource-guard';
import { requireAuth as expressAuth } from 'resource-guard/express';
import { requireAuth as fastifyAuth, resourceGuard } from 'resource-guard/fastify';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import { key, useAdapterFixture, verifier } from './helpers/adapter-fixture.ts';
import { bearer } from './helpers/http.ts';
import { m2mClaims, mint } from './helpers/keys.ts';

useAdapterFixture();

async function serve(handler: Parameters<typeof createServer>[1]) {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe('express', () => {
  it("errors: 'throw' hands the AuthError to the app's error handler (next(err))", async () => {
    const app = express();
    app.get(
      '/',
      expressAuth(verifier, { scopes: ['read:products'], errors: 'throw' }),
      (_req, res) => {
        res.send('ok');
      },
    );
    app.use(
      (
        error: unknown,
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        const authError = error as AuthError;
        res.status(authError.status).set(authError.headers).json({ custom: authError.reason });
      },
    );
    const server = await serve(app);
    try {
      const answer = await fetch(`${server.url}/`, {
        headers: { authorization: 'Bearer abc.def.ghi' },
      });
      expect(answer.status).toBe(401);
      expect(await answer.json()).toEqual({ custom: 'malformed_token' });
      expect(answer.headers.get('www-authenticate')).toMatch(/invalid_token/);
    } finally {
      await server.close();
    }
  });

  it('never mutates the options it is given', async () => {
    const options = Object.freeze({ scopes: Object.freeze(['read:products']), any: false });
    expect(() => expressAuth(verifier, options)).not.toThrow();
    expect(() => koaAuth(verifier, options)).not.toThrow();
    expect(() => fastifyAuth(verifier, options)).not.toThrow();
  });

  it('refuses bad requirements when the route is declared, not per request', () => {
    expect(() => expressAuth(verifier, { scopes: ['read products'] })).toThrow(TypeError);
    expect(() => koaAuth(verifier, { scopes: ['"'] })).toThrow(TypeError);
    expect(() => fastifyAuth(verifier, { any: 'yes' as never })).toThrow(TypeError);
  });
});

describe('koa', () => {
  it("errors: 'throw' lets Koa's own error handling render status and headers", async () => {
    const app = new Koa();
    app.use(koaAuth(verifier, { errors: 'throw' }));
    app.use((ctx) => {
      ctx.body = 'ok';
    });
    app.silent = true;
    const server = await serve(app.callback());
    try {
      const answer = await fetch(`${server.url}/`);
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="https://shopping.api"');
    } finally {
      await server.close();
    }
  });

  it('sets ctx.state.auth', async () => {
    const app = new Koa();
    app.use(koaAuth(verifier));
    app.use((ctx) => {
      ctx.body = { sub: (ctx.state.auth as AuthInfo).subject };
    });
    const server = await serve(app.callback());
    try {
      const answer = await fetch(`${server.url}/`, {
        headers: bearer(await mint(key)),
      });
      expect(await answer.json()).toEqual({ sub: 'app-123' });
    } finally {
      await server.close();
    }
  });
});

describe('fastify', () => {
  async function app(configure: (instance: FastifyInstance) => void) {
    const instance = Fastify();
    await instance.register(resourceGuard, { verifier });
    configure(instance);
    await instance.ready();
    return instance;
  }

  it('the plugin declares request.auth (null on unguarded routes) and fastify.requireAuth', async () => {
    const instance = await app((f) => {
      f.get('/open', async (request) => ({ auth: request.auth }));
      f.get(
        '/guarded',
        { onRequest: f.requireAuth({ scopes: ['read:products'] }) },
        async (request) => ({
          sub: request.auth?.subject,
        }),
      );
    });
    expect((await instance.inject({ url: '/open' })).json()).toEqual({ auth: null });
    const token = await mint(key);
    const guarded = await instance.inject({
      url: '/guarded',
      headers: bearer(token),
    });
    expect(guarded.json()).toEqual({ sub: 'app-123' });
    const denied = await instance.inject({
      url: '/guarded',
      headers: bearer(await mint(key, m2mClaims({ scope: 'other' }))),
    });
    expect(denied.statusCode).toBe(403);
    expect(denied.headers['www-authenticate']).toContain('scope="read:products"');
    await instance.close();
  });

  it('runs before the body is parsed (onRequest): an unauthenticated huge body is never read', async () => {
    let parsed = false;
    const instance = await app((f) => {
      f.addHook('preValidation', async () => {
        parsed = true;
      });
      f.post('/write', { onRequest: fastifyAuth(verifier) }, async () => 'ok');
    });
    const answer = await instance.inject({
      method: 'POST',
      url: '/write',
      headers: { 'content-type': 'application/json' },
      payload: '{"x":1}',
    });
    expect(answer.statusCode).toBe(401);
    expect(parsed).toBe(false);
    await instance.close();
  });

  it("errors: 'throw' hands the AuthError to Fastify's error handler", async () => {
    const instance = await app((f) => {
      f.setErrorHandler((error, _request, reply) => {
        expect(error).toBeInstanceOf(AuthError);
        const authError = error as unknown as AuthError;
        return reply
          .code(authError.status)
          .headers(authError.headers)
          .send({ custom: authError.reason });
      });
      f.get('/', { onRequest: fastifyAuth(verifier, { errors: 'throw' }) }, async () => 'ok');
    });
    const answer = await instance.inject({ url: '/' });
    expect(answer.statusCode).toBe(401);
    expect(answer.json()).toEqual({ custom: 'missing_token' });
    await instance.close();
  });

  it("errors: 'throw' with Fastify's default handler still answers with the right status", async () => {
    const instance = await app((f) => {
      f.get('/', { onRequest: fastifyAuth(verifier, { errors: 'throw' }) }, async () => 'ok');
    });
    const answer = await instance.inject({ url: '/', headers: { authorization: 'Bearer' } });
    expect(answer.statusCode).toBe(400);
    expect(answer.headers['www-authenticate']).toMatch(/invalid_request/);
    await instance.close();
  });
});
