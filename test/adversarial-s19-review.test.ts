/**
 * Adversarial review of the session's changes (ad574bc..HEAD, src and adapters): htu escape
 * normalisation, the per-request replay memo, trustHost origins, Hono's mountPath, per-call
 * organization, any-of-none, the key-set registry and the scheme wording.
 *
 * Its five findings: the stray `%` and the Host spellings are FIXED (plain tests, each failing
 * on the code before its fix); the three under Hono's mount() stay `it.fails`: the mounted app is
 * handed only a new, shorter Request, a limit the README states (reading node's own request
 * instead was tried, and let sub-requests made with `app.request(…, c.env)` be judged by the
 * client's credentials: test/adversarial-s19-final.test.ts). Every other test is behaviour that
 * held.
 */
import fc from 'fast-check';
import { Hono } from 'hono';
import express from 'express';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier, MemoryReplayStore } from 'resource-guard';
import type { ReplayStore, Requirements, Verifier, VerifierOptions } from 'resource-guard';
import { requireAuth as honoAuth } from 'resource-guard/hono';
import { requireAuth as expressAuth } from 'resource-guard/express';
import { keySetStates } from '../src/key-set.ts';
import { normalizeHtu, originOf, pathOf } from '../src/dpop-request.ts';
import { dpopOptions, dpopRequest, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

let issuerKey: TestKey;
let holder: ProofKey;

const options = (extra: Partial<VerifierOptions> = {}): VerifierOptions =>
  dpopOptions(issuerKey, extra);

/** No DPoP: a plain Bearer verifier. */
const plainOptions = (extra: Partial<VerifierOptions> = {}): VerifierOptions => {
  const { dpop: _dpop, ...rest } = options(extra);
  return rest;
};

const bound = (claims: Record<string, unknown> = {}) =>
  mint(issuerKey, m2mClaims({ cnf: { jkt: holder.jkt }, ...claims }));

beforeAll(async () => {
  [issuerKey, holder] = await Promise.all([makeKey('ES256'), makeProofKey()]);
});

/** One fresh request (new object) presenting `token` with a proof for `htu`, at `url`. */
async function fresh(token: string, htu: string, url: string, method = 'GET') {
  return dpopRequest(token, await proof(holder, method, htu, token), { method, url });
}

// ---------------------------------------------------------------------------------------------
// 1. htu escape normalisation (src/dpop-request.ts normalizeEscapes)
// ---------------------------------------------------------------------------------------------

describe('htu: percent-encoding normalisation', () => {
  /**
   * FIXED (low): normalizeEscapes decoded `%46` inside `%2%46` and so FORMS a new escape, `%2F`, that
   * the request never had: the invalid target `/a%2%46b` (a stray `%`, RFC 3986 §2.1 allows `%`
   * only before two hex digits) normalises to `/a%2Fb`, the normal form of another, valid URI. A
   * proof for `https://api.shop.example/a%2Fb` is accepted on `GET /a%2%46b` (and one for `/%2F`
   * on `/%%32%46`: `%32%46` → `2F`). Before this session raw pathnames were compared: refused.
   * RFC 3986 §6.2.2.2 equates only well-formed triplets; a cold verifier refuses (or compares
   * as text) a target with a stray `%`. A router may read `/a%2%46b` otherwise (Express answers
   * its params' URIError with 400, Hono's tryDecode decodes the `%46` alone).
   * Root cause: src/dpop-request.ts:26-32 (`normalizeEscapes`: one regex pass that leaves a
   * stray `%` as `%` in its output, where it can join the decoded characters that follow).
   * Fix: refuse a path with a `%` not followed by two hex digits (pathOf and normalizeHtu return
   * undefined → dpop_htu_mismatch), or write a stray `%` as `%25` in the normal form, so the
   * output's escapes are exactly the input's.
   */
  it('a stray % never joins decoded characters into a new escape (/a%2%46b is not /a%2Fb)', async () => {
    const v = createVerifier(options());
    const token = await bound();
    for (const [htu, target] of [
      [`${ORIGIN}/a%2Fb`, '/a%2%46b'],
      [`${ORIGIN}/a%2Fb`, '/a%2%66b'],
      [`${ORIGIN}/%2F`, '/%%32%46'],
    ] as const) {
      expect(await outcome(v.authenticate(await fresh(token, htu, target)))).toBe(
        '401 dpop_htu_mismatch',
      );
    }
  });

  // The same bug end to end: the raw target `/a%2%46b` reaches the Express guard unchanged.
  it('over HTTP (Express, raw target): a proof for /a%2Fb does not open GET /a%2%46b', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const app = express();
    app.use(expressAuth(v));
    app.use((_req, res) => void res.json({ ok: true }));
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const p = await proof(holder, 'GET', `${ORIGIN}/a%2Fb`, token);
      const status = await rawStatus(port, '/a%2%46b', [
        ['Authorization', `DPoP ${token}`],
        ['DPoP', p],
      ]);
      expect(status).toBe(401); // is 200
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('property: a spelling of the same path (unreserved escaped or not, hex case) is accepted', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const unreserved = fc.constantFrom(...'aZ09-._~'.split(''));
    const reservedEscape = fc.constantFrom('%2F', '%3F', '%23', '%25', '%20', '%C3%A9', '%40');
    const piece = fc.oneof(unreserved, reservedEscape);
    const spell = (text: string, flags: readonly boolean[]) => {
      let i = 0;
      return text.replace(/%[0-9A-F]{2}|./g, (token) => {
        const flag = flags[i++ % flags.length] ?? false;
        if (token.startsWith('%')) return flag ? token.toLowerCase() : token;
        if (!/[A-Za-z0-9._~-]/.test(token)) return token;
        const hex = token.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');
        return flag ? `%${flag && i % 2 ? hex.toLowerCase() : hex}` : token;
      });
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(piece, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        async (segments, a, b) => {
          const path = `/${segments.map((s) => s.join('')).join('/')}`;
          // Dot segments ('.', '..') are resolved by the URL parser: skip them, not the point here.
          fc.pre(!path.split('/').some((s) => s === '.' || s === '..'));
          const htuPath = spell(path, a);
          const target = spell(path, b);
          fc.pre(!/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(htuPath));
          fc.pre(!/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(target));
          expect(
            await outcome(v.authenticate(await fresh(token, `${ORIGIN}${htuPath}`, target))),
          ).toBe('ok');
        },
      ),
      { numRuns: 60 },
    );
  });

  it('property: an escaped reserved character (or %25) never matches anything but itself', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const pairs: readonly [string, string][] = [
      ['/a/b', '/a%2Fb'],
      ['/a%2Fb', '/a/b'],
      ['/a%2541', '/aA'],
      ['/a%2541', '/a%41'],
      ['/aA', '/a%2541'],
      ['/a%252F', '/a%2F'],
      ['/a%3Fb', '/a?b'],
      ['/%2E%2E%2Fadmin', '/admin'],
      ['/x%2Fy', '/x%2F%2Fy'],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...pairs), async ([htuPath, target]) => {
        const answer = await outcome(
          v.authenticate(await fresh(token, `${ORIGIN}${htuPath}`, target)),
        );
        expect(answer).toBe('401 dpop_htu_mismatch');
      }),
      { numRuns: pairs.length * 2 },
    );
  });

  it('a request target with dot segments (escaped or not, any case) is refused, whatever the proof', async () => {
    const v = createVerifier(options());
    const token = await bound();
    for (const target of ['/a/%2e%2e/admin', '/a/%2E./admin', '/a/.%2E/admin', '/a/%2e/admin']) {
      for (const htu of [`${ORIGIN}/admin`, `${ORIGIN}/a/admin`, `${ORIGIN}${target}`]) {
        expect(await outcome(v.authenticate(await fresh(token, htu, target)))).toBe(
          '401 dpop_htu_mismatch',
        );
      }
    }
    // Decoding never makes a dot segment: a literal `%2E%2E` inside a segment stays in it.
    expect(pathOf('/a/x%2E%2E/b')).toBe('/a/x../b');
    expect(pathOf('/a/%252E%252E/b')).toBe('/a/%252E%252E/b');
    expect(normalizeHtu(`${ORIGIN}/a/%252e%252e/b`)).toBe(`${ORIGIN}/a/%252e%252e/b`);
  });

  it('overlong, short and invalid escapes and non-ASCII: no throw, no 500, no equality with their decodings', async () => {
    const v = createVerifier(options());
    const token = await bound();
    for (const [htuPath, target] of [
      ['/a%', '/a'],
      ['/a%zz', '/a'],
      ['/a%4', '/a'],
      ['/a%C3%A9', '/aé'],
      ['/a%E9', '/a%C3%A9'],
      ['/a%00', '/a'],
    ] as const) {
      expect(await outcome(v.authenticate(await fresh(token, `${ORIGIN}${htuPath}`, target)))).toBe(
        '401 dpop_htu_mismatch',
      );
    }
  });

  it('replay: one proof, two spellings of one URL, is one use (the key is the normal form)', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const p = await proof(holder, 'GET', `${ORIGIN}/%7Euser`, token);
    expect(await outcome(v.authenticate(dpopRequest(token, p, { url: '/~user' })))).toBe('ok');
    expect(await outcome(v.authenticate(dpopRequest(token, p, { url: '/%7euser' })))).toBe(
      '401 dpop_replayed',
    );
    expect(await outcome(v.authenticate(dpopRequest(token, p, { url: '/%7Euser' })))).toBe(
      '401 dpop_replayed',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The per-request replay memo (src/dpop.ts #consume)
// ---------------------------------------------------------------------------------------------

describe('replay memo: one insert per request object', () => {
  it('two guards on one request share one insert; the same proof on any other object is a replay', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    const request = dpopRequest(token, p);
    const prefix = v.guard({});
    const route = v.guard({ scopes: ['read:products'] });
    expect(await outcome(prefix(request))).toBe('ok');
    expect(await outcome(route(request))).toBe('ok');
    // A copy of the very same request (another HTTP request carrying the same bytes).
    expect(await outcome(route({ ...request }))).toBe('401 dpop_replayed');
    expect(await outcome(prefix(dpopRequest(token, p)))).toBe('401 dpop_replayed');
  });

  it('a first guard that refused (scope) inserted nothing: the next guard inserts; a copy is a replay', async () => {
    const v = createVerifier(options());
    const token = await bound({ scope: 'read:products' });
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    const request = dpopRequest(token, p);
    expect(await outcome(v.guard({ scopes: ['admin'] })(request))).toBe('403 insufficient_scope');
    expect(await outcome(v.guard({})(request))).toBe('ok');
    expect(await outcome(v.guard({})({ ...request }))).toBe('401 dpop_replayed');
  });

  it('a proof already used elsewhere stays refused on every guard of the request (the rejection is shared)', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    expect(await outcome(v.authenticate(dpopRequest(token, p)))).toBe('ok');
    const second = dpopRequest(token, p);
    for (let i = 0; i < 3; i++) {
      expect(await outcome(v.guard({})(second))).toBe('401 dpop_replayed');
    }
  });

  it('a store outage is a 503 for every guard of that request; the proof, never inserted, works once later', async () => {
    let down = true;
    const memory = new MemoryReplayStore();
    const store: ReplayStore = {
      insertIfAbsent(k, ttl) {
        if (down) throw new Error('store down');
        return memory.insertIfAbsent(k, ttl);
      },
    };
    const v = createVerifier(options({ dpop: { origin: ORIGIN, replay: store } }));
    const token = await bound();
    const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    const request = dpopRequest(token, p);
    expect(await outcome(v.guard({})(request))).toBe('503 dpop_replay_unavailable');
    down = false;
    // Same request object: the memoised failed insert is shared, not retried into a pass.
    expect(await outcome(v.guard({})(request))).toBe('503 dpop_replay_unavailable');
    expect(await outcome(v.guard({})(dpopRequest(token, p)))).toBe('ok');
    expect(await outcome(v.guard({})(dpopRequest(token, p)))).toBe('401 dpop_replayed');
  });

  it('no piggyback: another proof swapped into the same request object gets its own insert', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const used = await proof(holder, 'GET', `${ORIGIN}/products`, token);
    expect(await outcome(v.authenticate(dpopRequest(token, used)))).toBe('ok');
    const request = dpopRequest(token, await proof(holder, 'GET', `${ORIGIN}/products`, token));
    expect(await outcome(v.guard({})(request))).toBe('ok');
    // The headers change under the same object (a middleware, a hostile wrapper): a used proof.
    const swapped = dpopRequest(token, used);
    Object.assign(request, { headers: swapped.headers, rawHeaders: swapped.rawHeaders });
    expect(await outcome(v.guard({})(request))).toBe('401 dpop_replayed');
  });

  it('every other check still runs on the memo path: a stale proof, a wrong method, another token', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const request = dpopRequest(token, await proof(holder, 'GET', `${ORIGIN}/products`, token));
    expect(await outcome(v.guard({})(request))).toBe('ok');
    expect(await outcome(v.guard({})({ ...request, method: 'POST' }))).toBe(
      '401 dpop_htm_mismatch',
    );
    expect(await outcome(v.guard({ scopes: ['admin'] })(request))).toBe('403 insufficient_scope');
  });

  it('property: over any interleaving of guards and copies, a proof opens exactly one request object', async () => {
    const v = createVerifier(options());
    const token = await bound();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 10 }),
        async (objects) => {
          const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
          const requests = [0, 1, 2, 3].map(() => dpopRequest(token, p));
          const opened = new Set<number>();
          for (const i of objects) {
            if ((await outcome(v.guard({})(requests[i]!))) === 'ok') opened.add(i);
          }
          expect(opened.size).toBe(1);
          expect(opened.has(objects[0]!)).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  });

  /**
   * KNOWN LIMIT (README, Hono: mountPath): the commit's promise "a prefix guard plus a route's own
   * guard accept one correct proof" does not hold for Hono's mount(), the case `mountPath` was
   * added for. `outer.use('/api/*', requireAuth(v))` then `outer.mount('/api', inner.fetch)` with
   * `inner.get('/products', requireAuth(v, { mountPath: '/api' }))`: mount() hands the inner app a
   * NEW Request, so the memo (keyed by the request object) misses and the inner guard's insert
   * finds the proof used: 401 dpop_replayed for the client's correct proof.
   * Root cause: src/dpop.ts:158-164 keys the memo on `presented.request`, which
   * adapters/hono/index.ts:69 makes `c.req.raw` (a different Request per app under mount()).
   * Fix: in the Hono adapter key the request on something mount() shares (`c.env.incoming` on
   * @hono/node-server, else the outer Request passed down via `c.env`/`executionCtx`), or
   * document that the outer app's guard must not be combined with the mounted app's.
   */
  it.fails(
    'hono mount(): an outer prefix guard and the mounted route guard accept one correct proof',
    async () => {
      const v = createVerifier(options());
      const token = await bound();
      const inner = new Hono();
      inner.get('/products', honoAuth(v, { mountPath: '/api' }), (c) => c.json({ ok: true }));
      const outer = new Hono();
      outer.use('/api/*', honoAuth(v));
      outer.mount('/api', inner.fetch);
      const p = await proof(holder, 'GET', `${ORIGIN}/api/products`, token);
      const res = await outer.request('http://127.0.0.1/api/products', {
        headers: { authorization: `DPoP ${token}`, dpop: p },
      });
      expect(res.status).toBe(200); // is 401 dpop_replayed
    },
  );

  it('hono (route/basePath): prefix guard plus route guard accept one proof; app.request twice is a replay', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const app = new Hono();
    app.use('/api/*', honoAuth(v));
    app.get('/api/products', honoAuth(v, { scopes: ['read:products'] }), (c) => c.json({ ok: 1 }));
    const p = await proof(holder, 'GET', `${ORIGIN}/api/products`, token);
    const init = { headers: { authorization: `DPoP ${token}`, dpop: p } };
    expect((await app.request('http://127.0.0.1/api/products', init)).status).toBe(200);
    expect((await app.request('http://127.0.0.1/api/products', init)).status).toBe(401);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. trustHost: the Host header as an origin (src/dpop-request.ts originOf)
// ---------------------------------------------------------------------------------------------

describe('trustHost: originOf', () => {
  it('refuses a Host with credentials, a path, query, fragment, backslash, space, bad port or nothing', () => {
    for (const host of [
      'user@api.shop.example',
      'user:pw@api.shop.example',
      'api.shop.example/x',
      'api.shop.example?x',
      'api.shop.example#x',
      'api.shop.example\\x',
      'api.shop.example x',
      'api.shop.example:99999',
      'api.shop.example:-1',
      'api.shop.example:1e3',
      '',
      ':443',
      'api.shop.example%2F',
      'api.shop.example%40evil',
      '[::1',
      'a..b:443@c',
    ]) {
      expect(originOf(`https://${host}`), host).toBeUndefined();
    }
    expect(originOf('https:/api.shop.example')).toBeUndefined();
    expect(originOf('api.shop.example')).toBeUndefined();
  });

  it('accepts what the commit meant: default port, case, an IPv6 spelling', () => {
    expect(originOf('https://API.shop.example:443')).toBe('https://api.shop.example');
    expect(originOf('http://api.shop.example:80')).toBe('http://api.shop.example');
    expect(originOf('https://[0:0::1]:443')).toBe('https://[::1]');
    expect(originOf('https://api.shop.example:8443')).toBe('https://api.shop.example:8443');
  });

  it('a Host header with a userinfo or path never opens a route (end to end, trustHost)', async () => {
    const v = createVerifier(options({ dpop: { trustHost: true } }));
    const token = await bound();
    for (const host of ['evil@api.shop.example', 'api.shop.example/x', 'api.shop.example\\@x']) {
      const p = await proof(holder, 'GET', `${ORIGIN}/products`, token);
      expect(await outcome(v.authenticate(dpopRequest(token, p, { host }))), host).toBe(
        '401 dpop_htu_mismatch',
      );
    }
  });

  /**
   * FIXED (low: trustHost is documented "development only"): since originOf became "parse as a
   * URL, take its origin", a Host header is equated with an origin through WHATWG host parsing,
   * which is far looser than RFC 3986 §6.2.2-6.2.3 normalisation: UTS #46 mapping (`ª` → `a`,
   * U+00AD soft hyphen dropped, fullwidth letters, the ideographic full stop), and IPv4 shorthand
   * (`2130706433`, `0x7f.1`, `127.1` → `127.0.0.1`). `Host: ªpi.shop.example` (one latin-1 byte,
   * which node's parser passes through) opens a route with a proof for
   * `https://api.shop.example/...`; before the change (text compare) it was refused. The commit
   * wanted only the default port and the IPv6 spelling.
   * Root cause: src/dpop-request.ts:67-74 (originOf trusts `new URL(value).origin` for any host
   * the WHATWG parser can map).
   * Fix: after parsing, also require the host text to be the parsed host up to ASCII case and
   * a default or empty port, e.g. `url.hostname === host-part.toLowerCase()` (IPv6: compare
   * after the parser's own serialisation of the bracketed literal only), or refuse any Host
   * byte outside RFC 3986 reg-name / IP-literal and any all-numeric/hex reg-name.
   */
  it('a Host spelling that only UTS #46 or IPv4 shorthand makes equal is not the origin', async () => {
    const v = createVerifier(options({ dpop: { trustHost: true } }));
    const token = await bound();
    const cases: readonly [string, string][] = [
      ['\u00aapi.shop.example', 'https://api.shop.example'],
      ['api.sh\u00adop.example', 'https://api.shop.example'],
      ['\uff41pi.shop.example', 'https://api.shop.example'],
      ['2130706433', 'https://127.0.0.1'],
      ['0x7f.1', 'https://127.0.0.1'],
    ];
    for (const [host, origin] of cases) {
      const p = await proof(holder, 'GET', `${origin}/products`, token);
      expect(await outcome(v.authenticate(dpopRequest(token, p, { host }))), host).toBe(
        '401 dpop_htu_mismatch',
      );
    }
  });

  // The same bug through node's HTTP parser: a latin-1 Host byte (0xAA) reaches the verifier.
  it('over real HTTP (node:http): Host: \u00aapi.shop.example is not api.shop.example', async () => {
    const v = createVerifier(options({ dpop: { trustHost: true } }));
    const token = await bound();
    const server = createServer((req, res) => {
      v.authenticate(req).then(
        () => res.writeHead(200).end('ok'),
        (e: unknown) => res.writeHead(e instanceof AuthError ? e.status : 500).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const p = await proof(holder, 'GET', 'http://api.shop.example/products', token);
      const status = await rawStatus(port, '/products', [
        ['Host', '\u00aapi.shop.example'],
        ['Authorization', `DPoP ${token}`],
        ['DPoP', p],
      ]);
      expect(status).toBe(401); // is 200
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Hono mountPath (adapters/hono/index.ts)
// ---------------------------------------------------------------------------------------------

describe('hono: mountPath', () => {
  let v: Verifier;
  let token: string;
  let outer: Hono;
  beforeAll(async () => {
    v = createVerifier(options());
    token = await bound();
    const inner = new Hono();
    inner.get('/', honoAuth(v, { mountPath: '/api' }), (c) => c.json({ root: true }));
    inner.get('/*', honoAuth(v, { mountPath: '/api' }), (c) => c.json({ ok: true }));
    outer = new Hono();
    outer.mount('/api', inner.fetch);
  });
  const status = async (htu: string, path: string) =>
    (
      await outer.request(`http://127.0.0.1${path}`, {
        headers: { authorization: `DPoP ${token}`, dpop: await proof(holder, 'GET', htu, token) },
      })
    ).status;

  it('property: a proof for the URL the client called opens it; one for the stripped URL never does', async () => {
    const segment = fc.stringMatching(/^[a-z0-9._~-]{1,6}$/).filter((s) => s !== '.' && s !== '..');
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { minLength: 1, maxLength: 3 }),
        fc.option(fc.stringMatching(/^[a-z0-9=&]{0,8}$/), { nil: undefined }),
        async (segments, query) => {
          const path = `/${segments.join('/')}`;
          const target = `/api${path}${query === undefined ? '' : `?${query}`}`;
          expect(await status(`${ORIGIN}/api${path}`, target)).toBe(200);
          expect(await status(`${ORIGIN}${path}`, target)).toBe(401);
          expect(await status(`${ORIGIN}/api/api${path}`, target)).toBe(401);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('a doubled slash, an escaped slash and an escaped unreserved character keep their place', async () => {
    expect(await status(`${ORIGIN}/api//x`, '/api//x')).toBe(200);
    expect(await status(`${ORIGIN}/x`, '/api//x')).toBe(401);
    expect(await status(`${ORIGIN}/api/a%2Fb`, '/api/a%2Fb')).toBe(200);
    expect(await status(`${ORIGIN}/api/a/b`, '/api/a%2Fb')).toBe(401);
    expect(await status(`${ORIGIN}/api/~u`, '/api/%7Eu')).toBe(200);
  });

  it('mountPath values that are not a path are refused at declaration; odd ones fail closed', async () => {
    for (const bad of ['', 'api', '/api?x', '/api#x', '/a\\b', '/a b', 'http://x/api', null, 1]) {
      expect(() => honoAuth(v, { mountPath: bad as string }), String(bad)).toThrow(TypeError);
    }
  });

  /**
   * KNOWN LIMIT (README, Hono: mountPath): the mounted app's root. mount('/api') hands the inner
   * app `/` for a request to `/api` (Hono: `path.slice(prefix) || '/'`), and the guard rebuilds
   * `/api` + `/` = `/api/`: the client's correct proof for `https://api.shop.example/api` is
   * refused (401 dpop_htu_mismatch), and a proof for `/api/` (another URI, RFC 3986 §6.2.3
   * does not equate `/api` and `/api/`) opens `GET /api`.
   * Root cause: adapters/hono/index.ts:64 (`prefix + c.req.url.replace(ORIGIN, '')` cannot tell
   * `/api` from `/api/`: both arrive as `/`).
   * Fix: nothing in the inner Request says which one the client sent; document it, or have
   * mountPath read the original target where one exists (`c.env.incoming.url` on
   * @hono/node-server), or accept both `/api` and `/api/` only for the inner `/`.
   */
  it.fails(
    'GET /api under mount("/api"): the client proof for /api is accepted, one for /api/ is not',
    async () => {
      expect(await status(`${ORIGIN}/api`, '/api')).toBe(200); // is 401
      expect(await status(`${ORIGIN}/api/`, '/api')).toBe(401); // is 200
    },
  );

  it('GET /api/ under mount("/api") with the proof for /api/ is accepted (held)', async () => {
    expect(await status(`${ORIGIN}/api/`, '/api/')).toBe(200);
  });

  /**
   * KNOWN LIMIT (README, Hono: mountPath): under mount() Hono rebuilds the inner URL from its
   * DECODED routing path (`c.req.path`, decodeURI), so escapes of characters outside WHATWG's
   * path percent-encode set come back unescaped: the client's proof for `/api/%28x%29` (or
   * `%21`, `%2A`, `%5B`, `%7C`...) is refused, and one for `/api/(x)` opens `GET /api/%28x%29`
   * (RFC 3986 §2.2: `(` is a sub-delim, `%28` is not `(`; §6.2.2.2 decodes unreserved only).
   * Root cause: adapters/hono/index.ts:64 reads `c.req.url` of the inner Request, which
   * hono/dist/utils/mount.js rebuilt from `c.req.path`, not the client's target.
   * Fix: as above, prefer the untouched original target when the runtime has one
   * (`c.env.incoming.url`), and document the limit of mountPath otherwise.
   */
  it.fails(
    'an escaped sub-delim under mount() keeps its escape (/api/%28x%29 is not /api/(x))',
    async () => {
      expect(await status(`${ORIGIN}/api/%28x%29`, '/api/%28x%29')).toBe(200); // is 401
      expect(await status(`${ORIGIN}/api/(x)`, '/api/%28x%29')).toBe(401); // is 200
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 5. Per-call organization; any-of-none
// ---------------------------------------------------------------------------------------------

describe('per-call organization and { scopes: [], any: true }', () => {
  let v: Verifier;
  let tokens: Record<string, string>;
  beforeAll(async () => {
    v = createVerifier(plainOptions({ organizations: true }));
    tokens = {
      global: await mint(issuerKey, m2mClaims()),
      org1: await mint(issuerKey, m2mClaims({ organization_id: 'org1' })),
      orgEmpty: await mint(issuerKey, m2mClaims({ organization_id: '' })),
      orgToken: await mint(
        issuerKey,
        m2mClaims({ aud: 'urn:logto:organization:org1', scope: 'read:products' }),
      ),
      orgTokenEmpty: await mint(issuerKey, m2mClaims({ aud: 'urn:logto:organization:' })),
    };
  });
  const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });

  it('property: an organization that is there but not a non-empty string opens nothing, on any token, twice', async () => {
    const named = fc.oneof(
      fc.constant(''),
      fc.constant(undefined),
      fc.constant(null),
      fc.array(fc.constantFrom('org1', ''), { maxLength: 2 }),
      fc.integer(),
      fc.boolean(),
      fc.constant({ toString: () => 'org1' }),
      fc.constant(new String('org1')),
    );
    await fc.assert(
      fc.asyncProperty(
        named,
        fc.constantFrom(...Object.keys(tokensKeys)),
        fc.boolean(),
        async (organization, which, viaAuthenticate) => {
          const t = tokens[which]!;
          const req = { organization } as unknown as Requirements;
          for (let i = 0; i < 2; i++) {
            const answer = await outcome(
              viaAuthenticate ? v.authenticate(bearer(t), req) : v.verify(t, req),
            );
            expect(answer).not.toBe('ok');
            expect(answer).toMatch(/^(401|403) /);
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it('`organization: undefined` with anyOrganization is any organization (never a global-only route)', async () => {
    const req = { organization: undefined, anyOrganization: true } as unknown as Requirements;
    expect(await outcome(v.verify(tokens.org1!, req))).toBe('ok');
    expect(await outcome(v.verify(tokens.global!, req))).toBe('ok');
    // ...but a token for the empty organization is no organization token.
    expect(await outcome(v.verify(tokens.orgEmpty!, req))).not.toBe('ok');
  });

  it('declared on a route, organization "" (or a non-string) is a TypeError; per call it is a 403', async () => {
    for (const organization of ['', null, ['org1'], 7]) {
      expect(() => v.guard({ organization } as unknown as Requirements)).toThrow(TypeError);
    }
    // Declared as undefined on a route: a TypeError too since session 32 (it was a global route,
    // so an unset `process.env.ORG_ID` opened an organization route to every global token).
    expect(() => v.guard({ organization: undefined } as unknown as Requirements)).toThrow(
      /`organization` is undefined/,
    );
    expect(await outcome(v.verify(tokens.org1!, { organization: '' }))).toBe(
      '403 organization_mismatch',
    );
  });

  it('a guard context naming no organization opens nothing, whatever the cached note of the token', async () => {
    const open = v.guard({});
    const orgRoute = v.guard({ organization: 'org1' });
    expect(await outcome(open(bearer(tokens.global!)))).toBe('ok'); // note set on the entry
    expect(await outcome(open(bearer(tokens.global!), { organization: undefined }))).toBe(
      '403 organization_mismatch',
    );
    expect(await outcome(orgRoute(bearer(tokens.org1!), { organization: 'org1' }))).toBe('ok');
    expect(await outcome(orgRoute(bearer(tokens.org1!), { organization: '' }))).toBe(
      '403 organization_mismatch',
    );
  });

  it('{ scopes: [], any: true } admits no token, cached or not, after an open route noted the token', async () => {
    const open = v.guard({});
    const none = v.guard({ scopes: [], any: true });
    const all = v.guard({ scopes: [] });
    for (let i = 0; i < 3; i++) {
      expect(await outcome(open(bearer(tokens.global!)))).toBe('ok');
      expect(await outcome(all(bearer(tokens.global!)))).toBe('ok');
      expect(await outcome(none(bearer(tokens.global!)))).toBe('403 insufficient_scope');
      expect(await outcome(v.verify(tokens.global!, { scopes: [], any: true }))).toBe(
        '403 insufficient_scope',
      );
    }
    // The challenge carries no empty scope="" attribute.
    const error = await none(bearer(tokens.global!)).catch((e: unknown) => e as AuthError);
    expect((error as AuthError).headers['www-authenticate']).not.toMatch(/scope=/);
    // An optional any-of-none route: anonymous passes, a token does not.
    const optional = v.guard({ scopes: [], any: true, optional: true });
    expect(await outcome(optional({ headers: {} }))).toBe('ok');
    expect(await outcome(optional(bearer(tokens.global!)))).toBe('403 insufficient_scope');
  });
});

const tokensKeys = { global: 1, org1: 1, orgEmpty: 1, orgToken: 1, orgTokenEmpty: 1 } as const;

// ---------------------------------------------------------------------------------------------
// 6. Key-set registry (src/key-set.ts) and the scheme wording (src/errors.ts)
// ---------------------------------------------------------------------------------------------

describe('key-set registry', () => {
  it('verifiers let go are not kept: after a GC the registry holds only live sets', async () => {
    setFlagsFromString('--expose_gc');
    const gc = runInNewContext('gc') as () => void;
    const keep = createVerifier(plainOptions());
    for (let i = 0; i < 2000; i++) createVerifier(plainOptions());
    // Let the job end (WeakRef targets are kept to the end of the job that made them).
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    const states = keySetStates();
    expect(states.length).toBeLessThan(200);
    void keep;
  });

  it('a runtime without WeakRef: verifiers are created and work; nothing is registered', async () => {
    const saved = globalThis.WeakRef;
    const before = keySetStates().length;
    try {
      (globalThis as { WeakRef?: unknown }).WeakRef = undefined;
      const verifier = createVerifier(plainOptions());
      expect(await outcome(verifier.verify(await mint(issuerKey, m2mClaims())))).toBe('ok');
    } finally {
      globalThis.WeakRef = saved;
    }
    expect(keySetStates().length).toBeLessThanOrEqual(before);
  });

  it('a new verifier key set is listed before any use (what instrument() seeds from)', async () => {
    const verifier = createVerifier(plainOptions());
    const mine = keySetStates().filter((s) => s.issuers.includes(ISSUER));
    expect(mine.length).toBeGreaterThan(0);
    expect(verifier.health()[0]?.issuer).toBe(ISSUER);
  });
});

describe('scheme wording', () => {
  it('never echoes the token, and names DPoP only where the request or route does', async () => {
    const v = createVerifier(options({ dpop: { origin: ORIGIN, mode: 'allowed' } }));
    const token = await bound();
    const dpopOnly = v.guard({ dpop: 'required' });
    const bad = await v
      .authenticate({ headers: { authorization: `DPoP ${token} ${token}` } })
      .catch((e: unknown) => e as AuthError);
    expect(bad).toBeInstanceOf(AuthError);
    expect(JSON.stringify((bad as AuthError).body)).not.toContain(token.slice(20, 60));
    expect((bad as AuthError).body.error_description).toMatch(/DPoP/);
    const missing = await dpopOnly({ headers: {} }).catch((e: unknown) => e as AuthError);
    expect((missing as AuthError).body.error_description).toMatch(/Authorization: DPoP/);
    const bearerBad = await v
      .authenticate({ headers: { authorization: `Bearer ${token} x` } })
      .catch((e: unknown) => e as AuthError);
    expect((bearerBad as AuthError).body.error_description).toMatch(/Bearer/);
    expect(JSON.stringify((bearerBad as AuthError).body)).not.toContain(token.slice(20, 60));
  });
});

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: the target and header bytes exactly as written (latin-1)
// ---------------------------------------------------------------------------------------------

function rawStatus(
  port: number,
  target: string,
  headers: readonly (readonly [string, string])[],
): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      const lines = [`GET ${target} HTTP/1.1`];
      if (!headers.some(([name]) => name.toLowerCase() === 'host')) {
        lines.push('Host: api.shop.example');
      }
      for (const [name, value] of headers) lines.push(`${name}: ${value}`);
      lines.push('Connection: close', '', '');
      socket.write(Buffer.from(lines.join('\r\n'), 'latin1'));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      const head = Buffer.concat(chunks).toString('latin1');
      resolve(Number(head.split(' ')[1] ?? 0));
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
  });
}
