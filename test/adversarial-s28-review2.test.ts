/**
 * Adversarial review, session 28 (helper-66): 40c8bda (discovery read again after keys.maxAge),
 * 57d4242 (NestJS memo keeps its requirements; challenge headers), 8c21c84 (fastify-plugin 6).
 * Four findings, all FIXED in the commit after it: every JWKS fetch now reads the metadata first
 * (a failing re-read kept the old URL's keys fresh for good, unreported; an unknown kid refetched
 * the old URL), and Nest's memo keeps the route's handler (one requirements object on two routes
 * skipped the second route's organization check).
 * Real servers on 127.0.0.1, port 0; only `Date` is faked.
 */
import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type express from 'express';
import Fastify from 'fastify';
import { Controller, Get, Next, Param, Res } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { AuthInfo, Verifier } from 'resource-guard';
import { resourceGuard as fastifyGuard } from 'resource-guard/fastify';
import { Auth, RequireAuth, ResourceGuard, ResourceGuardModule } from 'resource-guard/nestjs';
import { bearer, jsonServer, rawRequest } from './helpers/http.ts';
import type { JsonRoute } from './helpers/http.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { clock, outcome } from './helpers/outcome.ts';
import { untilFresh } from './helpers/fresh.ts';
import { startNest } from './helpers/nest-app.ts';

// ───────────────────────────── 40c8bda: discovery read again ─────────────────────────────

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const close of closers.splice(0)) await close();
});

/** An issuer at `<origin>/oidc` whose metadata routes the test decides; closed after each test. */
async function issuerServer(route: (origin: string) => JsonRoute) {
  const server = await jsonServer(route);
  closers.push(server.close);
  return server;
}

const META = '/oidc/.well-known/openid-configuration';

/** An issuer whose metadata names `/keys-v1` or `/keys-v2` (both still served), or is down. */
async function movingIssuer(keys: { maxAge: number; cooldown: number; maxStale?: number }) {
  const [oldKey, newKey] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
  const state = { current: 'v1', metadataStatus: 200 };
  const server = await issuerServer((origin) => (path) => {
    if (path === META) {
      if (state.metadataStatus !== 200) return { status: state.metadataStatus, body: {} };
      return {
        status: 200,
        body: { issuer: `${origin}/oidc`, jwks_uri: `${origin}/keys-${state.current}` },
      };
    }
    if (path === '/keys-v1') return { status: 200, body: { keys: [oldKey.jwk] } };
    if (path === '/keys-v2') return { status: 200, body: { keys: [newKey.jwk] } };
    return undefined;
  });
  const verifier = createVerifier({
    issuer: server.issuer,
    audience: AUDIENCE,
    keys,
    cache: false,
  });
  const tokenOf = (key: TestKey) => mint(key, m2mClaims({ iss: server.issuer }));
  const count = (path: string) => server.hits.filter((hit) => hit === path).length;
  /** Lets background refreshes land (real timers keep running). */
  const settle = () => new Promise((r) => setTimeout(r, 150));
  return { ...server, state, verifier, oldKey, newKey, tokenOf, count, settle };
}

