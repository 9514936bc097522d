/**
 * Adversarial review of the last commits (d08f481..HEAD):
 *  1. the Hono guard reading @hono/node-server's own request (`c.env.incoming`) on Node;
 *  2. normalizeEscapes (a stray `%` is no path) and originOf's AUTHORITY rule (trustHost);
 *  3. reportRejection and any thenable; KeySourceError holding displayUrl(url);
 *  4. a discovered jwks_uri with credentials refused; a JWK nested too deep skipped;
 *  5. the RFC 9728 metadata path escaped for find-my-way and path-to-regexp (Fastify, NestJS).
 *
 * Its three findings are FIXED, each now a plain test that failed before its fix (root cause in
 * the comment above each): the Hono guard reads the Request its app was handed again, never
 * `c.env.incoming` (item 1 reverted), and a metadata path with an escape is cut into a wildcard
 * for find-my-way. Everything else is behaviour that held.
 */
import 'reflect-metadata';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier, KeySourceError } from 'resource-guard';
import type { RejectionEvent, Verifier, VerifierOptions } from 'resource-guard';
import { requireAuth as honoAuth } from 'resource-guard/hono';
import { normalizeHtu, originOf, pathOf } from '../src/dpop-request.ts';
import { listenLoopback } from './helpers/http.ts';
import { dpopOptions, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { AUDIENCE, ISSUER, m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';

// ---------------------------------------------------------------------------------------------
// Shared material
// ---------------------------------------------------------------------------------------------

let issuerKey: TestKey;
let holder: ProofKey;

const options = (extra: Partial<VerifierOptions> = {}): VerifierOptions =>
  dpopOptions(issuerKey, extra);

const bound = (claims: Record<string, unknown> = {}) =>
  mint(issuerKey, m2mClaims({ cnf: { jkt: holder.jkt }, ...claims }));

beforeAll(async () => {
  [issuerKey, holder] = await Promise.all([makeKey('ES256'), makeProofKey()]);
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Answer {
  status: number;
  head: string;
  text: string;
  raw: string;
}

/** One raw HTTP/1.1 request (or several pipelined): the request line and headers as written. */
function raw(port: number, requests: string, timeout = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(Buffer.from(requests, 'latin1'));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    socket.setTimeout(timeout, () => socket.destroy(new Error('no answer in time')));
  });
}

function requestText(
  method: string,
  target: string,
  headers: readonly (readonly [string, string])[],
  close = true,
): string {
  const lines = [`${method} ${target} HTTP/1.1`];
  if (!headers.some(([name]) => name.toLowerCase() === 'host')) {
    lines.push('Host: api.shop.example');
  }
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  if (close) lines.push('Connection: close');
  lines.push('', '');
  return lines.join('\r\n');
}

async function send(
  port: number,
  method: string,
  target: string,
  headers: readonly (readonly [string, string])[],
): Promise<Answer> {
  const text = await raw(port, requestText(method, target, headers));
  const end = text.indexOf('\r\n\r\n');
  return {
    status: Number(text.split(' ')[1] ?? 0),
    head: end < 0 ? text : text.slice(0, end),
    text: end < 0 ? '' : text.slice(end + 4),
    raw: text,
  };
}

async function honoOnNode(app: Hono): Promise<number> {
  const { createAdaptorServer } = await import('@hono/node-server');
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  const { port, close } = await listenLoopback(server);
  cleanups.push(close);
  return port;
}

const honoErrors = (app: Hono) =>
  app.onError((err, c) =>
    err instanceof AuthError
      ? c.json(err.body, err.status, err.headers)
      : c.json({ error: 'server_error' }, 500),
  );

// ---------------------------------------------------------------------------------------------
// 1. Hono on Node: the guard reads c.env.incoming
// ---------------------------------------------------------------------------------------------

describe('hono on Node: the guard reads the Request its app was handed, never c.env.incoming', () => {
  /**
   * FIXED by reverting the change (medium-low: needs an app that dispatches a sub-request with `app.fetch(req, c.env)`
   * / `app.request(path, init, c.env)`, the usual way to keep bindings; Hono's own
   * methodOverride does it). On @hono/node-server `c.env.incoming` is the CLIENT's request for
   * every app.fetch() that forwards `c.env`, not only for mount(). The guard now reads the
   * credentials of that outer request, not of the Request it guards (`c.req.raw`): an internal
   * sub-request sent WITHOUT credentials (an anonymous call, a cookie-less render, a link
   * preview) passes on the client's token, and one sent WITH its own credentials is judged by
   * the client's. A cold verification of the request the route handles (no Authorization) is 401.
   * Root cause: adapters/hono/index.ts:74 `guard.run(c, nodeRequest(c) ?? c.req.raw, ...)` and
   * nodeRequest() (adapters/hono/index.ts:93-100) take `c.env.incoming` whenever it has `url` and
   * `rawHeaders`, without checking that `c.req.raw` is node-server's request for it (or a
   * mount() copy of it).
   * Fix: read the credentials from `c.req.raw` (Headers joins a repeated field with ", ", which
   * is already refused as two credentials), and use `incoming` only for the DPoP target and the
   * replay-memo key, and only when `c.req.raw` still carries the same Authorization / DPoP /
   * Cookie values as `incoming` (a mount() copy does; a sub-request built by the app does not);
   * otherwise fall back to `c.req.raw` and its URL (+ mountPath).
   */
  it('an internal sub-request without credentials is not authorised by the client’s token', async () => {
    const v = createVerifier(options());
    const token = await mint(issuerKey, m2mClaims({ scope: 'admin' }));
    const app = new Hono();
    honoErrors(app);
    app.get('/internal/secret', honoAuth(v, { scopes: ['admin'] }), (c) => c.json({ s: 1 }));
    // A public page that asks the internal API anonymously (c.env forwarded, as usual).
    app.get('/page', async (c) => {
      const inner = await app.request('http://internal/internal/secret', {}, c.env);
      return c.json({ inner: inner.status });
    });
    const port = await honoOnNode(app);
    const answer = await send(port, 'GET', '/page', [['Authorization', `Bearer ${token}`]]);
    expect(answer.status).toBe(200);
    // The sub-request carries no credentials: 401 by the rules. Was 200 (the client's token).
    expect(JSON.parse(answer.text)).toEqual({ inner: 401 });
  });

  // Same root cause, the other direction: the app's own credentials on the sub-request are ignored.
  it('an internal sub-request with its own token is judged by that token, not the client’s headers', async () => {
    const v = createVerifier(options());
    const service = await mint(issuerKey, m2mClaims({ scope: 'admin' }));
    const app = new Hono();
    honoErrors(app);
    app.get('/internal/secret', honoAuth(v, { scopes: ['admin'] }), (c) => c.json({ s: 1 }));
    app.get('/page', async (c) => {
      const inner = await app.request(
        'http://internal/internal/secret',
        { headers: { authorization: `Bearer ${service}` } },
        c.env,
      );
      return c.json({ inner: inner.status });
    });
    const port = await honoOnNode(app);
    const answer = await send(port, 'GET', '/page', []);
    // Was 401: judged by the client's headers (the client sent none).
    expect(JSON.parse(answer.text)).toEqual({ inner: 200 });
  });

  /**
   * Same root cause, DPoP: a sub-request to ANOTHER path is checked against the client's
   * target, so a proof for `GET /page` opens `GET /internal/admin` (RFC 9449 §4.3 step 9: htu is
   * the URI of the request the proof is checked for). Before the commit the inner guard compared
   * `/internal/admin` and refused.
   */
  it('DPoP: a proof for the outer URL does not open a sub-request to another path', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const app = new Hono();
    honoErrors(app);
    app.get('/internal/admin', honoAuth(v), (c) => c.json({ admin: true }));
    app.get('/page', async (c) => {
      const inner = await app.fetch(
        new Request('http://internal/internal/admin', { headers: c.req.raw.headers }),
        c.env,
      );
      return c.json({ inner: inner.status });
    });
    const port = await honoOnNode(app);
    const p = await proof(holder, 'GET', `${ORIGIN}/page`, token);
    const answer = await send(port, 'GET', '/page', [
      ['Authorization', `DPoP ${token}`],
      ['DPoP', p],
    ]);
    expect(JSON.parse(answer.text)).toEqual({ inner: 401 }); // was 200
  });

  it('off Node (no incoming): the sub-request is read as itself (held: app.request with no env)', async () => {
    const v = createVerifier(options());
    const token = await mint(issuerKey, m2mClaims({ scope: 'admin' }));
    const app = new Hono();
    honoErrors(app);
    app.get('/internal/secret', honoAuth(v, { scopes: ['admin'] }), (c) => c.json({ s: 1 }));
    app.get('/page', async (c) => {
      const inner = await app.request('http://internal/internal/secret', {}, c.env);
      return c.json({ inner: inner.status });
    });
    const res = await app.request('http://x/page', {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(await res.json()).toEqual({ inner: 401 });
  });

  it('a user binding named `incoming` that is not node-server’s request is ignored unless it has url and rawHeaders', async () => {
    const v = createVerifier(options());
    const token = await mint(issuerKey, m2mClaims());
    const app = new Hono();
    honoErrors(app);
    app.get('/x', honoAuth(v), (c) => c.json({ ok: 1 }));
    for (const incoming of [
      'a string',
      42,
      null,
      { url: '/x' },
      { rawHeaders: [] },
      { url: 1, rawHeaders: [] },
      { url: '/x', rawHeaders: 'Authorization' },
    ]) {
      const res = await app.request(
        'http://x/x',
        { headers: { authorization: `Bearer ${token}` } },
        { incoming },
      );
      expect(res.status, inspect(incoming)).toBe(200);
    }
  });

  it('Bearer over real HTTP: header case, duplicates (same or mixed case) and a request id', async () => {
    const v = createVerifier(options());
    const token = await mint(issuerKey, m2mClaims());
    const app = new Hono();
    app.use(requestId());
    app.get('/x', honoAuth(v), (c) => c.json({ ok: 1 }));
    const port = await honoOnNode(app);
    expect((await send(port, 'GET', '/x', [['aUtHoRiZaTiOn', `bEaReR ${token}`]])).status).toBe(
      200,
    );
    for (const headers of [
      [
        ['Authorization', `Bearer ${token}`],
        ['Authorization', `Bearer ${token}`],
      ],
      [
        ['authorization', `Bearer ${token}`],
        ['AUTHORIZATION', 'Bearer x'],
      ],
      [['Authorization', `Bearer ${token}, Bearer ${token}`]],
    ] as const) {
      const answer = await send(port, 'GET', '/x', headers);
      expect(answer.status).toBe(400);
      expect(answer.raw).not.toContain(token.split('.')[1]!);
      expect(answer.head.toLowerCase()).toContain('x-request-id:');
      expect(answer.head.toLowerCase()).toContain('www-authenticate:');
    }
    // An unknown token: 401, never echoed.
    const answer = await send(port, 'GET', '/x', [['Authorization', 'Bearer abc.def.ghi']]);
    expect(answer.status).toBe(401);
    expect(answer.raw).not.toContain('abc.def.ghi');
  });

  it('DPoP over real HTTP: two DPoP headers, two Authorization headers, a bad proof: 400/401, no echo', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const app = new Hono();
    app.get('/x', honoAuth(v), (c) => c.json({ ok: 1 }));
    const port = await honoOnNode(app);
    const p = await proof(holder, 'GET', `${ORIGIN}/x`, token);
    const cases: (readonly (readonly [string, string])[])[] = [
      [
        ['Authorization', `DPoP ${token}`],
        ['DPoP', p],
        ['dpop', p],
      ],
      [
        ['Authorization', `DPoP ${token}`],
        ['Authorization', `DPoP ${token}`],
        ['DPoP', p],
      ],
      [
        ['Authorization', `DPoP ${token}`],
        ['DPoP', 'x.y.z'],
      ],
      [['Authorization', `DPoP ${token}`]],
    ];
    for (const headers of cases) {
      const answer = await send(port, 'GET', '/x', headers);
      expect([400, 401]).toContain(answer.status);
      expect(answer.raw).not.toContain(token.split('.')[1]!);
      expect(answer.raw).not.toContain(p.split('.')[1]!);
    }
    // The proof was never consumed by the refused requests: it still opens the route once.
    const ok = await send(port, 'GET', '/x', [
      ['Authorization', `DPoP ${token}`],
      ['DPoP', p],
    ]);
    expect(ok.status).toBe(200);
  });

  it('pipelined requests on one connection: one proof opens the first only (distinct incoming objects)', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const app = new Hono();
    app.use('/api/*', honoAuth(v));
    app.get('/api/x', honoAuth(v), (c) => c.json({ ok: 1 }));
    const port = await honoOnNode(app);
    const p = await proof(holder, 'GET', `${ORIGIN}/api/x`, token);
    const headers = [
      ['Authorization', `DPoP ${token}`],
      ['DPoP', p],
    ] as const;
    const text = await raw(
      port,
      requestText('GET', '/api/x', headers, false) + requestText('GET', '/api/x', headers, true),
    );
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 401]);
  });

  it('hostile targets over real HTTP: 400/401/404, never 500, never a hang, nothing echoed', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const app = new Hono();
    honoErrors(app);
    app.get('/api/*', honoAuth(v), (c) => c.json({ path: c.req.path }));
    app.get('/*', honoAuth(v), (c) => c.json({ path: c.req.path }));
    const port = await honoOnNode(app);
    const targets = [
      '/api/%',
      '/api/%zz',
      '/api/%2',
      '/api/a%2%46b',
      '/api/%%32%46',
      '/api/%2e%2e/x',
      '/api/./x',
      '/api/../x',
      '//api/x',
      '/api/x#frag',
      'http://api.shop.example/api/x',
      'http://u:p@api.shop.example/api/x',
      'http://api.shop.example/api/../x',
      'http://api.shop.example',
      'https://evil.example/api/x?q=1',
      '*',
      `/api/${'%41'.repeat(2000)}`,
      `/api/${'a/'.repeat(2000)}`,
      '/api/\u00ff',
      '/api/x?%zz',
    ];
    for (const target of targets) {
      const p = await proof(holder, 'GET', `${ORIGIN}/api/x`, token);
      const answer = await send(port, 'GET', target, [
        ['Authorization', `DPoP ${token}`],
        ['DPoP', p],
      ]);
      expect([200, 400, 401, 404], target).toContain(answer.status);
      expect(answer.raw, target).not.toContain(token.split('.')[1]!);
      // Only a target that IS /api/x (origin ignored: dpop.origin is configured) may pass.
      if (answer.status === 200) {
        expect(JSON.parse(answer.text), target).toEqual({ path: '/api/x' });
      }
    }
  });

  it('property: a proof opens a target only when Hono routes that target to the proof’s path (RFC 3986 §6.2.2 equal)', async () => {
    const v = createVerifier(options());
    const token = await bound();
    const app = new Hono();
    honoErrors(app);
    app.get('/api/*', honoAuth(v), (c) => c.json({ path: c.req.path }));
    const port = await honoOnNode(app);
    const unreserved = 'abcXYZ019-._~';
    const reservedish = "!$&'()*+,;=:@";
    const char = fc.constantFrom(...unreserved, ...reservedish);
    const segment = fc
      .array(char, { minLength: 1, maxLength: 5 })
      .map((cs) => cs.join(''))
      .filter((s) => s !== '.' && s !== '..');
    const encode = (s: string, flip: boolean) =>
      [...s]
        .map((ch) => {
          const hex = ch.charCodeAt(0).toString(16);
          return `%${flip ? hex.toUpperCase() : hex.toLowerCase()}`;
        })
        .join('');
    // Each character either as is or escaped (random hex case).
    const spelled = (s: string, picks: readonly number[]) =>
      [...s]
        .map((ch, i) => {
          const pick = picks[i % picks.length] ?? 0;
          return pick === 0 ? ch : encode(ch, pick === 2);
        })
        .join('');
    await fc.assert(
      fc.asyncProperty(
        fc.array(segment, { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 6 }),
        async (segments, proofPicks, targetPicks) => {
          const proofPath = `/api/${segments.map((s) => spelled(s, proofPicks)).join('/')}`;
          const target = `/api/${segments.map((s) => spelled(s, targetPicks)).join('/')}`;
          const p = await proof(holder, 'GET', `${ORIGIN}${proofPath}`, token);
          const answer = await send(port, 'GET', target, [
            ['Authorization', `DPoP ${token}`],
            ['DPoP', p],
          ]);
          expect([200, 401]).toContain(answer.status);
          const same = normalizeHtu(`${ORIGIN}${proofPath}`) === `${ORIGIN}${pathOf(target)}`;
          expect(answer.status === 200).toBe(same);
          if (answer.status === 200) {
            // Hono's routing path of the target equals the one of the proof's path.
            const routed = (JSON.parse(answer.text) as { path: string }).path;
            const honoPath = (path: string) =>
              decodeURI(path).replace(/%[0-9a-f]{2}/g, (e) => e.toUpperCase());
            expect(routed.replace(/%[0-9a-f]{2}/g, (e) => e.toUpperCase())).toBe(
              honoPath(proofPath),
            );
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  // Same root cause (a regression, fails closed): a middleware that turns a session into an
  // Authorization header on c.req.raw (it worked before the commit) is ignored on Node: 401.
  it('a header a middleware sets on c.req.raw is read by the guard (as before the commit)', async () => {
    const v = createVerifier(options());
    const token = await mint(issuerKey, m2mClaims());
    const app = new Hono();
    honoErrors(app);
    app.use(async (c, next) => {
      c.req.raw.headers.set('authorization', `Bearer ${token}`);
      await next();
    });
    app.get('/x', honoAuth(v), (c) => c.json({ ok: 1 }));
    const port = await honoOnNode(app);
    expect((await send(port, 'GET', '/x', [])).status).toBe(200); // was 401
  });

  /**
   * FIXED by reverting the change (medium: every request 500 on a documented configuration; not looser). `getToken`
   * receives the request the adapter passes. The README (Hono: "It reads the Web `Request`
   * (`c.req.raw`)", README.md:424) and the adapter's own JSDoc (adapters/hono/index.ts:36-37)
   * still say the Hono guard reads the Web Request, so a Hono app's extractor is written for one
   * (`req.headers.get('x-api-token')`). On Node it now gets node's IncomingMessage, whose
   * `headers` is a plain object: `get` is not a function, a TypeError, which the kit hands to
   * `fail` (a bug, not an AuthError) and Hono answers 500 - for every request, a hostile one
   * included (invariant: hostile input never a 500).
   * Root cause: adapters/hono/index.ts:74 passes `nodeRequest(c)` (c.env.incoming) as the
   * RequestLike that src/request.ts:206 hands to `getToken`.
   * Fix: pass `c.req.raw` as the request (see the fix above: credentials from c.req.raw), or at
   * least give `getToken` the Web Request; and update README.md:424 and the JSDoc.
   */
  it('getToken written for the Web Request (as the README says Hono passes) works on Node', async () => {
    const v = createVerifier(
      options({
        getToken: (request) => (request.headers as Headers).get('x-api-token') ?? undefined,
      }),
    );
    const token = await mint(issuerKey, m2mClaims());
    const app = new Hono();
    honoErrors(app);
    app.get('/x', honoAuth(v), (c) => c.json({ ok: 1 }));
    // Off Node (app.request): the Web Request, 200 and 401.
    expect((await app.request('http://x/x', { headers: { 'x-api-token': token } })).status).toBe(
      200,
    );
    expect((await app.request('http://x/x')).status).toBe(401);
    const port = await honoOnNode(app);
    expect((await send(port, 'GET', '/x', [['X-Api-Token', token]])).status).toBe(200); // was 500
    expect((await send(port, 'GET', '/x', [])).status).toBe(401); // was 500
  });
});

// ---------------------------------------------------------------------------------------------
// 2. normalizeEscapes and originOf
// ---------------------------------------------------------------------------------------------

describe('normalizeEscapes: a stray % is no path, and undefined never becomes a TypeError', () => {
  it('property: normalizeHtu and pathOf never throw, and a stray % gives undefined', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 40 }),
        fc.constantFrom('', '%', '%z', '%2', '%%', '%2%46', '%g0'),
        (text, stray) => {
          for (const path of [`/${text}`, `/${text}${stray}`, `/${stray}${text}`]) {
            const htu = `${ORIGIN}${path}`;
            expect(() => normalizeHtu(htu)).not.toThrow();
            expect(() => pathOf(path)).not.toThrow();
            const parsed = URL.canParse(htu) ? new URL(htu).pathname : undefined;
            if (parsed !== undefined && /%(?![0-9A-Fa-f]{2})/.test(parsed)) {
              expect(normalizeHtu(htu)).toBeUndefined();
            }
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('a proof whose htu path has a stray % is refused as htu mismatch (401), never 500', async () => {
    const v = createVerifier(options());
    const token = await bound();
    for (const path of ['/products%', '/a%2%46b', '/%zz', '/%']) {
      const p = await proof(holder, 'GET', `${ORIGIN}${path}`, token);
      const request = {
        method: 'GET',
        url: path,
        headers: { authorization: `DPoP ${token}`, dpop: p, host: 'api.shop.example' },
      };
      expect(await outcome(v.authenticate(request)), path).toBe('401 dpop_htu_mismatch');
    }
  });

  it('an escape in the query does not matter; one in the path stays an escape', () => {
    expect(pathOf('/a?%zz')).toBe('/a');
    expect(pathOf('/a%2fb')).toBe('/a%2Fb');
    expect(normalizeHtu(`${ORIGIN}/a?%zz`)).toBe(`${ORIGIN}/a`);
    expect(normalizeHtu(`${ORIGIN}/a%25`)).toBe(`${ORIGIN}/a%25`);
  });
});

describe('trustHost: originOf and the AUTHORITY rule', () => {
  it('legitimate Host values are accepted: ports, case, trailing dot, IPv4, IPv6 spellings', () => {
    const cases: [string, string][] = [
      ['https://localhost:3000', 'https://localhost:3000'],
      ['https://API.Shop.Example', 'https://api.shop.example'],
      ['https://api.shop.example:443', 'https://api.shop.example'],
      ['http://api.shop.example:80', 'http://api.shop.example'],
      ['https://api.shop.example.', 'https://api.shop.example.'],
      ['https://127.0.0.1:8443', 'https://127.0.0.1:8443'],
      ['https://[::1]:8443', 'https://[::1]:8443'],
      ['https://[0:0:0:0:0:0:0:1]', 'https://[::1]'],
      ['https://[::FFFF:127.0.0.1]', 'https://[::ffff:7f00:1]'],
      ['https://my_host.internal', 'https://my_host.internal'],
      ['https://XN--BCHER-KVA.example', 'https://xn--bcher-kva.example'],
      ['https://api.shop.example:', 'https://api.shop.example'],
    ];
    for (const [value, origin] of cases) expect(originOf(value), value).toBe(origin);
  });

  it('Host values that only parsing makes a name are refused: zone ids, shorthand IPv4, Unicode, escapes', () => {
    for (const host of [
      '[fe80::1%25eth0]',
      '[fe80::1%eth0]',
      '0x7f.0.0.1',
      '127.1',
      '127.000.0.1',
      '017700000001',
      '1.2.3.4.',
      'api.shop.example:443:443',
      'api.shop.example:+443',
      'api.shop.ex\u00e4mple',
      'api%2eshop.example',
      '[v1.x]',
      'api.shop.example\t',
      ' api.shop.example',
      'api.shop.example\u0000',
    ]) {
      expect(originOf(`https://${host}`), JSON.stringify(host)).toBeUndefined();
    }
  });

  it('an xn-- label that is no punycode is no origin where the URL parser refuses it', () => {
    // Node 20 and 22 refuse `XN--0`, Node 24 and later take it: whichever, originOf agrees.
    for (const host of ['XN--0', 'xn--0', 'api.xn--0', 'xn--a']) {
      const value = `https://${host}`;
      expect(originOf(value)).toBe(URL.canParse(value) ? new URL(value).origin : undefined);
    }
  });

  it('property: an ASCII reg-name in any case with any port is its own origin (lower-cased)', () => {
    const label = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]$/);
    fc.assert(
      fc.property(
        fc.array(label, { minLength: 1, maxLength: 4 }),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.constantFrom('http:', 'https:'),
        (labels, port, scheme) => {
          const host = labels.join('.');
          // Not a number-looking last label (WHATWG would read it as IPv4).
          fc.pre(!/^(?:\d+|0x[0-9a-f]*)$/i.test(labels.at(-1)!));
          const value = `${scheme}//${host}${port === undefined ? '' : `:${port}`}`;
          // A label the URL parser refuses (an `xn--` one that is no punycode: `XN--0`) is no
          // origin at all. Found by this property's own unseeded run in CI (session 21).
          if (!URL.canParse(value)) {
            expect(originOf(value)).toBeUndefined();
            return;
          }
          expect(originOf(value)).toBe(new URL(value).origin);
          expect(new URL(value).hostname).toBe(host.toLowerCase());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: any Host with a character outside RFC 3986 reg-name/IP-literal is refused', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20 }),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }),
        (base, odd) => {
          fc.pre(/[^A-Za-z0-9._~!$&'()*+,;=:[\]-]/.test(odd));
          const host = `a${base.replace(/[^a-z]/g, '')}${odd}.example`;
          expect(originOf(`https://${host}`)).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('end to end (trustHost): a Host with a port opens with its proof; a shorthand or zone id never does', async () => {
    const v = createVerifier(options({ dpop: { trustHost: true } }));
    const token = await bound();
    const go = async (host: string, htuOrigin: string) => {
      const p = await proof(holder, 'GET', `${htuOrigin}/products`, token);
      return outcome(
        v.authenticate({
          method: 'GET',
          url: '/products',
          headers: { authorization: `DPoP ${token}`, dpop: p, host },
        }),
      );
    };
    expect(await go('localhost:3000', 'https://localhost:3000')).toBe('ok');
    expect(await go('[::1]:8443', 'https://[::1]:8443')).toBe('ok');
    expect(await go('API.example.com', 'https://api.example.com')).toBe('ok');
    expect(await go('127.1:8443', 'https://127.0.0.1:8443')).toBe('401 dpop_htu_mismatch');
    expect(await go('[fe80::1%25eth0]', 'https://[fe80::1]')).toBe('401 dpop_htu_mismatch');
  });
});

// ---------------------------------------------------------------------------------------------
// 3. reportRejection and KeySourceError
// ---------------------------------------------------------------------------------------------

describe('onRejected returning odd thenables; KeySourceError.url', () => {
  it('a thenable whose then throws, a throwing then getter, a never-settling thenable: answer unchanged, no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const hooks: ((event: RejectionEvent) => unknown)[] = [
        () => ({
          then() {
            throw new Error('then throws');
          },
        }),
        () => ({
          get then() {
            throw new Error('getter throws');
          },
        }),
        () => ({ then: () => undefined }),
        () => ({
          then(_resolve: unknown, reject: (e: unknown) => void) {
            reject(new Error('late'));
          },
        }),
        () => Object.assign(() => undefined, { then: 1 }),
      ];
      for (const onRejected of hooks) {
        const v = createVerifier(options({ onRejected }));
        expect(await outcome(v.verify('not-a-token'))).toBe('401 opaque_token');
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('KeySourceError.url shows no credentials, query or fragment, whatever the URL', () => {
    fc.assert(
      fc.property(
        fc.webUrl({ withQueryParameters: true, withFragments: true }),
        fc.stringMatching(/^[A-Za-z0-9]{6,12}$/),
        (url, secret) => {
          const u = new URL(url);
          u.username = 'user';
          u.password = `PW${secret}`;
          u.search = `?api_key=SK${secret}`;
          const error = new KeySourceError('network', 'request failed', u.href);
          expect(error.url).not.toContain(`PW${secret}`);
          expect(error.url).not.toContain(`SK${secret}`);
          expect(inspect(error)).not.toContain(`SK${secret}`);
          expect(inspect(error)).not.toContain(`PW${secret}`);
        },
      ),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Discovery: a jwks_uri with credentials; a JWK nested too deep
// ---------------------------------------------------------------------------------------------

async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server: Server = createServer(handler);
  const { origin, close } = await listenLoopback(server);
  cleanups.push(close);
  return origin;
}

describe('discovery: jwks_uri userinfo in every spelling', () => {
  const discovered = async (jwksUri: (host: string) => string) => {
    let jwksHits = 0;
    const origin = await httpServer((req, res) => {
      const host = req.headers.host!;
      if (req.url === '/oidc/.well-known/openid-configuration') {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ issuer: `http://${host}/oidc`, jwks_uri: jwksUri(host) }));
      } else if (req.url?.startsWith('/jwks')) {
        jwksHits++;
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ keys: [issuerKey.jwk] }));
      } else res.writeHead(404).end();
    });
    const issuer = `${origin}/oidc`;
    const events: RejectionEvent[] = [];
    const verifier = createVerifier({
      issuer,
      audience: AUDIENCE,
      cache: false,
      onRejected: (e) => void events.push(e),
    });
    const answer = await outcome(
      verifier.verify(await mint(issuerKey, m2mClaims({ iss: issuer }))),
    );
    return { answer, verifier, events, hits: () => jwksHits };
  };

  it.each([
    ['user:@', 'user'],
    [':PASSWORD1@', 'PASSWORD1'],
    ['%75ser%3APASSWORD2@', 'PASSWORD2'],
    ['USER3:%50%57@', 'USER3'],
    ['a%40b:c@', 'a%40b'],
  ])('jwks_uri with userinfo %s: 503, never fetched, never shown', async (userinfo, secret) => {
    const { answer, verifier, events, hits } = await discovered(
      (host) => `http://${userinfo}${host}/jwks?api_key=SECRET9`,
    );
    expect(answer).toBe('503 keys_unavailable');
    expect(hits()).toBe(0);
    const shown = JSON.stringify(verifier.health()) + inspect(events, { depth: 8 });
    expect(shown).not.toContain(secret);
    expect(shown).not.toContain('SECRET9');
  });

  it('an empty userinfo (`http://@host/jwks`) is no credentials: the keys load', async () => {
    const { answer } = await discovered((host) => `http://@${host}/jwks`);
    expect(answer).toBe('ok');
  });
});

describe('a JWK nested past the stack', () => {
  const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

  it('a deep member in another key skips that key only; in the token’s own key: 401/503, never a crash', async () => {
    const other = await makeKey('ES256');
    let body = '';
    const origin = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
    const jwks = (keys: string[]) => `{"keys":[${keys.join(',')}]}`;
    const withDeep = (jwk: object) =>
      `${JSON.stringify(jwk).slice(0, -1)},"x-deep":${deep(120_000)}}`;
    body = jwks([withDeep(other.jwk), JSON.stringify(issuerKey.jwk)]);
    const v1 = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUri: `${origin}/jwks` });
    expect(await outcome(v1.verify(await mint(issuerKey)))).toBe('ok');
    const v2 = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: `${origin}/jwks2`,
    });
    body = jwks([withDeep(issuerKey.jwk), JSON.stringify(other.jwk)]);
    const answer = await outcome(v2.verify(await mint(issuerKey)));
    expect(answer).toMatch(/^(401|503) /);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. RFC 9728 metadata routes on find-my-way and path-to-regexp
// ---------------------------------------------------------------------------------------------

describe('metadata route escaping: normal paths, HEAD, query, odd characters', () => {
  const metadataVerifier = (resource: string): Verifier =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      resourceMetadata: { resource },
    });

  async function servers(verifier: Verifier) {
    const { default: Fastify } = await import('fastify');
    const { resourceGuard } = await import('resource-guard/fastify');
    const fastify = Fastify();
    await fastify.register(resourceGuard, { verifier });
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    cleanups.push(() => fastify.close());
    const bases: [string, string][] = [
      ['fastify', `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`],
    ];
    const { Module } = await import('@nestjs/common');
    const { NestFactory } = await import('@nestjs/core');
    const { ExpressAdapter } = await import('@nestjs/platform-express');
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    const { ResourceGuardModule } = await import('resource-guard/nestjs');
    @Module({ imports: [ResourceGuardModule.forRoot({ verifier })] })
    class MetadataModule {}
    for (const platform of [new ExpressAdapter(), new FastifyAdapter()]) {
      const app = await NestFactory.create(MetadataModule, platform, { logger: false });
      await app.listen(0, '127.0.0.1');
      cleanups.push(() => app.close());
      bases.push([
        `nest-${platform.constructor.name}`,
        (await app.getUrl()).replace('[::1]', '127.0.0.1'),
      ]);
    }
    return bases;
  }

  const status = async (base: string, path: string, method = 'GET') => {
    const { port } = new URL(base);
    return (await send(Number(port), method, path, [['Host', '127.0.0.1']])).status;
  };

  it.each([
    ['v1', ['v1/x', 'v2', 'v']],
    ['', ['x']],
    ['a:b*c', ['a:b', 'aXb*c', 'a:bXc', 'a:b*cX', 'a:b*c/d']],
    ['p@$;=,', ['p']],
  ] as const)(
    'resource path /%s: GET and HEAD 200 at its own path (query ignored), 404 at look-alikes, never 500',
    async (tail, lookalikes) => {
      const verifier = metadataVerifier(`https://shopping.api/${tail}`);
      const path = verifier.resourceMetadata!.path;
      for (const [name, base] of await servers(verifier)) {
        expect(await status(base, path), `${name} GET ${path}`).toBe(200);
        expect(await status(base, path, 'HEAD'), `${name} HEAD ${path}`).toBe(200);
        expect(await status(base, `${path}?x=1`), `${name} ${path}?x=1`).toBe(200);
        expect(await status(base, path, 'POST'), `${name} POST ${path}`).toBe(404);
        for (const look of lookalikes) {
          const lookPath = `/.well-known/oauth-protected-resource/${look}`;
          expect(await status(base, lookPath), `${name} ${lookPath}`).toBe(404);
        }
      }
    },
  );
});

describe('metadata route: a resource path with a percent-escape on find-my-way', () => {
  const metadataVerifier = (resource: string): Verifier =>
    createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [issuerKey.jwk] },
      resourceMetadata: { resource },
    });

  /**
   * FIXED (low: public metadata unavailable; not a trust issue; the literal registration
   * predates the commit, but the commit's new code claims to register "the path as find-my-way
   * reads it"). WHATWG URL escapes a space, `{`, `}`, non-ASCII (and keeps `%2F`) in the resource
   * path, so `metadata.path` holds `%XX`; find-my-way decodes the request path before matching
   * but matches the registered path as written, so GET of the metadata's own path
   * (`/.well-known/oauth-protected-resource/a%20b`) is 404 on Fastify and on NestJS over Fastify
   * (NestJS over Express, which matches the raw path, serves it).
   * Root cause: adapters/fastify/index.ts:94-96 and adapters/nestjs/index.ts:100-103 escape
   * only `:` and `*` for find-my-way.
   * Fix: cut the pattern at the first `%` as at a `*` (register `prefix*`) and compare the
   * request's raw path with `route.matches` in the handler, as already done for `*`.
   */
  it.each(['a b', 'x{y}', '\u00e9', 'a%2Fb'])(
    'fastify and NestJS on Fastify serve the metadata of a resource path /%s at its own path',
    async (tail) => {
      const verifier = metadataVerifier(`https://shopping.api/${tail}`);
      const path = verifier.resourceMetadata!.path;
      expect(path).toContain('%');
      const { default: Fastify } = await import('fastify');
      const { resourceGuard } = await import('resource-guard/fastify');
      const fastify = Fastify();
      await fastify.register(resourceGuard, { verifier });
      await fastify.ready();
      cleanups.push(() => fastify.close());
      expect((await fastify.inject({ url: path })).statusCode).toBe(200); // was 404
      const { Module } = await import('@nestjs/common');
      const { NestFactory } = await import('@nestjs/core');
      const { FastifyAdapter } = await import('@nestjs/platform-fastify');
      const { ResourceGuardModule } = await import('resource-guard/nestjs');
      @Module({ imports: [ResourceGuardModule.forRoot({ verifier })] })
      class EscapedModule {}
      const app = await NestFactory.create(EscapedModule, new FastifyAdapter(), { logger: false });
      await app.listen(0, '127.0.0.1');
      cleanups.push(() => app.close());
      const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      expect((await fetch(`${base}${path}`)).status).toBe(200); // was 404
    },
  );

  it('NestJS on Express serves an escaped resource path at its own path only (held)', async () => {
    const verifier = metadataVerifier('https://shopping.api/x{y}[z] \u00e9');
    const path = verifier.resourceMetadata!.path;
    const { Module } = await import('@nestjs/common');
    const { NestFactory } = await import('@nestjs/core');
    const { ExpressAdapter } = await import('@nestjs/platform-express');
    const { ResourceGuardModule } = await import('resource-guard/nestjs');
    @Module({ imports: [ResourceGuardModule.forRoot({ verifier })] })
    class ExpressEscapedModule {}
    const app = await NestFactory.create(ExpressEscapedModule, new ExpressAdapter(), {
      logger: false,
    });
    await app.listen(0, '127.0.0.1');
    cleanups.push(() => app.close());
    const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    expect((await fetch(`${base}${path}`)).status).toBe(200);
    expect((await fetch(`${base}${path}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${base}/.well-known/oauth-protected-resource/xy`)).status).toBe(404);
  });
});
