/**
 * Adversarial review of two commits (`git show 1c2413f 0046374 -- src README.md`):
 * 1. 1c2413f src/request.ts mayBeCut / refuseCut, src/dpop-request.ts readOneHeader: a raw field
 *    list of at least min(2 * server.maxHeadersCount, 2000) entries is refused (400
 *    multiple_credentials), since node 20 and Deno's node:http drop fields past the count.
 * 2. 0046374 src/types.ts RequestRequirements (per call) beside Requirements (route, organization
 *    a string only); src/option-checks.ts refuseInherited exempting the standard names only on a
 *    realm's Object.prototype; ownData answering a resource-guard TypeError for what reading throws.
 *
 * Node 20's real rule (lib/_http_common.js, _http_server.js, _http_incoming.js of v20.20):
 * `parser.maxHeaderPairs = server.maxHeadersCount << 1` (when a number; else 2000, and <= 0 is
 * no limit), read once per connection; the parser hands fields over in batches of 31 pairs once a
 * request has more than 31, and a batch is kept while `_headers.length < maxHeaderPairs`, so the
 * raw list of a cut request holds at least `maxHeaderPairs` entries (2046 by default, 1,023
 * fields) while `req.headers` holds exactly `maxHeaderPairs / 2` fields; a request of up to 31
 * fields arrives whole in `rawHeaders` (only `headers` is cut). Measured over sockets here (node
 * 20.20): 999 fields = 1998 entries, 1000 = 2000, 1001 = 2002, 1024..1033 = 2046. Deno 2.9.6 cuts
 * the raw list to exactly 2 * maxHeadersCount; Bun 1.4.5 answers 431 past its own count (about
 * 100-200 by default, maxHeadersCount when set) and has `req.socket.server`. HTTP/2 (node:http2
 * compat) cuts nothing: past maxHeaderListPairs (128) the stream is reset (ENHANCE_YOUR_CALM);
 * after the stream closes `req.socket.server` is `undefined` on node 20 (no throw).
 *
 * Findings:
 * F1 (very low; configuration only) mayBeCut computes `2 * maxHeadersCount` where node computes
 *    `maxHeadersCount << 1` (a 32-bit integer): a count of 2^32 + 5 (or 2^31 + 5) makes node keep
 *    5 fields while the library waits for 2,000 entries, so a second Authorization after the
 *    first 31 fields is unseen again. Nobody configures that. Fix (src/request.ts mayBeCut):
 *    `const pairs = count << 1; if (pairs > 0) limit = Math.min(pairs, limit);` (a fractional
 *    count then matches too; 0.5 no longer refuses every request). FIXED in session 32.
 * F2 (low; your own code; configuration and per call) ownData (src/option-checks.ts) returns a
 *    copy that keeps the input's prototype, and its callers read known names from the copy with
 *    plain property access: routeGuard() destructures `errors` and `organization`, logto() reads
 *    `jwks`, fromRequest reads `anyOrganization`. A member the parent does not list (a Proxy whose
 *    ownKeys is [] and has false) is then still read through the parent's get: (a) a get that
 *    throws escapes routeGuard() and logto() as the raw error (what 0046374 says it fixed) and
 *    verify()/authenticate() per call; (b) a get that answers decides unchecked:
 *    `authenticate(req, Object.create(parent, { organization: { value: undefined } }))` with
 *    get(anyOrganization) = true is a route with no organization at all (resolveLevel reads own
 *    members only), so a global token passes where `organization: undefined` matches no token;
 *    logto({ endpoint: 'http://...', customDomains: [...] }) over a parent answering `jwks` skips
 *    its https check while the keys are still fetched. Fix (readOwn): make the copy
 *    null-prototype (`Object.create(null)`; it is already refused-inherited and read whole), or
 *    read those names with Object.hasOwn first. FIXED in session 32 (the copy has no prototype).
 * F3 (low; your own code, per call; older than 0046374) fromRequest reads
 *    `isPlainObject(given)` and `Object.getOwnPropertyDescriptor(given, 'organization')` outside
 *    any try: per-call requirements that are a Proxy whose getOwnPropertyDescriptor (or
 *    getPrototypeOf) throws reject verify() / authenticate() with that raw error, not the
 *    resource-guard TypeError ownData now gives. Fix: those two reads inside resolveLevel's
 *    catch (wrap fromRequest's body like ownData). FIXED in session 32.
 * N1 (note) the Object.prototype test is a shape, not an identity: a null-prototype parent whose
 *    own `constructor` is a function whose `prototype` is that parent (what `class X extends null`
 *    makes) is taken for a realm's Object.prototype, so a member it holds under a standard name
 *    (`toString`, `valueOf`...) is still exempt and silently absent as a claim rule. Only a
 *    deliberately built parent does that; no parser does. Pinned.
 * N2 (note, documented) an optional route answers 400 multiple_credentials, not anonymous, to a
 *    request of 1,000 fields or more without credentials (README "Token sources"; the "Optional
 *    authentication" section does not say it). Stricter, never looser. Pinned.
 * N3 (note, docs) README's wire-differential paragraph says such a request "is now refused,
 *    `400 multiple_credentials`, on every runtime": on Bun's node:http the runtime's own 431
 *    comes first, and a Web `Request` (Bun.serve, Deno.serve, Workers, Hono) carries no raw list,
 *    so nothing is refused there (Hono on node 20 is named; the others are not).
 * N4 (note) `organization?: string` on a route catches `organization: undefined` only under
 *    exactOptionalPropertyTypes (as the README says); with the default compiler options an unset
 *    `process.env.ORG_ID` still compiles and `guard({ organization: undefined })` is a global
 *    route at run time. FIXED in session 32: guard() refuses an own `organization` member that is
 *    `undefined` (a TypeError where the route is declared), for every user.
 * N5 (note, docs) README "Organizations": "a route's (`Requirements`, for `guard()` and the
 *    adapters) admits only a string": the adapters' options (RouteOptions) take `organization` as
 *    a function of the request, never a string; only guard() and verify()/authenticate() use
 *    Requirements' string. (OptionalRequirements, named in the Verifier's signatures, is not
 *    exported from 'resource-guard'; older than these commits.)
 * The `sound` blocks hold what held; each assertion can fail. Properties are seeded.
 */
import { createServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import Hapi from '@hapi/hapi';
import express from 'express';
import fastify from 'fastify';
import fc from 'fast-check';
import Koa from 'koa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuthError, createVerifier, logto } from 'resource-guard';
import type {
  AuthInfo,
  RequestLike,
  RequestRequirements,
  Requirements,
  Verifier,
  VerifierOptions,
} from 'resource-guard';
import { requireAuth as expressAuth } from 'resource-guard/express';
import type { RequireAuthOptions as ExpressOptions } from 'resource-guard/express';
import { requireAuth as fastifyAuth } from 'resource-guard/fastify';
import { resourceGuard as hapiPlugin, SCHEME } from 'resource-guard/hapi';
import type { StrategyOptions } from 'resource-guard/hapi';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import type { RequireAuthOptions as NestOptions } from 'resource-guard/nestjs';
import { routeGuard } from 'resource-guard/kit';
import type { Outcome, RouteOptions } from 'resource-guard/kit';
import { listenLoopback, rawStatus } from './helpers/http.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

const SEED = 0x5322;

beforeEach(() => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

let key: TestKey;
let base: VerifierOptions;
let verifier: Verifier;
let good: string;
/** Signed by another key under the same kid: never acceptable. */
let forged: string;
let orgToken: string;

beforeAll(async () => {
  key = await makeKey('ES256');
  const other = await makeKey('ES256');
  base = { issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } } as VerifierOptions;
  verifier = createVerifier(base);
  good = await mint(key, m2mClaims({ tenant: 'acme' }));
  forged = await mint({ ...other, kid: key.kid }, m2mClaims());
  orgToken = await mint(key, m2mClaims({ organization_id: 'o1' }));
});

/** The thrown error's class and message, or 'ok'. */
function thrown(action: () => unknown): string {
  try {
    action();
    return 'ok';
  } catch (error) {
    return error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error);
  }
}

/** A promise's outcome, with anything not an AuthError as its class and message. */
const settled = (promise: Promise<unknown>): Promise<string> =>
  outcome(promise).catch((error: unknown) =>
    error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error),
  );

// ---------------------------------------------------------------------------------------------
// 1. 1c2413f: fields node may have dropped
// ---------------------------------------------------------------------------------------------

/** `count` padding lines `pN: v`. */
const padLines = (count: number) => Array.from({ length: count }, (_, i) => `p${i}: v`);

