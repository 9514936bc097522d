/**
 * Session 26, developer experience as a trust question: what an application developer configures
 * (claim rules, scopes with `any`, organizations, optional authentication, per-call requirements,
 * `logto()`, the kit, every adapter's way of saying the same thing, the testing helpers), written
 * the way a real codebase writes it (a route table read from JSON, options spread from a config
 * object, frozen objects, numbers from an ID service), must never end up LOOSER than what was
 * asked for or than the README promises without a TypeError where it was declared.
 *
 * A fault is an `it.fails` under a `// FAULT (severity): ...` comment (its proposed fix is in
 * /tmp/s26/devx/fix-<n>.patch); a plain `it` pins behaviour found sound.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Hapi from '@hapi/hapi';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { createVerifier, logto } from 'resource-guard';
import type { AuthError, AuthInfo, Requirements, Verifier } from 'resource-guard';
import { routeGuard } from 'resource-guard/kit';
import type { Outcome } from 'resource-guard/kit';
import { requireAuth as expressAuth } from 'resource-guard/express';
import { requireAuth as fastifyAuth } from 'resource-guard/fastify';
import { resourceGuard, SCHEME } from 'resource-guard/hapi';
import type { StrategyOptions } from 'resource-guard/hapi';
import { requireAuth as honoAuth } from 'resource-guard/hono';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import { createDpopKey, createTestIssuer } from 'resource-guard/testing';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint, signRaw } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

const request = (token?: string) => ({
  headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
});

let shared: Promise<{ key: TestKey; verifier: Verifier }> | undefined;
/** One static ES256 key and a verifier on it (no network), shared by the file. */
function fixture() {
  shared ??= (async () => {
    const key = await makeKey('ES256');
    return { key, verifier: staticVerifier(key) };
  })();
  return shared;
}

const staticVerifier = (key: TestKey, extra: Record<string, unknown> = {}) =>
  createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] }, ...extra });

/** A token with the given claims over Logto's M2M shape. */
async function tokenWith(claims: Record<string, unknown> = {}) {
  const { key } = await fixture();
  return mint(key, m2mClaims(claims));
}

/** A route declared with `requirements`: TypeError at declaration, or its outcome for `token`. */
async function declared(verifier: Verifier, requirements: unknown, token: string) {
  let guard;
  try {
    guard = verifier.guard(requirements as Requirements);
  } catch (error) {
    if (error instanceof TypeError) return 'TypeError';
    throw error;
  }
  return outcome(guard(request(token)));
}

async function listen(server: Server) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    get: (path: string, headers: Record<string, string> = {}) =>
      fetch(`http://127.0.0.1:${port}${path}`, { headers }).then((r) => r.status),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * One route with `options` on every adapter (Express, Koa, Fastify, Hono, Hapi, the kit); returns
 * the status each answers `headers` with (a TypeError at declaration is `'TypeError'`).
 */
async function everyAdapter(
  verifier: Verifier,
  options: Record<string, unknown>,
  headers: Record<string, string>,
): Promise<Record<string, number | string>> {
  const o = options as never;
  const mode = options.optional === true ? 'optional' : 'required';
  const answers: Record<string, number | string> = {};
  const attempt = async (name: string, run: () => Promise<number>) => {
    try {
      answers[name] = await run();
    } catch (error) {
      if (!(error instanceof TypeError && error.message.startsWith('resource-guard'))) throw error;
      answers[name] = 'TypeError';
    }
  };
  await attempt('express', async () => {
    const app = express();
    app.get('/', expressAuth(verifier, o), (_req, res) => void res.json({ ok: true }));
    const server = await listen(createServer(app));
    try {
      return await server.get('/', headers);
    } finally {
      await server.close();
    }
  });
  await attempt('koa', async () => {
    const app = new Koa();
    const guard = koaAuth(verifier, o);
    app.use(async (ctx, next) => guard(ctx, next));
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    const server = await listen(createServer(app.callback()));
    try {
      return await server.get('/', headers);
    } finally {
      await server.close();
    }
  });
  await attempt('fastify', async () => {
    const app = Fastify();
    app.get('/', { onRequest: fastifyAuth(verifier, o) }, () => ({ ok: true }));
    try {
      return (await app.inject({ url: '/', headers })).statusCode;
    } finally {
      await app.close();
    }
  });
  await attempt('hono', async () => {
    const app = new Hono().get('/', honoAuth(verifier, o), (c) => c.json({ ok: true }));
    return (await app.request('/', { headers })).status;
  });
  await attempt('hapi', async () => {
    const server = Hapi.server();
    await server.register({ plugin: resourceGuard, options: { verifier } });
    server.auth.strategy('route', SCHEME, options as StrategyOptions);
    server.route({
      method: 'GET',
      path: '/',
      options: { auth: { strategy: 'route', mode } },
      handler: () => 'ok',
    });
    return (await server.inject({ url: '/', headers })).statusCode;
  });
  await attempt('kit', async () => {
    const guard = routeGuard<unknown>(verifier, o);
    const result: Outcome<number> = {
      pass: () => 200,
      respond: (error) => error.status,
      fail: () => 500,
    };
    return guard.run(undefined, { headers }, result);
  });
  return answers;
}

