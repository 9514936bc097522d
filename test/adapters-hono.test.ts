/**
 * What is specific to the Hono adapter; what every adapter shares is in contract/contract.test.ts
 * (the Hono target runs there through @hono/node-server). Here requests go through
 * `app.request()`, Hono's in-process fetch, as on Bun, Deno or Workers.
 */
import { Hono } from 'hono';
import type { Context, Next } from 'hono';
import { requestId } from 'hono/request-id';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { AuthError, createVerifier } from 'resource-guard';
import type { AuthInfo, Verifier } from 'resource-guard';
import { requireAuth, resourceMetadata } from 'resource-guard/hono';
import type { AuthEnv } from 'resource-guard/hono';
import { jwks, key, token, useAdapterFixture, verifier } from './helpers/adapter-fixture.ts';
import { bearer } from './helpers/http.ts';
import { AUDIENCE, ISSUER, m2mClaims, mint } from './helpers/keys.ts';

useAdapterFixture({ resourceMetadata: { scopesSupported: ['read:products'] } });

describe('requireAuth', () => {
  it("sets c.get('auth'), typed AuthInfo (not optional) in the route's handlers", async () => {
    const app = new Hono().get('/', requireAuth(verifier, { scopes: ['read:products'] }), (c) => {
      expectTypeOf(c.get('auth')).toEqualTypeOf<AuthInfo>();
      expectTypeOf(c.var.auth).toEqualTypeOf<AuthInfo>();
      return c.json({ sub: c.get('auth').subject, same: c.var.auth === c.get('auth') });
    });
    const answer = await app.request('/', { headers: bearer(token) });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ sub: 'app-123', same: true });
  });

  it("optional: true types c.get('auth') as AuthInfo | undefined; a bad token is still refused", async () => {
    const app = new Hono().get('/', requireAuth(verifier, { optional: true }), (c) => {
      expectTypeOf(c.get('auth')).toEqualTypeOf<AuthInfo | undefined>();
      return c.json({ sub: c.get('auth')?.subject ?? null });
    });
    expect(await (await app.request('/')).json()).toEqual({ sub: null });
    expect(await (await app.request('/', { headers: bearer(token) })).json()).toEqual({
      sub: 'app-123',
    });
    expect((await app.request('/', { headers: bearer('abc.def.ghi') })).status).toBe(401);
  });

  it('guards a whole prefix with app.use on a Hono<AuthEnv>', async () => {
    const app = new Hono<AuthEnv>();
    app.use('/api/*', requireAuth(verifier));
    app.get('/api/me', (c) => c.json({ client: c.get('auth').clientId }));
    expect((await app.request('/api/me')).status).toBe(401);
    expect(await (await app.request('/api/me', { headers: bearer(token) })).json()).toEqual({
      client: 'app-123',
    });
  });

  it('answers a rejection itself: status, challenge, JSON body; the handler never runs', async () => {
    let ran = false;
    const app = new Hono().get('/', requireAuth(verifier, { scopes: ['admin'] }), (c) => {
      ran = true;
      return c.text('ok');
    });
    const missing = await app.request('/');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe(
      'Bearer realm="https://shopping.api", resource_metadata="https://shopping.api/.well-known/oauth-protected-resource"',
    );
    expect(missing.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await missing.json()).toEqual({
      error: 'missing_token',
      error_description: expect.any(String),
    });
    const forbidden = await app.request('/', { headers: bearer(token) });
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('www-authenticate')).toContain('scope="admin"');
    expect(ran).toBe(false);
  });

  it('keeps headers set before it (c.header) on its rejections, as c.json does', async () => {
    const app = new Hono();
    app.use(requestId());
    app.get('/', requireAuth(verifier), (c) => c.text('ok'));
    const answer = await app.request('/', { headers: { 'x-request-id': 'req-42' } });
    expect(answer.status).toBe(401);
    expect(answer.headers.get('x-request-id')).toBe('req-42');
  });

  it('two Authorization headers, joined by Web Headers with ", ", are multiple_credentials', async () => {
    const app = new Hono().get('/', requireAuth(verifier), (c) => c.text('ok'));
    const headers = new Headers();
    headers.append('authorization', `Bearer ${token}`);
    headers.append('authorization', `Bearer ${token}`);
    const answer = await app.request('/', { headers });
    expect(answer.status).toBe(400);
    expect(answer.headers.get('www-authenticate')).toMatch(/error="invalid_request"/);
  });

  it("errors: 'throw' hands the AuthError itself to app.onError", async () => {
    const seen: unknown[] = [];
    const app = new Hono();
    app.get('/', requireAuth(verifier, { errors: 'throw' }), (c) => c.text('ok'));
    app.onError((error, c) => {
      seen.push(error);
      if (error instanceof AuthError) {
        return c.json({ custom: error.reason }, error.status, error.headers);
      }
      return c.json({ error: 'server_error' }, 500);
    });
    const answer = await app.request('/', { headers: bearer('abc.def.ghi') });
    expect(answer.status).toBe(401);
    expect(await answer.json()).toEqual({ custom: 'malformed_token' });
    expect(answer.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    expect(seen).toHaveLength(1);
    expect((seen[0] as AuthError).code).toBe('invalid_token');
  });

  it('reads the organization from a route parameter', async () => {
    const app = new Hono().get(
      '/orgs/:orgId/products',
      requireAuth(verifier, { organization: (c) => c.req.param('orgId') }),
      (c) => c.json({ organization: c.get('auth').organizationId }),
    );
    const acme = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const mine = await app.request('/orgs/acme/products', { headers: bearer(acme) });
    expect(await mine.json()).toEqual({ organization: 'acme' });
    const theirs = await app.request('/orgs/globex/products', { headers: bearer(acme) });
    expect(theirs.status).toBe(403);
    expect((await theirs.json()).error).toBe('organization_mismatch');
  });

  it('refuses bad options when the route is declared, not per request', () => {
    expect(() => requireAuth(verifier, { scopes: ['read products'] })).toThrow(TypeError);
    expect(() => requireAuth(verifier, { errors: 'next' as never })).toThrow(TypeError);
    expect(() => requireAuth({} as Verifier)).toThrow(TypeError);
    const options = Object.freeze({ scopes: Object.freeze(['read:products']) });
    expect(() => requireAuth(verifier, options)).not.toThrow();
  });

  it('for a repeat token, returns the promise of next() itself: no promise of its own', async () => {
    const guard = requireAuth(verifier);
    const set: Record<string, unknown> = {};
    const c = {
      req: { raw: new Request('http://localhost/', { headers: bearer(token) }) },
      set: (name: string, value: unknown) => (set[name] = value),
    } as unknown as Context<AuthEnv>;
    await guard(c, async () => {}); // verifies and caches the token
    const downstream = Promise.resolve();
    const next: Next = () => downstream;
    expect(guard(c, next)).toBe(downstream);
    expect((set.auth as AuthInfo).subject).toBe('app-123');
  });
});

describe('resourceMetadata', () => {
  it('serves the RFC 9728 document (GET and HEAD) and passes every other request on', async () => {
    const app = new Hono();
    app.use(resourceMetadata(verifier));
    app.get('*', (c) => c.text('next'));
    const path = '/.well-known/oauth-protected-resource';
    const answer = await app.request(path);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await answer.json()).toMatchObject({
      resource: AUDIENCE,
      authorization_servers: [ISSUER],
      scopes_supported: ['read:products'],
    });
    expect((await app.request(path, { method: 'HEAD' })).status).toBe(200);
    expect(await (await app.request(`${path}/x`)).text()).toBe('next');
    expect(await (await app.request(path, { method: 'POST' })).text()).not.toContain('resource');
  });

  it('needs the resourceMetadata option', () => {
    const plain = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: jwks.url });
    expect(() => resourceMetadata(plain)).toThrow(TypeError);
  });
});