describe('40c8bda: a discovery re-read that keeps failing', () => {
  // FIXED (every JWKS fetch now reads the metadata first, and its failure is the fetch's). Was
  // (low): a failed re-read is swallowed (src/discovery.ts `read`'s rejection handler
  // returns the old URL with `resolvedAt = now`), so the key set sees a successful fetch from the
  // URL the metadata named long ago: its keys are *fresh* again, never stale, never past
  // `maxAge + maxStale`. While the issuer's metadata answers 503 (or 404, or an invalid document)
  // for good, the keys at the old URL (the stale copy 40c8bda is about) keep verifying for good,
  // where a cold verifier answers 503 and `maxStale` promises an end.
  it('keys from the old URL stop verifying once maxAge + maxStale has passed without metadata', async () => {
    const issuer = await movingIssuer({ maxAge: 60, cooldown: 0, maxStale: 60 });
    const time = clock();
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe('ok');
    issuer.state.metadataStatus = 503;
    // 10 minutes of metadata outage, a verification a minute (each one refreshes in the background).
    for (let minute = 1; minute <= 10; minute++) {
      time.advance(61);
      await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)));
      await issuer.settle();
    }
    expect(issuer.count(META)).toBeGreaterThan(5); // asked, failed every time
    const cold = createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, cache: false });
    const token = await issuer.tokenOf(issuer.oldKey);
    expect(await outcome(cold.verify(token))).toBe('503 keys_unavailable');
    // Observed: 'ok', 10 minutes past maxAge + maxStale (2 minutes) since the last metadata answer.
    expect(await outcome(issuer.verifier.verify(token))).toBe('503 keys_unavailable');
  });

  // FIXED. Was (low, same root cause): the failure is reported nowhere. health() says 'fresh' with
  // `lastError: null`, and `resource-guard:keys:fetch` publishes `outcome: 'ok'` for the old URL.
  it('a failed metadata re-read shows in health() and on resource-guard:keys:fetch', async () => {
    const issuer = await movingIssuer({ maxAge: 60, cooldown: 0 });
    const events: { outcome: string; url?: string }[] = [];
    const listener = (message: unknown) => events.push(message as (typeof events)[number]);
    subscribe('resource-guard:keys:fetch', listener);
    try {
      const time = clock();
      await issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey));
      issuer.state.metadataStatus = 503;
      time.advance(61);
      await issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey));
      // The refresh reads the metadata first; it fails, so no JWKS fetch follows.
      await vi.waitFor(() => expect(issuer.count(META)).toBe(2));
      await issuer.settle();
      const [health] = issuer.verifier.health();
      expect(issuer.count(META)).toBe(2);
      // Either would do: the operator can tell the issuer's metadata is failing.
      const reported =
        health?.lastError !== null || events.some((event) => event.outcome === 'error');
      expect({ health, events, reported }).toMatchObject({ reported: true });
    } finally {
      unsubscribe('resource-guard:keys:fetch', listener);
    }
  });
});

describe('40c8bda: an unknown kid just before the discovered URL is due', () => {
  // Control: with no refetch in between, the old URL's key is gone one refresh after maxAge.
  it('control: the removed key is refused once the refresh after maxAge has landed', async () => {
    const issuer = await movingIssuer({ maxAge: 60, cooldown: 0 });
    const time = clock();
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe('ok');
    issuer.state.current = 'v2';
    time.advance(90);
    await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey))); // stale: refresh
    await untilFresh(issuer.verifier); // the refresh landed (a fixed 150 ms sleep was thin)
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe(
      '401 unknown_kid',
    );
  });

  // FIXED (the refetch reads the metadata first). Was (low): a refetch for an unknown kid (paced only by the cooldown; any client can send
  // one) just before the discovered URL's maxAge runs out fetches the old URL again and makes its
  // keys fresh for another maxAge: the URL the metadata named at t=0 serves fresh keys until
  // ~2 x maxAge, while keys rotated in place are gone after one maxAge. Root cause: the keys'
  // `fetchedAt` (src/key-set.ts #build) ignores how old the URL they came from is.
  it('an unknown-kid refetch at maxAge - 1 s does not keep the old URL fresh for another maxAge', async () => {
    const issuer = await movingIssuer({ maxAge: 60, cooldown: 0 });
    const time = clock();
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe('ok');
    issuer.state.current = 'v2';
    time.advance(59);
    const stranger = await makeKey('ES256', 'no-such-kid');
    const probe = mint(stranger, m2mClaims({ iss: issuer.issuer }));
    expect(await outcome(issuer.verifier.verify(await probe))).toBe('401 unknown_kid');
    // The refetch reads the metadata first, and so the new URL.
    expect(issuer.count(META)).toBe(2);
    expect(issuer.count('/keys-v1')).toBe(1);
    expect(issuer.count('/keys-v2')).toBe(1);
    time.advance(31); // t = 90, as in the control
    await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)));
    await untilFresh(issuer.verifier); // any refresh landed (a fixed 150 ms sleep was thin)
    // Was: 'ok' (until t = 119, then one more stale answer).
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)))).toBe(
      '401 unknown_kid',
    );
  });
});