// ---------------------------------------------------------------------------------------------
// 1. Scopes with `any`
// ---------------------------------------------------------------------------------------------

describe('scopes with any: a route table entry whose scope list is absent', () => {
  // FIXED (was a fault, medium): `{ any: true }` with `scopes` absent (a route table read from JSON or YAML
  // whose entry lost its `scopes`, a spread `{ ...base, any: true }` whose base has none, a lookup
  // `scopes: scopesFor[route]` that misses) admits EVERY valid token of the API, one with no scope
  // at all included, and no TypeError says so. Session 19 closed the same hole for `scopes: []`
  // ("any one of no scopes is unsatisfiable: a list built at run time that comes out empty must
  // not open an `any` route to every token"); an absent list is the same mistake one step earlier,
  // and the README promises `any` as "any one of `scopes` is enough".
  // Root cause: src/requirements.ts:104-105 (`checkScopes` returns before `any` is considered when
  // `scopes` is undefined); src/options.ts:330 accepts `any: true` without `scopes`.
  // Fix: /tmp/s26/devx/fix-1.patch (any one of no scopes admits no token, absent or empty).
  it('{ any: true } without scopes does not open the route to a token with no scope', async () => {
    const { verifier } = await fixture();
    const noScope = await tokenWith({ scope: undefined });
    // An entry of a route table read from JSON, its `scopes` forgotten.
    const requirements = JSON.parse('{ "any": true }') as Requirements;
    expect(['TypeError', '403 insufficient_scope']).toContain(
      await declared(verifier, requirements, noScope),
    );
    expect(await outcome(verifier.verify(noScope, { any: true }))).toBe('403 insufficient_scope');
  });

  // FIXED (was a fault, medium, the same): every adapter declares it the same way, and every one lets it in.
  it('{ any: true } without scopes, on every adapter: no adapter lets a scope-less token in', async () => {
    const { verifier } = await fixture();
    const noScope = await tokenWith({ scope: undefined });
    const answers = await everyAdapter(
      verifier,
      { any: true },
      {
        authorization: `Bearer ${noScope}`,
      },
    );
    for (const answer of Object.values(answers)) expect(['TypeError', 403]).toContain(answer);
  });

  it('the sound neighbours: any over listed scopes; an empty list; all-of over none', async () => {
    const { verifier } = await fixture();
    const read = await tokenWith({ scope: 'read' });
    const none = await tokenWith({ scope: undefined });
    expect(await declared(verifier, { scopes: ['write', 'read'], any: true }, read)).toBe('ok');
    expect(await declared(verifier, { scopes: ['write', 'admin'], any: true }, read)).toBe(
      '403 insufficient_scope',
    );
    expect(await declared(verifier, { scopes: [], any: true }, none)).toBe(
      '403 insufficient_scope',
    );
    // Duplicates change nothing, in either mode.
    expect(await declared(verifier, { scopes: ['read', 'read'] }, read)).toBe('ok');
    expect(await declared(verifier, { scopes: ['write', 'write'], any: true }, read)).toBe(
      '403 insufficient_scope',
    );
  });

  it('scope lists as a config file gives them: a string, blanks, whitespace, a Set: TypeError', async () => {
    const { verifier } = await fixture();
    const token = await tokenWith({ scope: 'read write' });
    for (const scopes of [
      'read',
      'read write',
      [''],
      ['read '],
      [' read'],
      ['read\r'],
      ['read write'],
      new Set(['read']),
      [['read']],
      [1],
      null,
    ]) {
      expect(await declared(verifier, { scopes }, token)).toBe('TypeError');
    }
    // A comma is a scope-token character (RFC 6749 §3.3): one scope, which nobody granted.
    expect(await declared(verifier, { scopes: ['read,write'] }, token)).toBe(
      '403 insufficient_scope',
    );
    // A token's own scope string: exact tokens, case and Unicode as written.
    for (const scope of [
      'READ',
      'rеad' /* Cyrillic е */,
      'read\twrite',
      'readwrite',
      'read,write',
    ]) {
      expect(await declared(verifier, { scopes: ['read'] }, await tokenWith({ scope }))).toBe(
        '403 insufficient_scope',
      );
    }
  });

  it('scp arrays: only strings count, and `scope` wins when both are present', async () => {
    const { verifier } = await fixture();
    const scp = await tokenWith({ scope: undefined, scp: ['read'] });
    expect(await declared(verifier, { scopes: ['read'] }, scp)).toBe('ok');
    const both = await tokenWith({ scope: 'read', scp: ['admin'] });
    expect(await declared(verifier, { scopes: ['admin'] }, both)).toBe('403 insufficient_scope');
    const odd = await tokenWith({ scope: undefined, scp: ['read', 1] });
    expect(await declared(verifier, { scopes: ['read'] }, odd)).toBe('401 invalid_claim');
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Claim rules
// ---------------------------------------------------------------------------------------------

describe('claimEquals: values of other JSON types never match', () => {
  it('a number never equals its numeric string, true never "true", a string never [string]', async () => {
    const { verifier } = await fixture();
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ tenant: 42 }, { tenant: '42' }],
      [{ tenant: '42' }, { tenant: 42 }],
      [{ verified: true }, { verified: 'true' }],
      [{ verified: true }, { verified: 1 }],
      [{ verified: false }, { verified: 0 }],
      [{ verified: false }, { verified: null }],
      [{ verified: false }, {}],
      [{ tenant: 'acme' }, { tenant: ['acme'] }],
      [{ tenant: 'acme' }, { tenant: { id: 'acme' } }],
      [{ tenant: 'acme' }, { tenant: 'ACME' }],
      [{ tenant: 'café' }, { tenant: 'cafe\u0301' }], // NFC rule, NFD claim
      [{ 'org.id': 'acme' }, { org: { id: 'acme' } }], // no path lookup
      [{ tenant: '' }, {}],
    ];
    for (const [rule, claims] of cases) {
      const token = await tokenWith(claims);
      expect(await declared(verifier, { claimEquals: rule }, token)).toBe('403 claim_mismatch');
    }
    const ok = await tokenWith({ tenant: 'acme', level: 3, verified: true });
    expect(
      await declared(verifier, { claimEquals: { tenant: 'acme', level: 3, verified: true } }, ok),
    ).toBe('ok');
  });

  it('values the type allows and the runtime cannot compare are TypeErrors where declared', async () => {
    const { verifier } = await fixture();
    const token = await tokenWith({ tenant: 'acme' });
    for (const claimEquals of [
      {},
      { tenant: null },
      { tenant: undefined },
      { tenant: Number.NaN },
      { tenant: Number.POSITIVE_INFINITY },
      { tenant: ['acme'] },
      { tenant: new String('acme') },
      { tenant: { id: 'acme' } },
      { ' tenant': 'acme' },
      { 'tenant\r': 'acme' },
      new Map([['tenant', 'acme']]),
      Object.assign(Object.create({ inherited: 'x' }) as object, { tenant: 'acme' }),
    ]) {
      expect(await declared(verifier, { claimEquals }, token)).toBe('TypeError');
    }
  });

  // FIXED (was a fault, low): a number beyond 2^53 in `claimEquals` (a Snowflake-style numeric account or
  // tenant id, read from config with Number() or JSON.parse) is accepted, and compared after both
  // sides were rounded to a double: a token naming ANOTHER account (JSON `9007199254740993`)
  // equals a rule for 9007199254740992. The rule matches more than written, silently; the README
  // promises `===` on "a string, number or boolean".
  // Root cause: src/option-rules.ts:158 (`claimValue` accepts any finite number) and
  // src/requirements.ts:41 (compares JSON.parse's rounded number).
  // Fix: /tmp/s26/devx/fix-2.patch (a TypeError for an integer outside the safe range: give such
  // ids as strings; and an unsafe-integer claim never matches a number rule).
  it('claimEquals on an integer beyond 2^53: a token for the neighbouring account is refused', async () => {
    const { key, verifier } = await fixture();
    const claims = m2mClaims();
    // The issuer writes the account exactly (64-bit ids are common): `"account":9007199254740993`.
    const payload = JSON.stringify({ ...claims, account: 0 }).replace(
      '"account":0',
      '"account":9007199254740993',
    );
    const other = await signRaw(key, { alg: 'ES256', typ: 'at+jwt', kid: key.kid }, payload);
    const account = 2 ** 53; // the account the route is for: 9007199254740992
    expect(['TypeError', '403 claim_mismatch']).toContain(
      await declared(verifier, { claimEquals: { account } }, other),
    );
  });

  it('a safe integer is compared exactly', async () => {
    const { verifier } = await fixture();
    const token = await tokenWith({ level: Number.MAX_SAFE_INTEGER });
    expect(
      await declared(verifier, { claimEquals: { level: Number.MAX_SAFE_INTEGER } }, token),
    ).toBe('ok');
    expect(
      await declared(verifier, { claimEquals: { level: Number.MAX_SAFE_INTEGER - 1 } }, token),
    ).toBe('403 claim_mismatch');
  });
});

describe('claimIncludes: each value exactly, in an array or a space-separated string', () => {
  it('no substring, no case folding, no other separator, non-strings ignored', async () => {
    const { verifier } = await fixture();
    const rule = { claimIncludes: { roles: ['admin'] } };
    for (const roles of [
      'administrator',
      'superadmin',
      'Admin',
      'user,admin',
      'user\tadmin',
      'user\u00a0admin',
      ['Admin'],
      [['admin']],
      [{ admin: true }],
      { admin: true },
      true,
      1,
      null,
    ]) {
      expect(await declared(verifier, rule, await tokenWith({ roles }))).toBe('403 claim_mismatch');
    }
    for (const roles of ['user admin', ['user', 'admin'], [1, 'admin']]) {
      expect(await declared(verifier, rule, await tokenWith({ roles }))).toBe('ok');
    }
    // All of them, not any.
    expect(
      await declared(
        verifier,
        { claimIncludes: { roles: ['admin', 'owner'] } },
        await tokenWith({ roles: ['admin'] }),
      ),
    ).toBe('403 claim_mismatch');
  });

  it('empty value lists and blank values are TypeErrors, not rules that match everything', async () => {
    const { verifier } = await fixture();
    const token = await tokenWith({ roles: ['admin'] });
    for (const claimIncludes of [
      {},
      { roles: [] },
      { roles: [''] },
      { roles: 'admin' },
      { roles: [1] },
      { roles: new Set(['admin']) },
    ]) {
      expect(await declared(verifier, { claimIncludes }, token)).toBe('TypeError');
    }
  });
});

describe('requiredClaims: present means a value', () => {
  // FIXED (was a fault, low): `requiredClaims: ['tenant_id']` accepts a token whose `tenant_id` is JSON `null`
  // (a Logto custom JWT script that returns `user.customData.tenantId ?? null`). The README says
  // "Extra claims that must be present"; a handler that then filters by `auth.claims.tenant_id`
  // queries with null (in MongoDB, `{ tenant_id: null }` matches every document WITHOUT a
  // tenant). jose's own `requiredClaims` counts null as present too, so this is a judgment call;
  // the library's other presence rules (`iss`, `sub`, `client_id`, `organization_id`) refuse null
  // through their type checks, which a custom claim has none of.
  // Root cause: src/claims.ts:114 (`payload[claim] === undefined` is the only absence).
  // Fix: /tmp/s26/devx/fix-3.patch (null counts as absent: `missing_claim`).
  it('a required custom claim that is null is missing', async () => {
    const { key } = await fixture();
    const verifier = staticVerifier(key, { requiredClaims: ['tenant_id'] });
    const token = await mint(key, m2mClaims({ tenant_id: null }));
    expect(await outcome(verifier.verify(token))).toBe('401 missing_claim');
  });

  it('absent is missing; a dotted name is not a path; base claims that are null are refused', async () => {
    const { key } = await fixture();
    const verifier = staticVerifier(key, { requiredClaims: ['tenant_id', 'address.country'] });
    const both = { tenant_id: 't', 'address.country': 'NL' };
    expect(await outcome(verifier.verify(await mint(key, m2mClaims(both))))).toBe('ok');
    expect(
      await outcome(
        verifier.verify(await mint(key, m2mClaims({ tenant_id: 't', address: { country: 'NL' } }))),
      ),
    ).toBe('401 missing_claim');
    for (const claim of ['sub', 'client_id', 'jti']) {
      expect(
        await outcome(verifier.verify(await mint(key, m2mClaims({ ...both, [claim]: null })))),
      ).toBe('401 invalid_claim');
    }
    expect(() => staticVerifier(key, { requiredClaims: 'tenant_id' })).toThrow(TypeError);
    expect(() => staticVerifier(key, { requiredClaims: [' tenant_id'] })).toThrow(TypeError);
  });
});

describe('checks: only true allows', () => {
  it('truthy values, thenables and a later false all refuse; every rule is asked', async () => {
    const { verifier } = await fixture();
    const token = await tokenWith();
    const answers: unknown[] = [
      1,
      'yes',
      {},
      [],
      Promise.resolve(1),
      { then: (r: (v: boolean) => void) => r(true) },
    ];
    for (const answer of answers) {
      const checks = { rule: () => answer as boolean };
      expect(await declared(verifier, { checks }, token)).toBe('403 check_failed');
    }
    const later = { first: () => Promise.resolve(true), second: () => false };
    expect(await declared(verifier, { checks: later }, token)).toBe('403 check_failed');
    const frozen = Object.freeze({ a: () => true, b: async () => Promise.resolve(true) });
    expect(await declared(verifier, { checks: frozen }, token)).toBe('ok');
    for (const checks of [[() => true], {}, { rule: true }, new Map([['rule', () => true]])]) {
      expect(await declared(verifier, { checks }, token)).toBe('TypeError');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Options as a codebase writes them
// ---------------------------------------------------------------------------------------------

describe('route options from config objects', () => {
  it('frozen, null-prototype and getter-backed options are read once, as written', async () => {
    const { verifier } = await fixture();
    const read = await tokenWith({ scope: 'read' });
    const frozen = Object.freeze({ scopes: Object.freeze(['admin']) });
    expect(await declared(verifier, frozen, read)).toBe('403 insufficient_scope');
    const bare = Object.assign(Object.create(null) as object, { scopes: ['admin'] });
    expect(await declared(verifier, bare, read)).toBe('403 insufficient_scope');
    let reads = 0;
    const getter = {
      get scopes() {
        reads += 1;
        return reads === 1 ? ['admin'] : undefined;
      },
    };
    const guard = verifier.guard(getter as unknown as Requirements);
    expect(await outcome(guard(request(read)))).toBe('403 insufficient_scope');
    expect(await outcome(guard(request(read)))).toBe('403 insufficient_scope');
  });

  it('class instances, arrays and misspelt or misplaced keys are TypeErrors', async () => {
    const { verifier } = await fixture();
    const token = await tokenWith();
    class RouteConfig {
      scopes = ['admin'];
    }
    for (const options of [
      new RouteConfig(),
      [['admin']],
      { scope: ['admin'] },
      { Scopes: ['admin'] },
      { requiredClaims: ['tenant'] },
      { audience: 'x' },
      Object.defineProperty({}, 'scope', { value: ['admin'], enumerable: false }),
      { scopes: ['admin'], any: 'true' },
      { optional: 'false' },
      { machine: 1 },
    ]) {
      expect(await declared(verifier, options, token)).toBe('TypeError');
    }
  });

  it('every adapter reads the same route options the same way (scopes, machine, claim rules)', async () => {
    const { verifier } = await fixture();
    const user = await tokenWith({ sub: 'user-1', client_id: 'app-1', scope: 'read', roles: 'x' });
    const header = { authorization: `Bearer ${user}` };
    const expectAll = (answers: Record<string, number | string>, status: number | string) => {
      for (const [name, answer] of Object.entries(answers))
        expect([name, answer]).toEqual([name, status]);
    };
    expectAll(await everyAdapter(verifier, { scopes: ['read'] }, header), 200);
    expectAll(await everyAdapter(verifier, { scopes: ['admin'] }, header), 403);
    expectAll(await everyAdapter(verifier, { machine: true }, header), 403);
    expectAll(await everyAdapter(verifier, { claimIncludes: { roles: ['admin'] } }, header), 403);
    expectAll(await everyAdapter(verifier, { scope: ['read'] }, header), 'TypeError');
    expectAll(await everyAdapter(verifier, { organization: 'acme' }, header), 'TypeError');
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Hapi: its own route options on top of the strategy
// ---------------------------------------------------------------------------------------------

describe("Hapi's own access rules on resource-guard credentials", () => {
  async function hapiRoute(access: Record<string, unknown>) {
    const { verifier } = await fixture();
    const server = Hapi.server();
    await server.register({ plugin: resourceGuard, options: { verifier } });
    server.auth.strategy('api', SCHEME, {} satisfies StrategyOptions);
    server.route({
      method: 'GET',
      path: '/',
      options: { auth: { strategy: 'api', access: access as never } },
      handler: () => 'ok',
    });
    return async (claims: Record<string, unknown>) =>
      (
        await server.inject({
          url: '/',
          headers: { authorization: `Bearer ${await tokenWith(claims)}` },
        })
      ).statusCode;
  }

  // FIXED (was a fault, medium): Hapi's documented way to say "machine-to-machine only" is the route's
  // `auth.access.entity: 'app'` (and "end users only" `entity: 'user'`); the README says Hapi's own
  // `options.auth.access` rules "still work on top". Hapi tells a user from an app by
  // `credentials.user`, which the adapter never sets: every token counts as an app, so
  // `entity: 'app'` admits USER tokens (looser than written, no error anywhere), and
  // `entity: 'user'` refuses every token.
  // Root cause: adapters/hapi/index.ts:101 (`credentials: { auth, scope }`: no `user`/`app`) read
  // by node_modules/@hapi/hapi/lib/auth.js:320 (`credentials.user ? 'user' : 'app'`).
  // Fix: /tmp/s26/devx/fix-4.patch (credentials carry `user` for a user token, `app` always).
  it("access.entity 'app' refuses a user token; 'user' admits it", async () => {
    const appOnly = await hapiRoute({ entity: 'app' });
    expect(await appOnly({})).toBe(200); // M2M: sub === client_id
    expect(await appOnly({ sub: 'user-1', client_id: 'app-1' })).toBe(403);
    const userOnly = await hapiRoute({ entity: 'user' });
    expect(await userOnly({ sub: 'user-1', client_id: 'app-1' })).toBe(200);
    expect(await userOnly({})).toBe(403);
  });

  it('access.scope works on the granted scopes, exactly', async () => {
    const route = await hapiRoute({ scope: ['admin'] });
    expect(await route({ scope: 'admin' })).toBe(200);
    expect(await route({ scope: 'administrator read' })).toBe(403);
    expect(await route({ scope: undefined })).toBe(403);
    const forbidden = await hapiRoute({ scope: ['!banned'] });
    expect(await forbidden({ scope: 'read banned' })).toBe(403);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Optional authentication
// ---------------------------------------------------------------------------------------------

describe('optional routes never serve a bad credential anonymously', () => {
  it('on every adapter: none is anonymous; a bad, empty or expired Bearer token is refused', async () => {
    const { verifier } = await fixture();
    const expired = await tokenWith({ exp: Math.floor(Date.now() / 1000) - 3600 });
    const wrongAudience = await tokenWith({ aud: 'https://other.api' });
    const none = await everyAdapter(verifier, { optional: true }, {});
    for (const answer of Object.values(none)) expect(answer).toBe(200);
    for (const authorization of [
      'Bearer abc.def.ghi',
      'Bearer ',
      'Bearer',
      'bearer  ',
      'Bearer\tabc',
      `Bearer ${expired}`,
      `Bearer ${wrongAudience}`,
    ]) {
      const answers = await everyAdapter(verifier, { optional: true }, { authorization });
      for (const [name, answer] of Object.entries(answers)) {
        expect([authorization.slice(0, 12), name, answer]).toEqual([
          authorization.slice(0, 12),
          name,
          expect.toSatisfy((s: unknown) => s === 400 || s === 401),
        ]);
      }
    }
  });

  it('with a cookie or getToken source: a present but bad credential is refused, never anonymous', async () => {
    const { key } = await fixture();
    const verifier = staticVerifier(key, {
      cookie: 'access_token',
      getToken: (req: { headers: Record<string, unknown> }) => req.headers['x-token'] as string,
    });
    const guard = verifier.guard({ optional: true });
    expect(await outcome(guard({ headers: {} }))).toBe('ok');
    expect(await outcome(guard({ headers: { cookie: 'access_token=' } }))).toBe('ok');
    expect(await outcome(guard({ headers: { cookie: 'access_token=garbage' } }))).toMatch(
      /^40[01]/,
    );
    expect(await outcome(guard({ headers: { 'x-token': 'garbage' } }))).toMatch(/^40[01]/);
    expect(await outcome(guard({ headers: { cookie: 'access_token=a; access_token=b' } }))).toBe(
      '400 multiple_credentials',
    );
  });

  // FIXED (was a fault, low, type-level: `tsc` checks the expectTypeOf lines): the types said the answer is always
  // an AuthInfo unless the requirements are literally `{ optional: true }`. A route table typed
  // `Requirements` (where `optional` is a boolean) gets `Promise<AuthInfo>` from authenticate()
  // and a `Guard` that never answers undefined; an anonymous request then resolves `undefined`
  // into code the compiler let read `auth.subject` (a TypeError: a 500, not a 401). The kit and
  // the Hono adapter already answer `AuthInfo | undefined` to a `Requirements`-typed object.
  // Root cause: src/types.ts:217-220 and 223 (the catch-all overloads answer AuthInfo).
  // Fix: /tmp/s26/devx/fix-5.patch (a non-literal `optional` answers `AuthInfo | undefined`).
  it('authenticate() and guard() with Requirements typed as such resolve undefined, which their types omit', async () => {
    const { verifier } = await fixture();
    const table: Record<string, Requirements> = { '/feed': { optional: true } };
    const requirements = table['/feed'] as Requirements;
    const auth = await verifier.authenticate({ headers: {} }, requirements);
    expect(auth).toBeUndefined();
    const guard = verifier.guard(requirements);
    const anonymous = await guard({ headers: {} });
    expect(anonymous).toBeUndefined();
    expectTypeOf(auth).toEqualTypeOf<AuthInfo | undefined>();
    expectTypeOf(anonymous).toEqualTypeOf<AuthInfo | undefined>();
  });
});

// ---------------------------------------------------------------------------------------------
// 6. Organizations
// ---------------------------------------------------------------------------------------------

describe('organizations as developers wire them', () => {
  it('an organization function answering no string, a blank or a lookalike matches no token', async () => {
    const { key } = await fixture();
    const verifier = staticVerifier(key, { organizations: true });
    const orgToken = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const header = { authorization: `Bearer ${orgToken}` };
    const cases: unknown[] = [
      undefined,
      '',
      ' acme',
      'ACME',
      'acme ',
      ['acme'],
      42,
      { id: 'acme' },
    ];
    for (const org of cases) {
      const guard = routeGuard<unknown>(verifier, { organization: () => org as string });
      const status = await guard.run(
        undefined,
        { headers: header },
        {
          pass: () => 200,
          respond: (error: AuthError) => error.status,
          fail: () => 500,
        },
      );
      expect([org, status]).toEqual([org, 403]);
    }
    const exact = routeGuard<unknown>(verifier, { organization: () => 'acme' });
    expect(
      await exact.run(
        undefined,
        { headers: header },
        {
          pass: () => 200,
          respond: (error: AuthError) => error.status,
          fail: () => 500,
        },
      ),
    ).toBe(200);
  });

  it('per call: an organization from a header that is absent or repeated matches no token', async () => {
    const { key } = await fixture();
    const verifier = staticVerifier(key, { organizations: true });
    const orgToken = await mint(key, m2mClaims({ organization_id: 'acme' }));
    const global = await mint(key, m2mClaims());
    for (const organization of [undefined, '', ['acme', 'other'], null]) {
      const requirements = { organization } as unknown as Requirements;
      expect(await outcome(verifier.authenticate(request(orgToken), requirements))).toBe(
        '403 organization_mismatch',
      );
      expect(await outcome(verifier.authenticate(request(global), requirements))).toBe(
        '403 organization_mismatch',
      );
    }
    // A route naming none refuses an organization-scoped token unless it says anyOrganization.
    expect(await outcome(verifier.verify(orgToken))).toBe('403 organization_token');
    expect(await outcome(verifier.verify(orgToken, { anyOrganization: true }))).toBe('ok');
    // Both at once: a contradiction where declared.
    expect(() => verifier.guard({ organization: 'acme', anyOrganization: true })).toThrow(
      TypeError,
    );
    expect(() =>
      routeGuard<unknown>(verifier, { organization: () => 'acme', anyOrganization: true }),
    ).toThrow(TypeError);
  });

  it('an organization token (urn:logto:organization:<id>) needs the verifier option, then the route', async () => {
    const { key } = await fixture();
    const orgAud = await mint(key, m2mClaims({ aud: 'urn:logto:organization:acme' }));
    const plain = staticVerifier(key);
    expect(await outcome(plain.verify(orgAud, { organization: 'acme' }))).toBe(
      '401 audience_mismatch',
    );
    const orgs = staticVerifier(key, { organizations: true });
    expect(await outcome(orgs.verify(orgAud))).toBe('401 audience_mismatch');
    expect(await outcome(orgs.verify(orgAud, { organization: 'acme' }))).toBe('ok');
    expect(await outcome(orgs.verify(orgAud, { organization: 'acm' }))).toBe(
      '403 organization_mismatch',
    );
    const empty = await mint(key, m2mClaims({ aud: 'urn:logto:organization:' }));
    expect(await outcome(orgs.verify(empty, { anyOrganization: true }))).toBe(
      '401 audience_mismatch',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 7. logto() and the testing helpers
// ---------------------------------------------------------------------------------------------

describe('logto() preset', () => {
  it('keeps the strict profile and Logto algorithms unless told otherwise; refuses issuer/jwksUri', () => {
    const options = logto({ endpoint: 'https://Tenant.Logto.App/', audience: AUDIENCE });
    expect(options).toMatchObject({
      strict: true,
      issuer: ['https://tenant.logto.app/oidc'],
      jwksUri: 'https://tenant.logto.app/oidc/jwks',
    });
    expect(options.algorithms).not.toContain('EdDSA');
    const spread = { endpoint: 'https://tenant.logto.app', audience: AUDIENCE, strict: undefined };
    expect(logto(spread as unknown as Parameters<typeof logto>[0]).strict).toBe(true);
    for (const bad of [
      { endpoint: 'https://tenant.logto.app/oidc', audience: AUDIENCE },
      { endpoint: 'https://tenant.logto.app', audience: AUDIENCE, issuer: ISSUER },
      { endpoint: 'https://tenant.logto.app', audience: AUDIENCE, jwksUri: 'https://x/jwks' },
      { endpoint: 'https://tenant.logto.app', audience: AUDIENCE, scopes: ['read'] },
      { endpoint: 'https://tenant.logto.app', audience: AUDIENCE, customDomains: 'a.example' },
      { endpoint: 'https://tenant.logto.app', audience: AUDIENCE, customDomains: ['a.example/x'] },
    ]) {
      expect(() => logto(bad as Parameters<typeof logto>[0])).toThrow(TypeError);
    }
  });
});

describe('resource-guard/testing', () => {
  it('refuses to run under NODE_ENV=production and never widens a production verifier', async () => {
    vi.stubEnv('NODE_ENV', 'production');
    await expect(createTestIssuer()).rejects.toThrow(/NODE_ENV=production/);
    vi.unstubAllEnvs();
    const test = await createTestIssuer();
    const { key } = await fixture();
    const production = staticVerifier(key);
    // A test token means nothing to a verifier that does not trust the test issuer.
    expect(await outcome(production.verify(await test.mint({ claims: { iss: ISSUER } })))).toMatch(
      /^401 /,
    );
    // Its verifier options fetch nothing but its own JWKS.
    const fetchOf = test.verifierOptions.fetch as typeof globalThis.fetch;
    await expect(fetchOf('https://tenant.example.test/oidc/jwks')).rejects.toThrow(TypeError);
    // Its tokens carry exactly the scopes asked for.
    const verifier = createVerifier(test.verifierOptions);
    const read = await test.mint({ scopes: ['read', 'read'] });
    expect(await outcome(verifier.verify(read, { scopes: ['read', 'write'] }))).toBe(
      '403 insufficient_scope',
    );
    const key2 = await createDpopKey();
    expect(key2.jkt).toMatch(/^[\w-]{43}$/);
  });
});