const send = rawStatus;
/**
 * Node 20 cuts silently; Node 22 and later answer 431 before any app code runs (the answer on every
 * version is in test/request-cut-fields.test.ts): these socket blocks are about Node 20's rule.
 */
const NODE_20 = process.versions.node.startsWith('20.');

/** A node:http server answering `authenticate(req)`, with the raw list length it saw. */
async function nodeServer(maxHeadersCount?: number) {
  const seen: number[] = [];
  const server = createServer((req, res) => {
    seen.push(req.rawHeaders.length);
    verifier.authenticate(req).then(
      () => res.writeHead(200).end(),
      (error: unknown) => res.writeHead(error instanceof AuthError ? error.status : 500).end(),
    );
  });
  if (maxHeadersCount !== undefined) server.maxHeadersCount = maxHeadersCount;
  const listening = await listenLoopback(server);
  return { ...listening, seen };
}

describe.runIf(NODE_20)('sound: node 20 over sockets, the default count', () => {
  let server: Awaited<ReturnType<typeof nodeServer>>;
  beforeAll(async () => {
    server = await nodeServer();
  });
  afterAll(() => server.close());

  it('999 fields are read whole; 1,000 and more are refused, a forged second field or not', async () => {
    const auth = `Authorization: Bearer ${good}`;
    const second = `Authorization: Bearer ${forged}`;
    // Host + Authorization + padding = fields.
    expect(await send(server.port, [auth, ...padLines(997)])).toBe(200);
    expect(server.seen.at(-1)).toBe(1998);
    // 999 fields with the second Authorization last: seen, refused.
    expect(await send(server.port, [auth, ...padLines(996), second])).toBe(400);
    for (const fields of [1000, 1001, 1023, 1024, 1031, 1033]) {
      expect(await send(server.port, [auth, ...padLines(fields - 3), second])).toBe(400);
      expect(await send(server.port, [auth, ...padLines(fields - 2)])).toBe(400);
    }
    // What node kept of those (Host + Authorization + padding): never under 2,000 entries.
    expect(Math.min(...server.seen.slice(2))).toBeGreaterThanOrEqual(2000);
    expect(Math.max(...server.seen)).toBe(2046);
  });
});

describe.runIf(NODE_20)(
  "sound: node 20 over sockets, the server's own maxHeadersCount (1, 10, 33, 0)",
  () => {
    it('a hidden second Authorization is never let through; what is read whole passes', async () => {
      const auth = `Authorization: Bearer ${good}`;
      const second = `Authorization: Bearer ${forged}`;
      const cases: [count: number, passes: number, fields: number[]][] = [
        // [maxHeadersCount, largest field count that passes, field counts sent with a hidden second]
        [1, 0, [2, 40, 70]],
        [10, 9, [11, 20, 40, 70]],
        [33, 32, [34, 40, 70, 100]],
        // 0: node keeps every field; the library still takes 1,000 as the bound.
        [0, 999, [1000, 1100]],
      ];
      for (const [count, passes, fields] of cases) {
        const server = await nodeServer(count);
        try {
          if (passes >= 2)
            expect(await send(server.port, [auth, ...padLines(passes - 2)])).toBe(200);
          else expect(await send(server.port, [auth])).toBe(400); // 2 fields past a count of 1
          for (const n of fields) {
            expect(await send(server.port, [auth, ...padLines(n - 3), second])).toBe(400);
          }
        } finally {
          await server.close();
        }
      }
    });

    it(
      // Was a bug: F1, node takes `maxHeadersCount << 1` (2^32 + 5 keeps 5 fields), mayBeCut
      // `2 * maxHeadersCount` (bounded by 2,000): a second Authorization past field 31 unseen.
      'a count node reads as 32-bit (2^32 + 5: five fields) still refuses a cut list',
      async () => {
        const server = await nodeServer(2 ** 32 + 5);
        try {
          const status = await send(server.port, [
            `Authorization: Bearer ${good}`,
            ...padLines(37),
            `Authorization: Bearer ${forged}`,
          ]);
          expect(server.seen.at(-1)).toBe(62); // 31 fields kept, the second Authorization dropped
          expect(status).toBe(400);
        } finally {
          await server.close();
        }
      },
    );

    it('a fractional count (1.5: node keeps one field) never lets a cut list through', async () => {
      const server = await nodeServer(1.5);
      try {
        // Up to 31 fields arrive whole in the raw list (only `headers` is cut): read, refused.
        expect(
          await send(server.port, [
            `Authorization: Bearer ${good}`,
            `Authorization: Bearer ${forged}`,
          ]),
        ).toBe(400);
        expect(await send(server.port, [`Authorization: Bearer ${good}`, ...padLines(60)])).toBe(
          400,
        );
      } finally {
        await server.close();
      }
    });
  },
);