describe('40c8bda: sound', () => {
  it('a flood of unknown kids with the metadata due reads it once per cooldown, not per token', async () => {
    const issuer = await movingIssuer({ maxAge: 60, cooldown: 30 });
    const time = clock();
    await issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey));
    time.advance(61);
    const strangers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => makeKey('ES256', `kid-${i}`)),
    );
    const tokens = await Promise.all(
      strangers.map((k) => mint(k, m2mClaims({ iss: issuer.issuer }))),
    );
    for (let round = 0; round < 3; round++) {
      await Promise.all(tokens.map((t) => outcome(issuer.verifier.verify(t))));
      await untilFresh(issuer.verifier); // the refresh landed; then time for any other to be asked
      await issuer.settle();
    }
    expect(issuer.count(META)).toBe(2);
    expect(issuer.count('/keys-v1')).toBe(2);
  });

  it('metadata down after the move for one read: followed at the next maxAge; health and keys:fetch name the new URL', async () => {
    const issuer = await movingIssuer({ maxAge: 60, cooldown: 0 });
    const urls: string[] = [];
    const listener = (message: unknown) => urls.push((message as { url: string }).url);
    subscribe('resource-guard:keys:fetch', listener);
    try {
      const time = clock();
      await issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey));
      issuer.state.current = 'v2';
      time.advance(61);
      expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)))).toBe('ok');
      expect(issuer.verifier.health()[0]?.jwksUri).toBe(`${issuer.origin}/keys-v2`);
      expect(urls.at(-1)).toBe(`${issuer.origin}/keys-v2`);
    } finally {
      unsubscribe('resource-guard:keys:fetch', listener);
    }
  });

  it('clock stepped back or forward: the metadata is read again (an interval is never stretched)', async () => {
    const issuer = await movingIssuer({ maxAge: 60, cooldown: 0 });
    const time = clock();
    await issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey));
    issuer.state.current = 'v2';
    time.advance(-3600);
    expect(await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.newKey)))).toBe('ok');
    expect(issuer.count(META)).toBe(2);
    time.advance(7200);
    issuer.state.current = 'v1';
    await outcome(issuer.verifier.verify(await issuer.tokenOf(issuer.oldKey)));
    await untilFresh(issuer.verifier); // the refresh landed; then time for any other to be asked
    await issuer.settle();
    expect(issuer.count(META)).toBe(3);
  });

  it('maxAge 0: every key fetch reads the metadata first, never concurrently twice', async () => {
    const issuer = await movingIssuer({ maxAge: 0, cooldown: 0 });
    const token = await issuer.tokenOf(issuer.oldKey);
    await Promise.all(Array.from({ length: 10 }, () => issuer.verifier.verify(token)));
    await issuer.settle();
    expect(issuer.count(META)).toBe(issuer.count('/keys-v1'));
  });

  it('two issuers: each re-reads its own metadata', async () => {
    const a = await movingIssuer({ maxAge: 60, cooldown: 0 });
    const b = await movingIssuer({ maxAge: 60, cooldown: 0 });
    const verifier = createVerifier({
      issuer: [a.issuer, b.issuer],
      audience: AUDIENCE,
      keys: { maxAge: 60, cooldown: 0 },
      cache: false,
    });
    const time = clock();
    await verifier.verify(await a.tokenOf(a.oldKey));
    await verifier.verify(await b.tokenOf(b.oldKey));
    a.state.current = 'v2';
    time.advance(61);
    expect(await outcome(verifier.verify(await a.tokenOf(a.newKey)))).toBe('ok');
    expect(await outcome(verifier.verify(await b.tokenOf(b.oldKey)))).toBe('ok');
    await b.settle();
    expect(verifier.health().map((h) => h.jwksUri?.replace(/^.*\//, ''))).toEqual([
      'keys-v2',
      'keys-v1',
    ]);
  });
});

