/**
 * What is specific to the Hapi adapter (the shared behaviour is in contract/contract.test.ts): the
 * scheme and its strategies, Hapi's auth modes, `errors: 'throw'` through `onPreResponse`, typed
 * credentials, and authentication before the payload is read. Requests go through
 * `server.inject`, Hapi's own test idiom (without its `auth` option, which skips authentication).
 */
import Hapi from '@hapi/hapi';
import type { Server } from '@hapi/hapi';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { AuthError } from 'resource-guard';
import type { AuthInfo } from 'resource-guard';
import { resourceGuard, SCHEME } from 'resource-guard/hapi';
import type { ResourceGuardRefs, StrategyOptions } from 'resource-guard/hapi';
import { key, useAdapterFixture, verifier } from './helpers/adapter-fixture.ts';
import { bearer } from './helpers/http.ts';
import { AUDIENCE, m2mClaims, mint } from './helpers/keys.ts';

useAdapterFixture({ resourceMetadata: {} });

/** The Authorization header of a fresh token granted `scope`. */
const scoped = async (scope = 'read:products') => bearer(await mint(key, m2mClaims({ scope })));

async function hapi(strategies: Record<string, StrategyOptions> = {}): Promise<Server> {
  const server = Hapi.server();
  await server.register({ plugin: resourceGuard, options: { verifier } });
  for (const [name, options] of Object.entries(strategies)) {
    server.auth.strategy(name, SCHEME, options);
  }
  return server;
}