describe.runIf(NODE_20)('sound: the adapters over sockets (node 20), Hapi included', () => {
  const hidden = () => [
    `Authorization: Bearer ${good}`,
    ...padLines(1100),
    `Authorization: Bearer ${forged}`,
  ];

  it('Express, Koa, Fastify and Hapi answer 400 to a second Authorization after 1,100 fields', async () => {
    const statuses: Record<string, number[]> = {};
    const probe = async (name: string, port: number) => {
      statuses[name] = [
        await send(port, [`Authorization: Bearer ${good}`]),
        await send(port, hidden()),
        await send(port, padLines(1100)),
      ];
    };

    const app = express();
    app.get('/', expressAuth(verifier), (_req, res) => void res.send('ok'));
    const ex = await listenLoopback(createServer(app));
    await probe('express', ex.port).finally(() => ex.close());

    const koa = new Koa();
    koa.use(koaAuth(verifier));
    koa.use((ctx) => {
      ctx.body = 'ok';
    });
    const ko = await listenLoopback(createServer(koa.callback()));
    await probe('koa', ko.port).finally(() => ko.close());

    const fa = fastify();
    fa.get('/', { preHandler: fastifyAuth(verifier) }, () => 'ok');
    await fa.listen({ port: 0, host: '127.0.0.1' });
    await probe('fastify', (fa.server.address() as AddressInfo).port).finally(() => fa.close());

    const hapi = Hapi.server({ port: 0, host: '127.0.0.1' });
    await hapi.register({ plugin: hapiPlugin, options: { verifier } });
    hapi.auth.strategy('token', SCHEME, {});
    hapi.route({ method: 'GET', path: '/', options: { auth: 'token' }, handler: () => 'ok' });
    await hapi.start();
    await probe('hapi', Number(hapi.info.port)).finally(() => hapi.stop());

    expect(statuses).toEqual({
      express: [200, 400, 400],
      koa: [200, 400, 400],
      fastify: [200, 400, 400],
      hapi: [200, 400, 400],
    });
  });

  it('N2: an optional route answers 400, not anonymous, to 1,000 fields without credentials', async () => {
    const pad = (count: number) => Array.from({ length: count }, (_, i) => [`p${i}`, '']).flat();
    const optional = { optional: true } as const;
    expect(
      await outcome(verifier.authenticate({ headers: {}, rawHeaders: pad(999) }, optional)),
    ).toBe('ok');
    expect(
      await outcome(verifier.authenticate({ headers: {}, rawHeaders: pad(1000) }, optional)),
    ).toBe('400 multiple_credentials');
  });

  it("the kit's synchronous path (a cached token) refuses a cut list too, without a promise", async () => {
    const guard = routeGuard<RequestLike>(verifier, { scopes: [] });
    const answers: string[] = [];
    const result: Outcome<string, AuthInfo | undefined, RequestLike, undefined, undefined> = {
      pass: () => 'pass',
      respond: (error) => `${error.status} ${error.reason}`,
      fail: (error) => `fail ${String(error)}`,
    };
    const rawHeaders = ['Authorization', `Bearer ${good}`];
    answers.push(
      String(await guard.run({ headers: {}, rawHeaders }, { headers: {}, rawHeaders }, result)),
    );
    const cut = {
      headers: {},
      rawHeaders: [...rawHeaders, ...Array.from({ length: 999 }, (_, i) => [`p${i}`, '']).flat()],
    };
    const sync = guard.run(cut, cut, result);
    expect(sync).not.toBeInstanceOf(Promise);
    answers.push(String(sync));
    expect(answers).toEqual(['pass', '400 multiple_credentials']);
  });
});