describe('40c8bda: request-scoped verifiers', () => {
  it('follow a moved JWKS after maxAge, and a metadata outage answers with the stale keys', async () => {
    const [oldKey, newKey] = await Promise.all([makeKey('ES256'), makeKey('ES256')]);
    const state = { current: 'v1', up: true };
    const server = await issuerServer((origin) => (path) => {
      if (path === META) {
        if (!state.up) return { status: 503, body: {} };
        return {
          status: 200,
          body: { issuer: `${origin}/oidc`, jwks_uri: `${origin}/keys-${state.current}` },
        };
      }
      if (path === '/keys-v1') return { status: 200, body: { keys: [oldKey.jwk] } };
      if (path === '/keys-v2') return { status: 200, body: { keys: [newKey.jwk] } };
      return undefined;
    });
    const verifier = createVerifier({
      issuer: server.issuer,
      audience: AUDIENCE,
      keys: { maxAge: 60, cooldown: 0 },
      cache: false,
      // Cloudflare Workers mode: no work outlives a request.
      requestScoped: true,
    });
    const tokenOf = (k: TestKey) => mint(k, m2mClaims({ iss: server.issuer }));
    const time = clock();
    const first = await Promise.all(
      Array.from({ length: 5 }, async () => outcome(verifier.verify(await tokenOf(oldKey)))),
    );
    expect(first).toEqual(Array(5).fill('ok'));
    expect(server.hits.filter((h) => h === META)).toHaveLength(1);
    state.current = 'v2';
    time.advance(61);
    expect(await outcome(verifier.verify(await tokenOf(newKey)))).toBe('ok');
    state.up = false;
    time.advance(61);
    expect(await outcome(verifier.verify(await tokenOf(newKey)))).toBe('ok');
  });
});

// ─────────────────────────────── 57d4242: the NestJS memo ───────────────────────────────

let key: TestKey;
let verifier: Verifier;
beforeAll(async () => {
  key = await makeKey();
  verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
});

const get = (base: string, path: string, headers: Record<string, string> = {}) =>
  rawRequest(base, path, 'GET', headers);

describe('57d4242: one requirements object, two routes, @Next()', () => {
  /**
   * One decorator, defined once and reused (a natural "OrgRoute" constant), so both routes carry
   * the SAME requirements object. Its `organization` reads a route parameter, and the two routes
   * name the parameter at different places: the same path gives each route another organization.
   */
  const OrgRoute = RequireAuth({ organization: (req) => req.params.orgId });

  @Controller('files')
  class Files {
    // /files/:orgId/:name: the organization's own file; `shared` is handed on.
    @Get(':orgId/:name')
    @OrgRoute
    own(
      @Param('name') name: string,
      @Res() res: express.Response,
      @Next() next: () => void,
      @Auth() auth: AuthInfo,
    ) {
      if (name !== 'readme') return next();
      res.json({ org: auth.organizationId });
    }
  }
  @Controller('files')
  class Exports {
    // /files/:format/:orgId: an organization's export.
    @Get(':format/:orgId')
    @OrgRoute
    exportOf(@Param('orgId') orgId: string) {
      return { export: orgId, secret: `data of ${orgId}` };
    }
  }

  let api: Awaited<ReturnType<typeof startNest>>;
  let orgA: string;
  beforeAll(async () => {
    orgA = await mint(key, m2mClaims({ organization_id: 'org-a' }));
    api = await startNest({
      imports: [ResourceGuardModule.forRoot({ verifier })],
      controllers: [Files, Exports],
    });
  });
  afterAll(() => api.close());

  it('control: an org-a token reads org-a, not org-b, on either route alone', async () => {
    expect((await get(api.url, '/files/org-a/readme', bearer(orgA))).status).toBe(200);
    expect((await get(api.url, '/files/org-b/readme', bearer(orgA))).status).toBe(403);
  });

  // FIXED (the memo keeps the route's handler too). Was (low): route 1 checks org-a (its :orgId), hands on with @Next(); route 2's guard
  // finds the memo's requirements identical (the same object) and skips, though its :orgId is
  // org-b: org-a's token gets org-b's export. adapters/nestjs/index.ts:157 (`verified.get(req)
  // ?.requirements === requirements`) assumes one requirements object is one check; with an
  // `organization` function the check also depends on the route's params.
  it("an org-a token handed on to another route is checked against that route's org", async () => {
    const answer = await get(api.url, '/files/org-a/org-b', bearer(orgA));
    // Observed: 200 {"export":"org-b","secret":"data of org-b"}.
    expect(answer.status).toBe(403);
  });
});