describe('hapi', () => {
  it('a strategy sets request.auth.credentials: the AuthInfo, and the granted scopes as `scope`', async () => {
    const server = await hapi({ read: { scopes: ['read:products'] } });
    server.route<ResourceGuardRefs>({
      method: 'GET',
      path: '/',
      options: { auth: 'read' },
      handler(request) {
        expectTypeOf(request.auth.credentials.auth).toEqualTypeOf<AuthInfo>();
        const { auth, scope } = request.auth.credentials;
        return { sub: auth.subject, scope, strategy: request.auth.strategy };
      },
    });
    server.route({
      method: 'GET',
      path: '/untyped',
      options: { auth: 'read' },
      handler(request) {
        // Without ResourceGuardRefs: present on every request's credentials, but optional.
        expectTypeOf(request.auth.credentials.auth).toEqualTypeOf<AuthInfo | undefined>();
        return { client: request.auth.credentials.auth?.clientId };
      },
    });
    const headers = await scoped('read:products write:products');
    for (let i = 0; i < 2; i++) {
      // The second time is a repeat token, answered from the cache.
      const answer = await server.inject({ url: '/', headers });
      expect(answer.result).toEqual({
        sub: 'app-123',
        scope: ['read:products', 'write:products'],
        strategy: 'read',
      });
    }
    expect((await server.inject({ url: '/untyped', headers })).result).toEqual({
      client: 'app-123',
    });
  });

  it("Hapi's own access.scope still works on top of the granted scopes (with its own 403)", async () => {
    const server = await hapi({ token: {} });
    server.route({
      method: 'DELETE',
      path: '/products/{id}',
      options: { auth: { strategy: 'token', access: { scope: ['delete:{params.id}'] } } },
      handler: () => 'deleted',
    });
    const allowed = await server.inject({
      method: 'DELETE',
      url: '/products/p-1',
      headers: await scoped('delete:p-1'),
    });
    expect(allowed.statusCode).toBe(200);
    const denied = await server.inject({
      method: 'DELETE',
      url: '/products/p-2',
      headers: await scoped('delete:p-1'),
    });
    expect(denied.statusCode).toBe(403);
  });

  it('a required route answers a missing token with our challenge and body, not Hapi’s generic 401', async () => {
    const server = await hapi({ read: { scopes: ['read:products'] } });
    server.route({ method: 'GET', path: '/', options: { auth: 'read' }, handler: () => 'ok' });
    const answer = await server.inject({ url: '/' });
    expect(answer.statusCode).toBe(401);
    expect(answer.headers['www-authenticate']).toBe(
      'Bearer realm="https://shopping.api", resource_metadata="https://shopping.api/.well-known/oauth-protected-resource"',
    );
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(answer.payload)).toEqual({
      error: 'missing_token',
      error_description: expect.any(String) as string,
    });
    const denied = await server.inject({ url: '/', headers: await scoped('other') });
    expect(denied.statusCode).toBe(403);
    expect(denied.headers['www-authenticate']).toMatch(
      /error="insufficient_scope", .*scope="read:products"/,
    );
    expect(JSON.parse(denied.payload)).toMatchObject({ error: 'insufficient_scope' });
  });

  it("mode 'optional': no token goes on anonymous, a bad token is refused", async () => {
    const server = await hapi({ token: {} });
    server.route({
      method: 'GET',
      path: '/',
      options: { auth: { strategy: 'token', mode: 'optional' } },
      handler: (request) => ({ authenticated: request.auth.isAuthenticated }),
    });
    expect((await server.inject({ url: '/' })).result).toEqual({ authenticated: false });
    expect((await server.inject({ url: '/', headers: await scoped() })).result).toEqual({
      authenticated: true,
    });
    const bad = await server.inject({ url: '/', headers: { authorization: 'Bearer abc.def.ghi' } });
    expect(bad.statusCode).toBe(401);
    expect(JSON.parse(bad.payload)).toMatchObject({ error: 'invalid_token' });
  });

  it("a strategy's `optional: true` reports an anonymous request as missing: the route's mode decides", async () => {
    const server = await hapi({ maybe: { optional: true } });
    server.route({
      method: 'GET',
      path: '/optional',
      options: { auth: { strategy: 'maybe', mode: 'optional' } },
      handler: (request) => ({ authenticated: request.auth.isAuthenticated }),
    });
    server.route({
      method: 'GET',
      path: '/required',
      options: { auth: 'maybe' },
      handler: () => 'ok',
    });
    expect((await server.inject({ url: '/optional' })).result).toEqual({ authenticated: false });
    const required = await server.inject({ url: '/required' });
    expect(required.statusCode).toBe(401); // Hapi's own "Missing authentication"
    expect(required.headers['www-authenticate']).toBe('Bearer');
  });

  it("mode 'try': a bad token goes on, with the AuthError in request.auth.error.data", async () => {
    const server = await hapi({ token: {} });
    server.route({
      method: 'GET',
      path: '/',
      options: { auth: { strategy: 'token', mode: 'try' } },
      handler(request) {
        const { data } = request.auth.error as Error & { data?: unknown };
        return {
          authenticated: request.auth.isAuthenticated,
          reason: data instanceof AuthError ? data.reason : undefined,
        };
      },
    });
    const answer = await server.inject({
      url: '/',
      headers: { authorization: 'Bearer abc.def.ghi' },
    });
    expect(answer.result).toEqual({ authenticated: false, reason: 'malformed_token' });
  });

  it("errors: 'throw' keeps Boom's own body, with our status and headers, for onPreResponse", async () => {
    const server = await hapi({ plain: { errors: 'throw' }, custom: { errors: 'throw' } });
    server.route({
      method: 'GET',
      path: '/plain',
      options: { auth: 'plain' },
      handler: () => 'ok',
    });
    server.route({
      method: 'GET',
      path: '/custom',
      options: { auth: 'custom' },
      handler: () => 'ok',
    });
    server.ext('onPreResponse', (request, h) => {
      const { response } = request;
      if (request.path !== '/custom' || !('isBoom' in response)) return h.continue;
      expect(response.data).toBeInstanceOf(AuthError);
      const error = response.data as AuthError;
      return h.response({ custom: error.reason }).code(error.status).takeover();
    });
    const plain = await server.inject({ url: '/plain', headers: { authorization: 'Bearer' } });
    expect(plain.statusCode).toBe(400);
    expect(plain.headers['www-authenticate']).toMatch(/error="invalid_request"/);
    expect(JSON.parse(plain.payload)).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: expect.any(String) as string,
    });
    const custom = await server.inject({ url: '/custom' });
    expect(custom.statusCode).toBe(401);
    expect(custom.result).toEqual({ custom: 'missing_token' });
  });

  it('authenticates before the payload is read: an anonymous oversized or broken body is a 401', async () => {
    const server = await hapi({ write: { scopes: ['write:products'] } });
    let handled = false;
    server.route({
      method: 'POST',
      path: '/products',
      options: { auth: 'write', payload: { maxBytes: 64 } },
      handler: () => ((handled = true), 'ok'),
    });
    const json = { 'content-type': 'application/json' };
    for (const payload of ['x'.repeat(10_000), '{not json']) {
      const answer = await server.inject({
        method: 'POST',
        url: '/products',
        headers: json,
        payload,
      });
      expect(answer.statusCode).toBe(401);
    }
    const tooBig = await server.inject({
      method: 'POST',
      url: '/products',
      headers: { ...json, ...(await scoped('write:products')) },
      payload: JSON.stringify({ name: 'x'.repeat(100) }),
    });
    expect(tooBig.statusCode).toBe(413); // authenticated, then Hapi reads (and limits) the body
    expect(handled).toBe(false);
  });

  it('refuses bad requirements when the strategy is declared, and never mutates its options', async () => {
    const server = await hapi();
    expect(() =>
      server.auth.strategy('bad', SCHEME, { scopes: ['read products'] } satisfies StrategyOptions),
    ).toThrow(TypeError);
    expect(() => server.auth.strategy('worse', SCHEME, { any: 'yes' })).toThrow(TypeError);
    const options = Object.freeze({ scopes: Object.freeze(['read:products']), any: false });
    expect(() => server.auth.strategy('read', SCHEME, options)).not.toThrow();
  });

  it('serves the metadata without auth, also when a default strategy guards every route', async () => {
    const server = await hapi({ read: { scopes: ['read:products'] } });
    server.auth.default('read');
    server.route({ method: 'GET', path: '/', handler: () => 'ok' });
    expect((await server.inject({ url: '/' })).statusCode).toBe(401);
    const metadata = await server.inject({ url: '/.well-known/oauth-protected-resource' });
    expect(metadata.statusCode).toBe(200);
    expect(JSON.parse(metadata.payload)).toMatchObject({ resource: AUDIENCE });
  });

  it('an organization taken from the route parameters', async () => {
    const server = await hapi({
      org: { organization: (request) => String(request.params.orgId), anyOrganization: false },
    });
    server.route({
      method: 'GET',
      path: '/orgs/{orgId}/products',
      options: { auth: 'org' },
      handler: (request) => ({ org: request.auth.credentials.auth?.organizationId }),
    });
    const headers = {
      authorization: `Bearer ${await mint(key, m2mClaims({ organization_id: 'acme' }))}`,
    };
    expect((await server.inject({ url: '/orgs/acme/products', headers })).result).toEqual({
      org: 'acme',
    });
    expect((await server.inject({ url: '/orgs/other/products', headers })).statusCode).toBe(403);
  });

  it('a bug in an option is a 500 from Hapi, never a pass', async () => {
    const server = await hapi({
      broken: {
        organization: () => {
          throw new Error('bug');
        },
      },
    });
    server.route({ method: 'GET', path: '/', options: { auth: 'broken' }, handler: () => 'ok' });
    const answer = await server.inject({ url: '/', headers: await scoped() });
    expect(answer.statusCode).toBe(500);
    expect(answer.payload).not.toContain('bug');
  });
});