describe('sound: HTTP/2 (node:http2 compat)', () => {
  it('cuts nothing (a stream past maxHeaderListPairs is reset); socket.server after close is no throw', async () => {
    const server = http2.createServer();
    const after: string[] = [];
    server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      if (req.headers['x-late'] !== undefined) {
        // Authenticated only once the stream is gone: the compat socket proxy then has no session.
        req.stream.once('close', () => {
          void settled(verifier.authenticate(req as unknown as RequestLike)).then((answer) =>
            after.push(answer),
          );
        });
        res.end();
        return;
      }
      verifier.authenticate(req as unknown as RequestLike).then(
        () => res.writeHead(200).end(),
        (error: unknown) => res.writeHead(error instanceof AuthError ? error.status : 500).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    client.on('error', () => undefined);
    const ask = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<string>((resolve) => {
        const stream = client.request({ ':path': '/', ...headers });
        let status = '';
        stream.on('response', (h) => (status = String(h[':status'])));
        stream.on('error', (e: NodeJS.ErrnoException) => (status = e.code ?? 'error'));
        stream.on('close', () => resolve(status));
        stream.resume();
        stream.end();
      });
    try {
      const padding = (n: number) =>
        Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, 'v']));
      expect(await ask({ authorization: `Bearer ${good}`, ...padding(100) })).toBe('200');
      expect(await ask({ authorization: `Bearer ${good}`, ...padding(1100) })).toBe(
        'ERR_HTTP2_STREAM_ERROR',
      );
      expect(await ask({ authorization: `Bearer ${good}`, 'x-late': '1' })).toBe('200');
      await vi.waitFor(() => expect(after).toEqual(['ok']));
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a socket or server that throws when read, or a Proxy socket: the default bound, no TypeError', async () => {
    const rawHeaders = ['authorization', `Bearer ${good}`];
    const throwingServer = {
      headers: {},
      rawHeaders,
      socket: {
        get server(): never {
          throw new Error('ERR_HTTP2_SOCKET_UNBOUND');
        },
      },
    } as unknown as RequestLike;
    expect(await settled(verifier.authenticate(throwingServer))).toBe('ok');
    const proxySocket = {
      headers: {},
      rawHeaders,
      socket: new Proxy(
        {},
        {
          get() {
            throw new Error('no socket manipulation');
          },
        },
      ),
    } as unknown as RequestLike;
    expect(await settled(verifier.authenticate(proxySocket))).toBe('ok');
  });
});