describe('57d4242: sound', () => {
  @Controller('c')
  @RequireAuth({ scopes: ['read:products'] })
  class Both {
    @Get('h')
    @RequireAuth({ scopes: ['write:products'] })
    h(@Auth() auth: AuthInfo) {
      return { client: auth.clientId };
    }
    @Get('k')
    k(@Auth() auth: AuthInfo) {
      return { client: auth.clientId };
    }
  }

  it.each(['express', 'fastify'] as const)(
    '%s: APP_GUARD + controller + handler @RequireAuth: the handler requirements rule, one challenge header',
    async (platform) => {
      const api = await startNest(
        {
          imports: [ResourceGuardModule.forRoot({ verifier })],
          controllers: [Both],
          providers: [{ provide: APP_GUARD, useClass: ResourceGuard }],
        },
        platform,
      );
      try {
        const reader = await mint(key, m2mClaims({ scope: 'read:products' }));
        const writer = await mint(key, m2mClaims({ scope: 'write:products' }));
        expect((await get(api.url, '/c/h', bearer(reader))).status).toBe(403);
        expect((await get(api.url, '/c/h', bearer(writer))).status).toBe(200);
        expect((await get(api.url, '/c/k', bearer(writer))).status).toBe(403);
        expect((await get(api.url, '/c/k', bearer(reader))).status).toBe(200);
        const none = await get(api.url, '/c/h');
        expect(none.status).toBe(401);
        expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
        expect(Array.isArray(none.headers['www-authenticate'])).toBe(false);
      } finally {
        await api.close();
      }
    },
  );
});

// ─────────────────────────────── 8c21c84: fastify-plugin 6 ───────────────────────────────

describe('8c21c84: fastify-plugin 6', () => {
  it('metadata, name and skip-override as documented; the options object is left alone', () => {
    const plugin = fastifyGuard as unknown as Record<symbol, unknown>;
    expect(plugin[Symbol.for('plugin-meta')]).toEqual({ fastify: '5.x', name: 'resource-guard' });
    expect(plugin[Symbol.for('fastify.display-name')]).toBe('resource-guard');
    expect(plugin[Symbol.for('skip-override')]).toBe(true);
  });

  it('decorations reach the registering context and its children, not its siblings', async () => {
    const app = Fastify();
    const seen: Record<string, boolean> = {};
    await app.register(async (scope) => {
      await scope.register(fastifyGuard, { verifier });
      scope.get('/in', { onRequest: scope.requireAuth() }, async (request) => ({
        client: request.auth?.clientId,
      }));
      await scope.register(async (child) => {
        seen.child = child.hasDecorator('requireAuth');
      });
    });
    await app.register(async (sibling) => {
      seen.sibling = sibling.hasDecorator('requireAuth');
    });
    await app.ready();
    seen.root = app.hasDecorator('requireAuth');
    expect(seen).toEqual({ child: true, sibling: false, root: false });
    const ok = await app.inject({
      url: '/in',
      headers: bearer(await mint(key)),
    });
    expect(ok.statusCode).toBe(200);
    const refused = await app.inject({ url: '/in' });
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/^Bearer/);
    await app.close();
  });
});