describe('sound: every reader of the raw list asks mayBeCut (seeded)', () => {
  it('Bearer, cookie, getToken, DPoP route: a list at the bound is refused, one under it decided on its fields', async () => {
    const cookies = createVerifier({ ...base, cookie: 'at' });
    const custom = createVerifier({
      ...base,
      getToken: (req) => (req.headers as Record<string, string | undefined>)['x-token'],
    });
    const dpopRoute = createVerifier({ ...base, dpop: { origin: 'https://api.example' } });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 3 }),
        fc.constantFrom('bearer', 'cookie', 'getToken', 'dpop-allowed'),
        fc.boolean(),
        async (count, over, source, secondFirst) => {
          const fields = 2 * count + over; // fields in the raw list, against a count of `count`
          const credential: [string, string] =
            source === 'cookie'
              ? ['Cookie', `at=${good}`]
              : source === 'getToken'
                ? ['x-token', good]
                : ['Authorization', `Bearer ${good}`];
          const padding = Array.from({ length: Math.max(0, fields - 1) }, (_, i) => [`p${i}`, 'v']);
          const pairs = secondFirst ? [...padding, credential] : [credential, ...padding];
          const request = {
            headers: { 'x-token': source === 'getToken' ? good : undefined },
            rawHeaders: pairs.flat(),
            socket: { server: { maxHeadersCount: count } },
          } as unknown as RequestLike;
          const v = source === 'cookie' ? cookies : source === 'getToken' ? custom : dpopRoute;
          const requirements: RequestRequirements =
            source === 'dpop-allowed' ? { dpop: 'allowed' } : {};
          const answer = await settled(v.authenticate(request, requirements));
          const cut = pairs.length >= count;
          expect(answer).toBe(cut ? '400 multiple_credentials' : 'ok');
        },
      ),
      { seed: SEED, numRuns: 120 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 2. 0046374: RequestRequirements, refuseInherited's exemption, ownData's TypeError
// ---------------------------------------------------------------------------------------------

describe('sound: the types (checked by tsc; the calls run too)', () => {
  it('a Requirements value still goes per call; a route refuses organization: undefined', async () => {
    const route: Requirements = { scopes: [], organization: 'o1' };
    const optionalRoute: Requirements & { readonly optional: true } = { optional: true };
    const fromHeader = (h: Record<string, string | undefined>) => h['x-org'];
    const perCall: RequestRequirements = { organization: fromHeader({}) };
    const request = { headers: { authorization: `Bearer ${orgToken}` } };

    // A route's Requirements per call, and the OptionalRequirements overload.
    expect(await outcome(verifier.authenticate(request, route))).toBe('ok');
    expect(await outcome(verifier.verify(orgToken, route))).toBe('ok');
    const maybe: AuthInfo | undefined = await verifier.authenticate({ headers: {} }, optionalRoute);
    expect(maybe).toBeUndefined();
    const anonymous = await verifier.authenticate({ headers: {} }, { ...perCall, optional: true });
    // @ts-expect-error an optional call may answer undefined
    const sure: AuthInfo = anonymous;
    expect(sure).toBeUndefined();
    const definite: AuthInfo = await verifier.authenticate(request, { organization: 'o1' });
    expect(definite.organizationId).toBe('o1');
    expect(await outcome(verifier.authenticate(request, perCall))).toBe(
      '403 organization_mismatch',
    );
    // guard(req, context): the context's organization may be undefined (a missing parameter).
    expect(await outcome(verifier.guard({})(request, { organization: fromHeader({}) }))).not.toBe(
      'ok',
    );

    // A route: a string only, in the types and (N4, FIXED in session 32) at run time.
    const refused = /^TypeError: resource-guard: `organization` is undefined/;
    // @ts-expect-error organization: undefined on a route is no organization at all
    expect(thrown(() => verifier.guard({ organization: fromHeader({}) }))).toMatch(refused);
    // @ts-expect-error a per-call value is not a route's
    expect(thrown(() => verifier.guard(perCall))).toMatch(refused);
    // @ts-expect-error as above
    expect(thrown(() => verifier.guard({ organization: undefined }))).toMatch(refused);
    expect(
      await outcome(verifier.guard({})({ headers: { authorization: `Bearer ${good}` } })),
    ).toBe('ok');

    // The adapters' route options take a function, never a string, never undefined.
    const ok: ExpressOptions = { organization: (req) => req.get('x-org') };
    // @ts-expect-error a route's organization is a function of the request
    const literal: ExpressOptions = { organization: 'o1' };
    // @ts-expect-error not undefined under exactOptionalPropertyTypes
    const unset: NestOptions = { organization: undefined };
    // @ts-expect-error Hapi's strategy options as well
    const hapiUnset: StrategyOptions = { organization: undefined };
    const kitUnset: RouteOptions<IncomingMessage> = {
      // @ts-expect-error the kit's RouteOptions as well
      organization: fromHeader({}),
    };
    expect([ok, literal, unset, hapiUnset, kitUnset].length).toBe(5);
  });
});

/** `Object.create(parent, own)` where `parent` is a null-prototype object built by `build`. */
function childOf(parent: object, own: Record<string, unknown>): object {
  const child = Object.create(parent) as object;
  for (const [name, value] of Object.entries(own)) {
    Object.defineProperty(child, name, { value, enumerable: true, writable: true });
  }
  return child;
}

describe('N1: a parent shaped like Object.prototype', () => {
  it('a class extending null (its prototype: own constructor, constructor.prototype = it) keeps toString exempt', async () => {
    class Rules extends (null as unknown as ObjectConstructor) {}
    const parent = Rules.prototype as object;
    Object.defineProperty(parent, 'toString', { value: 'admin' }); // a claim rule, hidden
    const claimEquals = childOf(parent, { tenant: 'acme' }) as Record<string, string>;
    // Pinned: accepted, the `toString` rule absent (a token without that claim passes).
    expect(thrown(() => verifier.guard({ claimEquals }))).toBe('ok');
    expect(await outcome(verifier.verify(good, { claimEquals }))).toBe('ok');
    // A non-standard name on the same parent is refused, and without the fake constructor the
    // standard name is refused too (what 0046374 fixed).
    Object.defineProperty(parent, 'plan', { value: 'gold' });
    expect(thrown(() => verifier.guard({ claimEquals }))).toMatch(
      /`claimEquals\.plan` is inherited/,
    );
    const plain = Object.create(null) as object;
    Object.defineProperty(plain, 'toString', { value: 'admin' });
    expect(
      thrown(() =>
        verifier.guard({
          claimEquals: childOf(plain, { tenant: 'acme' }) as Record<string, string>,
        }),
      ),
    ).toMatch(/`claimEquals\.toString` is inherited/);
  });

  it('a constructor held as a getter, or one whose prototype is another object, is no exemption', () => {
    for (const shape of ['getter', 'other'] as const) {
      const parent = Object.create(null) as object;
      function F() {}
      if (shape === 'getter') {
        F.prototype = parent;
        Object.defineProperty(parent, 'constructor', { get: () => F });
      } else Object.defineProperty(parent, 'constructor', { value: F });
      Object.defineProperty(parent, 'valueOf', { value: 'x' });
      const claimEquals = childOf(parent, { tenant: 'acme' }) as Record<string, string>;
      expect(thrown(() => verifier.guard({ claimEquals }))).toMatch(/is inherited/);
    }
  });
});

/** A Proxy parent (null target) whose traps throw while `armed()`. */
function trappedParent(armed: () => boolean, traps: (keyof ProxyHandler<object>)[]) {
  const handler: ProxyHandler<object> = {};
  for (const trap of traps) {
    (handler as Record<string, unknown>)[trap] = (...args: unknown[]) => {
      if (armed()) throw new Error(`trap ${trap}`);
      return (Reflect[trap as keyof typeof Reflect] as (...a: unknown[]) => unknown)(...args);
    };
  }
  return new Proxy(Object.create(null) as object, handler);
}

describe('a Proxy parent that throws, or answers, when read', () => {
  const TRAPS: (keyof ProxyHandler<object>)[] = [
    'getOwnPropertyDescriptor',
    'ownKeys',
    'has',
    'get',
    'getPrototypeOf',
  ];
  /** Each configuration entry point with `parent` under its options (or a nested level). */
  const configure = (parent: object) => ({
    guard: thrown(() => verifier.guard(childOf(parent, { scopes: ['read'] }) as Requirements)),
    routeGuard: thrown(() =>
      routeGuard(verifier, childOf(parent, { scopes: ['read'] }) as RouteOptions<unknown>),
    ),
    createVerifier: thrown(() => createVerifier(childOf(parent, { ...base }) as VerifierOptions)),
    logto: thrown(() =>
      logto(childOf(parent, { endpoint: 'https://t.logto.app', audience: AUDIENCE }) as never),
    ),
    nested: thrown(() =>
      verifier.guard({
        claimEquals: childOf(parent, { tenant: 'acme' }) as Record<string, string>,
      }),
    ),
  });

  it('sound: every trap but get is a resource-guard TypeError at configuration', () => {
    for (const trap of TRAPS.filter((t) => t !== 'get')) {
      const answers = configure(trappedParent(() => true, [trap]));
      for (const [entry, message] of Object.entries(answers)) {
        // A nested level never asks `has` (nothing to ask it about): passes, nothing read.
        if (trap === 'has' && entry === 'nested') expect(message).toBe('ok');
        else expect(`${trap} ${entry}: ${message}`).toMatch(/: TypeError: resource-guard: `/);
      }
    }
    // get: guard(), createVerifier() and a nested level read descriptors only.
    const answers = configure(trappedParent(() => true, ['get']));
    expect([answers.guard, answers.createVerifier, answers.nested]).toEqual(['ok', 'ok', 'ok']);
  });

  it(
    // Was a bug: F2, ownData's copy keeps the parent; routeGuard destructures `errors` and
    // `organization`, logto reads `jwks`, from the copy: the parent's get, outside the try.
    // FIXED in session 32 by never reading the parent after the checks (the copy ownData makes
    // has no prototype): a parent listing nothing is never asked, so it configures as if absent.
    'routeGuard() and logto(): a parent whose get throws, listing nothing, is never read',
    () => {
      const answers = configure(trappedParent(() => true, ['get']));
      expect(answers.routeGuard).toBe('ok');
      expect(answers.logto).toBe('ok');
    },
  );

  it(
    // Was a bug: F2, logto() reads `jwks` through the copy's prototype: a parent listing nothing
    // but answering `jwks` on get skips the https check for an endpoint whose keys are fetched.
    'logto(): what a parent answers on get, and lists nowhere, decides no check',
    () => {
      const parent = new Proxy(Object.create(null) as object, {
        get: (target, name) => (name === 'jwks' ? { keys: [] } : Reflect.get(target, name)),
      });
      const options = {
        endpoint: 'http://tenant.example',
        customDomains: ['auth.example.com'],
        audience: AUDIENCE,
      };
      expect(thrown(() => logto(options as never))).toMatch(/`endpoint` must use https/);
      expect(thrown(() => logto(childOf(parent, options) as never))).toMatch(
        /`endpoint` must use https/,
      );
    },
  );

  it('sound: armed only after configuration, no request ever reaches it', async () => {
    let armed = false;
    const parent = trappedParent(() => armed, TRAPS);
    const guard = verifier.guard(childOf(parent, { scopes: [] }) as Requirements);
    const claims = verifier.guard({
      claimEquals: childOf(parent, { tenant: 'acme' }) as Record<string, string>,
    });
    const kit = routeGuard<RequestLike>(
      verifier,
      childOf(parent, { scopes: [] }) as RouteOptions<RequestLike>,
    );
    const own = createVerifier(childOf(parent, { ...base }) as VerifierOptions);
    armed = true;
    const request = { headers: { authorization: `Bearer ${good}` } };
    const viaKit = await kit.run(request, request, {
      pass: () => 'ok',
      respond: (error) => `${error.status}`,
      fail: (error) => `fail ${String(error)}`,
    });
    expect([
      await outcome(guard(request)),
      await outcome(claims(request)),
      viaKit,
      await outcome(own.authenticate(request)),
      await outcome(own.authenticate(request)), // a cached repeat
    ]).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
  });

  it('sound: per call, descriptor and key traps are a resource-guard TypeError', async () => {
    for (const trap of ['getOwnPropertyDescriptor', 'ownKeys', 'has'] as const) {
      const parent = trappedParent(() => true, [trap]);
      for (const own of [{ scopes: [] }, { organization: undefined }, { organization: 'o1' }]) {
        const answer = await settled(
          verifier.authenticate(
            { headers: { authorization: `Bearer ${orgToken}` } },
            childOf(parent, own) as RequestRequirements,
          ),
        );
        expect(answer).toMatch(/^TypeError: resource-guard: `requirements` could not be read$/);
      }
    }
  });

  it(
    // Was a bug: F3, fromRequest asks isPlainObject (the parent's getPrototypeOf) before any try.
    'per call: a parent whose getPrototypeOf throws is a resource-guard TypeError',
    async () => {
      const parent = trappedParent(() => true, ['getPrototypeOf']);
      const requirements = childOf(parent, { scopes: [] }) as RequestRequirements;
      expect(await settled(verifier.verify(good, requirements))).toMatch(
        /^TypeError: resource-guard: `requirements`/,
      );
    },
  );

  it(
    // Was a bug: F3, fromRequest reads the descriptor of `organization` before any try.
    'per call: requirements that are a Proxy throwing on a descriptor read',
    async () => {
      const proxy = new Proxy(
        { organization: 'o1' },
        {
          getOwnPropertyDescriptor() {
            throw new Error('trap');
          },
        },
      ) as RequestRequirements;
      expect(await settled(verifier.verify(orgToken, proxy))).toMatch(
        /^TypeError: resource-guard: `requirements`/,
      );
    },
  );

  it(
    // Was a bug: F2, fromRequest reads `anyOrganization` through the copy's prototype (the
    // parent's get) where resolveLevel reads own members only: a throw escapes raw, an answer
    // of true makes `organization: undefined` a route with no organization (global).
    'per call: a parent answering anyOrganization on get never makes organization: undefined global',
    async () => {
      expect(await outcome(verifier.verify(good, { organization: undefined }))).toBe(
        '403 organization_mismatch',
      );
      const lying = new Proxy(Object.create(null) as object, {
        get: (target, name) => (name === 'anyOrganization' ? true : Reflect.get(target, name)),
      });
      expect(
        await settled(
          verifier.verify(good, childOf(lying, { organization: undefined }) as RequestRequirements),
        ),
      ).toBe('403 organization_mismatch');
      // A parent whose get throws, listing nothing, is never read either (the copy has no prototype).
      const throwing = trappedParent(() => true, ['get']);
      expect(
        await settled(
          verifier.verify(
            good,
            childOf(throwing, { organization: undefined }) as RequestRequirements,
          ),
        ),
      ).toBe('403 organization_mismatch');
    },
  );
});
