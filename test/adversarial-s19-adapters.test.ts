/**
 * Adversarial review, session 19: DPoP and the error surface THROUGH EVERY ADAPTER.
 *
 * The same small API (mounted under `/api`) on Express, Koa, Fastify, Hono, Hapi, NestJS (both
 * platforms), plain node:http (`authenticate(req)`) and a Web `Request` handler, over one DPoP
 * verifier (static keys, origin https://api.shop.example). Each hostile request is sent over a
 * real socket, so the request line and headers reach the framework exactly as written.
 */
import 'reflect-metadata';
import { Controller, Get, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import Hapi from '@hapi/hapi';
import Router from '@koa/router';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, createVerifier, sendAuthError } from 'resource-guard';
import type { AuthInfo, Verifier, VerifierOptions } from 'resource-guard';
import { requireAuth as expressAuth } from 'resource-guard/express';
import { resourceGuard as fastifyPlugin } from 'resource-guard/fastify';
import { requireAuth as fastifyAuth } from 'resource-guard/fastify';
import { resourceGuard as hapiPlugin, SCHEME } from 'resource-guard/hapi';
import { requireAuth as honoAuth } from 'resource-guard/hono';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import { Auth, RequireAuth, ResourceGuardModule } from 'resource-guard/nestjs';
import { redisReplayStore } from 'resource-guard/redis';
import { dpopOptions, makeProofKey, ORIGIN, proof } from './helpers/dpop.ts';
import type { ProofKey } from './helpers/dpop.ts';
import { m2mClaims, makeKey, mint } from './helpers/keys.ts';
import type { TestKey } from './helpers/keys.ts';
import { outcome } from './helpers/outcome.ts';
import { hasRedisServer, startRedisServer } from './helpers/redis-server.ts';
import type { RedisServer } from './helpers/redis-server.ts';

// ---------------------------------------------------------------------------------------------
// Shared material
// ---------------------------------------------------------------------------------------------

let issuerKey: TestKey;
let holder: ProofKey;
let thief: ProofKey;

const options = (extra: Partial<VerifierOptions> = {}): VerifierOptions =>
  dpopOptions(issuerKey, extra);

const bound = (claims: Record<string, unknown> = {}, to: ProofKey = holder) =>
  mint(issuerKey, m2mClaims({ cnf: { jkt: to.jkt }, ...claims }));

beforeAll(async () => {
  [issuerKey, holder, thief] = await Promise.all([
    makeKey('ES256'),
    makeProofKey(),
    makeProofKey(),
  ]);
});

// ---------------------------------------------------------------------------------------------
// A raw HTTP client: the request line and every header exactly as written
// ---------------------------------------------------------------------------------------------

interface Answer {
  status: number;
  /** Lower-case names; a repeated header's values joined with `\n`. */
  headers: Record<string, string>;
  text: string;
  raw: string;
}

function rawRequest(
  base: string,
  method: string,
  target: string,
  headers: readonly (readonly [string, string])[],
  body?: string,
): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      const lines = [`${method} ${target} HTTP/1.1`];
      const names = new Set(headers.map(([name]) => name.toLowerCase()));
      if (!names.has('host')) lines.push(`Host: ${hostname}:${port}`);
      for (const [name, value] of headers) lines.push(`${name}: ${value}`);
      if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
      lines.push('Connection: close', '', body ?? '');
      // write, not end: a half-closed socket lets node drop a response still being computed.
      socket.write(lines.join('\r\n'));
    });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(parse(Buffer.concat(chunks).toString('latin1'))));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
  });
}

function parse(raw: string): Answer {
  const end = raw.indexOf('\r\n\r\n');
  const head = end === -1 ? raw : raw.slice(0, end);
  let text = end === -1 ? '' : raw.slice(end + 4);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}\n${value}`;
  }
  if (headers['transfer-encoding'] === 'chunked') text = unchunk(text);
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, text, raw };
}

function unchunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol === -1) return out;
    const size = Number.parseInt(body.slice(at, eol), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

const errorOf = (answer: Answer): string | undefined => {
  try {
    return (JSON.parse(answer.text) as { error?: string }).error;
  } catch {
    return undefined;
  }
};

/** `status error` of an answer, `200` for a pass (the handler's JSON has `ok: true`). */
const brief = (answer: Answer): string => {
  const error = errorOf(answer);
  return error === undefined ? String(answer.status) : `${answer.status} ${error}`;
};

// ---------------------------------------------------------------------------------------------
// The API on every adapter. Routes, under the mount point /api:
//   GET|HEAD|POST /api/products     guarded (the verifier's DPoP mode: allowed)
//   GET /api/products/:id            guarded
//   GET /api/featured                optional
//   GET /api/pay                     DPoP required
//   GET /api/boom                    guarded; the handler throws after authentication
// ---------------------------------------------------------------------------------------------

interface Running {
  readonly name: string;
  readonly url: string;
  close(): Promise<void>;
}

async function listen(name: string, server: Server): Promise<Running> {
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

const passBody = (auth: AuthInfo | undefined) =>
  JSON.stringify({ ok: true, client: auth?.clientId ?? null });

async function expressApi(verifier: Verifier): Promise<Running> {
  const app = express();
  const router = express.Router();
  const send = (req: express.Request, res: express.Response) =>
    void res.type('json').send(passBody(req.auth));
  router.get('/products', expressAuth(verifier), send);
  router.post('/products', expressAuth(verifier), send);
  router.get('/products/:id', expressAuth(verifier), send);
  router.get('/featured', expressAuth(verifier, { optional: true }), send);
  router.get('/pay', expressAuth(verifier, { dpop: 'required' }), send);
  router.get('/boom', expressAuth(verifier), () => {
    throw new Error('handler bug');
  });
  app.use('/api', router);
  // A production-style error handler: no stack.
  app.use(
    (_error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) =>
      void res.status(500).type('json').send('{"error":"server_error"}'),
  );
  return listen('express', createServer(app));
}

async function koaApi(verifier: Verifier): Promise<Running> {
  const app = new Koa();
  app.silent = true;
  const parent = new Router();
  const child = new Router();
  const send = (ctx: Koa.Context) => {
    ctx.type = 'json';
    ctx.body = passBody(ctx.state.auth as AuthInfo | undefined);
  };
  child.get('/products', koaAuth(verifier), send);
  child.post('/products', koaAuth(verifier), send);
  child.get('/products/:id', koaAuth(verifier), send);
  child.get('/featured', koaAuth(verifier, { optional: true }), send);
  child.get('/pay', koaAuth(verifier, { dpop: 'required' }), send);
  child.get('/boom', koaAuth(verifier), () => {
    throw new Error('handler bug');
  });
  parent.use('/api', child.routes(), child.allowedMethods());
  app.use(parent.routes());
  return listen('koa', createServer(app.callback()));
}

async function fastifyApi(verifier: Verifier): Promise<Running> {
  const app = Fastify();
  await app.register(fastifyPlugin, { verifier });
  await app.register(
    async (scope) => {
      const send = async (request: { auth: AuthInfo | null }) =>
        JSON.parse(passBody(request.auth ?? undefined)) as unknown;
      scope.get('/products', { onRequest: fastifyAuth(verifier) }, send);
      scope.post('/products', { onRequest: fastifyAuth(verifier) }, send);
      scope.get('/products/:id', { onRequest: fastifyAuth(verifier) }, send);
      scope.get('/featured', { onRequest: fastifyAuth(verifier, { optional: true }) }, send);
      scope.get('/pay', { onRequest: fastifyAuth(verifier, { dpop: 'required' }) }, send);
      scope.get('/boom', { onRequest: fastifyAuth(verifier) }, async () => {
        throw new Error('handler bug');
      });
    },
    { prefix: '/api' },
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  return { name: 'fastify', url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

async function honoApi(verifier: Verifier): Promise<Running> {
  const { createAdaptorServer } = await import('@hono/node-server');
  const api = new Hono();
  api.get('/products', honoAuth(verifier), (c) => c.body(passBody(c.get('auth'))));
  api.post('/products', honoAuth(verifier), (c) => c.body(passBody(c.get('auth'))));
  api.get('/products/:id', honoAuth(verifier), (c) => c.body(passBody(c.get('auth'))));
  api.get('/featured', honoAuth(verifier, { optional: true }), (c) =>
    c.body(passBody(c.get('auth'))),
  );
  api.get('/pay', honoAuth(verifier, { dpop: 'required' }), (c) => c.body(passBody(c.get('auth'))));
  api.get('/boom', honoAuth(verifier), () => {
    throw new Error('handler bug');
  });
  const app = new Hono();
  app.onError((error, c) =>
    error instanceof AuthError ? error.getResponse() : c.json({ error: 'server_error' }, 500),
  );
  app.route('/api', api);
  return listen('hono', createAdaptorServer({ fetch: app.fetch }) as Server);
}

async function hapiApi(verifier: Verifier): Promise<Running> {
  const server = Hapi.server({ port: 0, host: '127.0.0.1' });
  await server.register({ plugin: hapiPlugin, options: { verifier } });
  server.auth.strategy('rg', SCHEME, {});
  server.auth.strategy('rg-dpop', SCHEME, { dpop: 'required' });
  const send = (request: Hapi.Request, h: Hapi.ResponseToolkit) =>
    h
      .response(passBody(request.auth.credentials?.auth as AuthInfo | undefined))
      .type('application/json');
  await server.register(
    {
      plugin: {
        name: 'api',
        register(scope: Hapi.Server) {
          scope.route([
            { method: 'GET', path: '/products', options: { auth: 'rg' }, handler: send },
            { method: 'POST', path: '/products', options: { auth: 'rg' }, handler: send },
            { method: 'GET', path: '/products/{id}', options: { auth: 'rg' }, handler: send },
            {
              method: 'GET',
              path: '/featured',
              options: { auth: { strategy: 'rg', mode: 'optional' } },
              handler: send,
            },
            { method: 'GET', path: '/pay', options: { auth: 'rg-dpop' }, handler: send },
            {
              method: 'GET',
              path: '/boom',
              options: { auth: 'rg' },
              handler: () => {
                throw new Error('handler bug');
              },
            },
          ]);
        },
      },
    },
    { routes: { prefix: '/api' } },
  );
  await server.start();
  return { name: 'hapi', url: server.info.uri, close: () => server.stop({ timeout: 0 }) };
}

let nestVerifier: Verifier;

@Controller('products')
@RequireAuth()
class NestProducts {
  @Get()
  list(@Auth() auth: AuthInfo) {
    return JSON.parse(passBody(auth)) as unknown;
  }
  @Post()
  create(@Auth() auth: AuthInfo) {
    return JSON.parse(passBody(auth)) as unknown;
  }
  @Get(':id')
  one(@Auth() auth: AuthInfo) {
    return JSON.parse(passBody(auth)) as unknown;
  }
}

@Controller()
class NestOthers {
  @Get('featured')
  @RequireAuth({ optional: true })
  featured(@Auth() auth: AuthInfo | undefined) {
    return JSON.parse(passBody(auth)) as unknown;
  }
  @Get('pay')
  @RequireAuth({ dpop: 'required' })
  pay(@Auth() auth: AuthInfo) {
    return JSON.parse(passBody(auth)) as unknown;
  }
  @Get('boom')
  @RequireAuth()
  boom() {
    throw new Error('handler bug');
  }
}

async function nestApi(platform: 'express' | 'fastify', verifier: Verifier): Promise<Running> {
  nestVerifier = verifier;
  @Module({
    imports: [ResourceGuardModule.forRoot({ verifier: nestVerifier })],
    controllers: [NestProducts, NestOthers],
  })
  class AppModule {}
  const adapter = platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: false });
  app.setGlobalPrefix('api');
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as Server;
  return {
    name: `nestjs (${platform})`,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await app.close();
    },
  };
}

/** Direct use on node:http: `authenticate(req)` then `sendAuthError`, no mount (paths include /api). */
async function nodeApi(verifier: Verifier): Promise<Running> {
  const routes: Record<string, Parameters<Verifier['authenticate']>[1]> = {
    '/api/products': {},
    '/api/featured': { optional: true },
    '/api/pay': { dpop: 'required' },
    '/api/boom': {},
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').replace(/^[a-z]+:\/\/[^/]*/, '').split('?')[0] as string;
    const requirements = routes[path] ?? (path.startsWith('/api/products/') ? {} : undefined);
    if (requirements === undefined) return void res.writeHead(404).end();
    try {
      const auth = await verifier.authenticate(req, requirements);
      if (path === '/api/boom') throw new Error('handler bug');
      res.writeHead(200, { 'content-type': 'application/json' }).end(passBody(auth));
    } catch (error) {
      if (error instanceof AuthError) return sendAuthError(res, error);
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
    }
  };
  return listen(
    'node:http',
    createServer((req, res) => void handle(req, res)),
  );
}

/** A Web `Request` handler (Workers, Deno, Bun style), served by @hono/node-server's adaptor. */
async function webApi(verifier: Verifier): Promise<Running> {
  const { createAdaptorServer } = await import('@hono/node-server');
  const fetchHandler = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const requirements: Parameters<Verifier['authenticate']>[1] | undefined =
      path === '/api/products' || path.startsWith('/api/products/') || path === '/api/boom'
        ? {}
        : path === '/api/featured'
          ? { optional: true }
          : path === '/api/pay'
            ? { dpop: 'required' }
            : undefined;
    if (requirements === undefined) return new Response(null, { status: 404 });
    try {
      const auth = await verifier.authenticate(request, requirements);
      if (path === '/api/boom') throw new Error('handler bug');
      return new Response(passBody(auth), { headers: { 'content-type': 'application/json' } });
    } catch (error) {
      if (error instanceof AuthError) return error.getResponse();
      return Response.json({ error: 'server_error' }, { status: 500 });
    }
  };
  return listen('web Request', createAdaptorServer({ fetch: fetchHandler }) as Server);
}

type Starter = (verifier: Verifier) => Promise<Running>;
const STARTERS: readonly (readonly [string, Starter])[] = [
  ['express', expressApi],
  ['koa', koaApi],
  ['fastify', fastifyApi],
  ['hono', honoApi],
  ['hapi', hapiApi],
  ['nestjs (express)', (v) => nestApi('express', v)],
  ['nestjs (fastify)', (v) => nestApi('fastify', v)],
  ['node:http', nodeApi],
  ['web Request', webApi],
];

type Header = [string, string];

/** `Authorization: DPoP <token>` and a fresh proof by `key` for `method htu`. */
/** Header names lower-cased, as node's `headers` object has them. */
const lower = (headers: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));

async function dpopHeaders(
  token: string,
  method: string,
  htu: string,
  { key = holder, nonce, extra = [] }: { key?: ProofKey; nonce?: string; extra?: Header[] } = {},
): Promise<Header[]> {
  return [
    ['Authorization', `DPoP ${token}`],
    [
      'DPoP',
      await proof(key, method, htu, token, nonce === undefined ? {} : { payload: { nonce } }),
    ],
    ...extra,
  ];
}

/** Nothing of the token or the proof in an answer: no segment, no tail of a segment. */
function expectNothingEchoed(answer: Answer, ...secrets: string[]): void {
  for (const secret of secrets) {
    for (const part of secret.split('.').filter((p) => p.length > 16)) {
      expect(answer.raw).not.toContain(part.slice(-16));
    }
  }
  expect(answer.raw).not.toMatch(/\.ts:\d|\.js:\d|at [\w.<>]+ \(/);
}

/** RFC 9110 §11.6.1 challenge list with only the parameters and values resource-guard sends. */
const CHALLENGE =
  /^(Bearer|DPoP)( [a-z_]+="[\x20\x21\x23-\x5B\x5D-\x7E]*"(, [a-z_]+="[\x20\x21\x23-\x5B\x5D-\x7E]*")*)?(, (Bearer|DPoP)( [a-z_]+="[\x20\x21\x23-\x5B\x5D-\x7E]*"(, [a-z_]+="[\x20\x21\x23-\x5B\x5D-\x7E]*")*)?)?$/;

// ---------------------------------------------------------------------------------------------
// 1. htm / htu as each adapter computes the request target
// ---------------------------------------------------------------------------------------------

/** Where the runtime hands the adapter a WHATWG-normalised URL (dot segments already removed). */
const NORMALISED_URL = new Set(['hono', 'web Request']);

describe.each(STARTERS)('DPoP htm/htu through %s', (name, start) => {
  let api: Running;
  let token: string;
  beforeAll(async () => {
    api = await start(createVerifier(options()));
    token = await bound();
  });
  afterAll(() => api.close());

  const get = async (
    target: string,
    htu: string,
    method = 'GET',
    htm = method,
    extra: Header[] = [],
  ) =>
    rawRequest(
      api.url,
      method,
      target,
      await dpopHeaders(token, htm, htu, { extra }),
      method === 'POST' ? '' : undefined,
    );

  it.each([
    [
      'the mounted path (router prefix, plugin prefix, global prefix)',
      '/api/products',
      '/api/products',
    ],
    ['a query string on the request, none in htu', '/api/products?page=2&x=%2F', '/api/products'],
    ['a query string in htu too (ignored)', '/api/products?a=1', '/api/products?b=2#frag'],
    ['a trailing slash on both', '/api/products/', '/api/products/'],
    [
      'an absolute-form target: its path counts, its authority never',
      'http://evil.example/api/products',
      '/api/products',
    ],
    [
      'an escaped unreserved character in the request (%7e = ~)',
      '/api/products/p%7e1',
      '/api/products/p~1',
    ],
    [
      'an escaped unreserved character in htu (%7E = ~)',
      '/api/products/p~1',
      '/api/products/p%7E1',
    ],
    ['escape hex case (%2f = %2F)', '/api/products/a%2fb', '/api/products/a%2Fb'],
  ])('accepts a proof for the same URL: %s', async (_label, target, path) => {
    const answer = await get(target, `${ORIGIN}${path}`);
    if (target === '/api/products/' && answer.status === 404) return; // the router's strict slash
    expect(brief(answer)).toBe('200');
  });

  it('HEAD needs a HEAD proof; a GET proof is refused (no method folding)', async () => {
    expect((await get('/api/products', `${ORIGIN}/api/products`, 'HEAD', 'GET')).status).toBe(401);
    expect((await get('/api/products', `${ORIGIN}/api/products`, 'HEAD', 'HEAD')).status).toBe(200);
    expect(brief(await get('/api/products', `${ORIGIN}/api/products`, 'POST', 'GET'))).toBe(
      '401 invalid_dpop_proof',
    );
    expect(brief(await get('/api/products', `${ORIGIN}/api/products`, 'POST', 'post'))).toBe(
      '401 invalid_dpop_proof',
    );
    expect((await get('/api/products', `${ORIGIN}/api/products`, 'POST')).status).toBeLessThan(300);
  });

  it.each([
    ['the path without the mount prefix', '/api/products', `${ORIGIN}/products`, []],
    ['another route under the same prefix', '/api/products', `${ORIGIN}/api/pay`, []],
    ['a trailing slash only in the request', '/api/products/', `${ORIGIN}/api/products`, []],
    ['a trailing slash only in htu', '/api/products', `${ORIGIN}/api/products/`, []],
    [
      'the absolute-form authority as htu',
      'http://evil.example/api/products',
      'http://evil.example/api/products',
      [],
    ],
    [
      'the Host header as htu (trustHost off)',
      '/api/products',
      'https://evil.example/api/products',
      [['Host', 'evil.example']],
    ],
    [
      'X-Forwarded-Host/Proto as htu',
      '/api/products',
      'https://evil.example/api/products',
      [
        ['X-Forwarded-Host', 'evil.example'],
        ['X-Forwarded-Proto', 'https'],
        ['Forwarded', 'host=evil.example;proto=https'],
      ],
    ],
    ['another case (routers that ignore case)', '/API/PRODUCTS', `${ORIGIN}/api/products`, []],
    [
      '%2F against / (an escaped slash is not a slash)',
      '/api/products/a%2Fb',
      `${ORIGIN}/api/products/a/b`,
      [],
    ],
    ['http against https', '/api/products', 'http://api.shop.example/api/products', []],
    ['another port', '/api/products', 'https://api.shop.example:8443/api/products', []],
  ] as [string, string, string, Header[]][])(
    'refuses a proof for another URL: %s',
    async (_label, target, htu, extra) => {
      const answer = await get(target, htu, 'GET', 'GET', extra);
      // The framework may not route it at all (404); if the guard sees it, it refuses it.
      expect([404, 401]).toContain(answer.status);
      if (answer.status === 401) expect(errorOf(answer)).toBe('invalid_dpop_proof');
    },
  );

  it.each([
    ['dot segments', '/api/x/../products'],
    ['escaped dot segments', '/api/x/%2e%2e/products'],
    ['mixed escaped dot segments', '/api/x/.%2E/products'],
  ])(
    '%s never open the route with a proof for the resolved path, except where the runtime routed the resolved path',
    async (_label, target) => {
      const answer = await get(target, `${ORIGIN}/api/products`);
      if (NORMALISED_URL.has(name)) {
        // @hono/node-server resolves the target before Hono (or the Web handler) sees it, and routes
        // the resolved path: the proof is for exactly the URL served (RFC 3986 §6.2.2.3).
        expect([200, 400]).toContain(answer.status);
      } else {
        expect(answer.status === 404 || brief(answer) === '401 invalid_dpop_proof').toBe(true);
      }
    },
  );
});

describe('htu normalisation, as a class (fast-check, authenticate() on node and Web requests)', () => {
  let verifier: Verifier;
  let token: string;
  beforeAll(async () => {
    verifier = createVerifier(options({ cache: false }));
    token = await bound();
  });

  const UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';
  /** A segment's characters, each spelled raw, escaped in upper or lower hex. */
  const char = fc.constantFrom(
    ...UNRESERVED.split(''),
    '!',
    '$',
    '&',
    "'",
    '(',
    ')',
    '*',
    '+',
    ',',
    ';',
    '=',
    ':',
    '@',
    '/',
    '?',
    '#',
    ' ',
    'é',
  );
  const spelling = fc.constantFrom('raw', 'upper', 'lower');
  const spell = (c: string, how: string): string => {
    const bytes = Buffer.from(c, 'utf8');
    const escape = () => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
    const mustEscape = !/^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/.test(c);
    if (how === 'raw' && !mustEscape) return c;
    return how === 'lower' ? escape() : escape().toUpperCase();
  };
  /** RFC 3986 §6.2.2.1–2: unreserved escapes decoded, other escapes in upper-case hex. */
  const rfcNormal = (path: string) =>
    path.replace(/%([0-9a-f]{2})/gi, (_m, hex: string) => {
      const c = String.fromCharCode(Number.parseInt(hex, 16));
      return UNRESERVED.includes(c) ? c : `%${hex.toUpperCase()}`;
    });
  const segment = fc
    .array(fc.tuple(char, spelling), { minLength: 1, maxLength: 6 })
    .filter((chars) => !/^\.{1,2}$/.test(chars.map(([c]) => c).join('')));

  it('two spellings of one path: a proof for one is accepted on the other; never on another path', async () => {
    await fc.assert(
      fc.asyncProperty(
        segment,
        fc.array(spelling, { minLength: 6, maxLength: 6 }),
        segment,
        fc.boolean(),
        async (seg, other, different, web) => {
          const a = `/api/${seg.map(([c, how]) => spell(c, how)).join('')}`;
          // RFC 3986 §6.2.2: only an unreserved character may change between raw and escaped; any
          // escape may change hex case. (`%21` and `!` are NOT the same URI.)
          const b = `/api/${seg
            .map(([c, how], i) => {
              const alt = other[i] as string;
              if (UNRESERVED.includes(c)) return spell(c, alt);
              return how === 'raw' ? spell(c, 'raw') : spell(c, alt === 'raw' ? 'lower' : alt);
            })
            .join('')}`;
          const request = async (target: string, htu: string) => {
            const headers = {
              authorization: `DPoP ${token}`,
              dpop: await proof(holder, 'GET', htu, token),
            };
            return web
              ? new Request(`http://127.0.0.1${target}`, { headers })
              : { method: 'GET', url: target, headers };
          };
          expect(await outcome(verifier.authenticate(await request(a, `${ORIGIN}${b}`)))).toBe(
            'ok',
          );
          const c = `/api/${different.map(([ch, how]) => spell(ch, how)).join('')}`;
          if (rfcNormal(c) !== rfcNormal(a)) {
            expect(await outcome(verifier.authenticate(await request(a, `${ORIGIN}${c}`)))).toBe(
              '401 dpop_htu_mismatch',
            );
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 3 & 5. The same hostile request, the same answer from every adapter
// ---------------------------------------------------------------------------------------------

describe('one hostile request, one answer, on every adapter', () => {
  const running: Running[] = [];
  let token: string;
  let plain: string;
  beforeAll(async () => {
    const verifier = createVerifier(options({ dpop: { origin: ORIGIN, algorithms: ['ES256'] } }));
    for (const [, start] of STARTERS) running.push(await start(verifier));
    token = await bound();
    plain = await mint(issuerKey, m2mClaims());
  });
  afterAll(async () => {
    for (const api of running) await api.close();
  });

  type Build = () => Promise<{ target: string; headers: Header[] }>;
  const cases: [string, Build, string][] = [
    [
      'two DPoP proof fields',
      async () => {
        const h = await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`);
        return { target: '/api/products', headers: [...h, ['DPoP', h[1]![1]]] };
      },
      '400 invalid_request',
    ],
    [
      'a DPoP and a Bearer Authorization field',
      async () => ({
        target: '/api/products',
        headers: [
          ...(await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`)),
          ['Authorization', `Bearer ${plain}`],
        ],
      }),
      '400 invalid_request',
    ],
    [
      'DPoP and Bearer in one field',
      async () => ({
        target: '/api/products',
        headers: [
          ['Authorization', `DPoP ${token}, Bearer ${plain}`],
          ['DPoP', await proof(holder, 'GET', `${ORIGIN}/api/products`, token)],
        ],
      }),
      '400 invalid_request',
    ],
    [
      'a non-ASCII byte in Authorization',
      async () => ({
        target: '/api/products',
        headers: [['Authorization', `Bearer ${plain.slice(0, 20)}\u00e9${plain.slice(20)}`]],
      }),
      '400 invalid_request',
    ],
    [
      'a non-ASCII byte in the proof',
      async () => ({
        target: '/api/products',
        headers: [
          ['Authorization', `DPoP ${token}`],
          [
            'DPoP',
            `\u00e9${(await proof(holder, 'GET', `${ORIGIN}/api/products`, token)).slice(1)}`,
          ],
        ],
      }),
      '401 invalid_dpop_proof',
    ],
    [
      'quotes and backslashes in the proof',
      async () => ({
        target: '/api/products',
        headers: [
          ['Authorization', `DPoP ${token}`],
          ['DPoP', 'a"b\\c.d"e\\f.g'],
        ],
      }),
      '401 invalid_dpop_proof',
    ],
    [
      'a 9,000-character proof',
      async () => ({
        target: '/api/products',
        headers: [
          ['Authorization', `DPoP ${token}`],
          ['DPoP', 'a'.repeat(9000)],
        ],
      }),
      '401 invalid_dpop_proof',
    ],
    [
      'a 15,000-character token',
      async () => ({
        target: '/api/products',
        headers: [['Authorization', `Bearer ${'a'.repeat(15_000)}`]],
      }),
      '401 invalid_token',
    ],
    [
      'DPoP scheme without a proof',
      async () => ({ target: '/api/products', headers: [['Authorization', `DPoP ${token}`]] }),
      '401 invalid_dpop_proof',
    ],
    [
      'DPoP scheme, an empty DPoP field',
      async () => ({
        target: '/api/products',
        headers: [
          ['Authorization', `DPoP ${token}`],
          ['DPoP', ''],
        ],
      }),
      '401 invalid_dpop_proof',
    ],
    [
      'DPoP scheme, no token',
      async () => ({ target: '/api/products', headers: [['Authorization', 'DPoP']] }),
      '400 invalid_request',
    ],
    [
      'DPoP scheme, TAB before the token',
      async () => ({ target: '/api/products', headers: [['Authorization', `DPoP\t${token}`]] }),
      '400 invalid_request',
    ],
    [
      "a thief's proof",
      async () => ({
        target: '/api/products',
        headers: await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`, { key: thief }),
      }),
      '401 invalid_token',
    ],
    [
      'a proof by an algorithm not announced (ES384)',
      async () => {
        const es384 = await makeKey('ES384');
        const { kid: _k, alg: _a, use: _u, ...jwk } = es384.jwk;
        const { calculateJwkThumbprint } = await import('jose');
        const t = await bound({ cnf: { jkt: await calculateJwkThumbprint(jwk) } });
        const key = { ...es384, publicJwk: jwk, jkt: '' } as ProofKey;
        return {
          target: '/api/products',
          headers: await dpopHeaders(t, 'GET', `${ORIGIN}/api/products`, { key }),
        };
      },
      '401 invalid_dpop_proof',
    ],
    [
      'optional route: DPoP scheme without a proof',
      async () => ({ target: '/api/featured', headers: [['Authorization', `DPoP ${token}`]] }),
      '401 invalid_dpop_proof',
    ],
    [
      'optional route: a proof for another URL',
      async () => ({
        target: '/api/featured',
        headers: await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`),
      }),
      '401 invalid_dpop_proof',
    ],
    [
      'optional route: a bound token as Bearer',
      async () => ({ target: '/api/featured', headers: [['Authorization', `Bearer ${token}`]] }),
      '401 invalid_token',
    ],
    [
      'optional route: garbage Bearer',
      async () => ({ target: '/api/featured', headers: [['Authorization', 'Bearer a.b.c']] }),
      '401 invalid_token',
    ],
    [
      'optional route: "Bearer" alone',
      async () => ({ target: '/api/featured', headers: [['Authorization', 'Bearer']] }),
      '400 invalid_request',
    ],
    [
      'optional route: another scheme (anonymous)',
      async () => ({ target: '/api/featured', headers: [['Authorization', 'Basic YTpi']] }),
      '200',
    ],
    [
      'DPoP-only route: a plain token as Bearer',
      async () => ({ target: '/api/pay', headers: [['Authorization', `Bearer ${plain}`]] }),
      '401 invalid_token',
    ],
    [
      'DPoP-only route: nothing',
      async () => ({ target: '/api/pay', headers: [] }),
      '401 missing_token',
    ],
  ];

  it.each(cases)('%s', async (_label, build, expected) => {
    const { target, headers } = await build();
    const answers = await Promise.all(
      running.map(
        async (api) => [api.name, await rawRequest(api.url, 'GET', target, headers)] as const,
      ),
    );
    const secrets = headers.map(([, value]) => value.replace(/^(Bearer|DPoP) /, ''));
    const challenges = new Set<string>();
    for (const [name, answer] of answers) {
      expect(`${name}: ${brief(answer)}`).toBe(`${name}: ${expected}`);
      if (answer.status >= 400) {
        const challenge = answer.headers['www-authenticate'] ?? '';
        expect(challenge).toMatch(CHALLENGE);
        expect(challenge).toContain('algs="ES256"');
        challenges.add(challenge);
        expect(answer.headers['cache-control']).toBe('no-store');
        expectNothingEchoed(answer, ...secrets);
      }
    }
    // Every adapter sends the very same challenge.
    expect(challenges.size).toBeLessThanOrEqual(1);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Nonces through every adapter
// ---------------------------------------------------------------------------------------------

describe.each(STARTERS)('DPoP server nonces through %s', (_name, start) => {
  let api: Running;
  let token: string;
  let stranger: Verifier;
  beforeAll(async () => {
    api = await start(
      createVerifier(options({ dpop: { origin: ORIGIN, nonce: { secret: 'n'.repeat(32) } } })),
    );
    stranger = createVerifier(
      options({ dpop: { origin: ORIGIN, nonce: { secret: 'm'.repeat(32) } } }),
    );
    token = await bound();
  });
  afterAll(() => api.close());
  const send = async (nonce?: string) =>
    rawRequest(
      api.url,
      'GET',
      '/api/products',
      await dpopHeaders(
        token,
        'GET',
        `${ORIGIN}/api/products`,
        nonce === undefined ? {} : { nonce },
      ),
    );

  it('use_dpop_nonce with a DPoP-Nonce header, the error on the DPoP challenge; the nonce then works, and keeps working', async () => {
    const first = await send();
    expect(brief(first)).toBe('401 use_dpop_nonce');
    const nonce = first.headers['dpop-nonce'] as string;
    expect(nonce).toMatch(/^\d+\.[\w-]{22}$/);
    expect(first.headers['www-authenticate']).toMatch(
      /^Bearer realm="https:\/\/shopping\.api", DPoP realm="https:\/\/shopping\.api", error="use_dpop_nonce", error_description="[^"\\]+", algs="[A-Z0-9 a-z]+"$/,
    );
    expect(brief(await send(nonce))).toBe('200');
    expect(brief(await send(nonce))).toBe('200'); // a nonce is not a jti: reusable in its window
  });

  it("another secret's nonce, a non-canonical spelling of ours, a future step: use_dpop_nonce", async () => {
    const foreign = await stranger
      .authenticate({
        method: 'GET',
        url: '/api/products',
        headers: Object.fromEntries(
          (await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`)).map(([k, v]) => [
            k.toLowerCase(),
            v,
          ]),
        ),
      })
      .then(
        () => '',
        (error: AuthError) => error.headers['dpop-nonce'] as string,
      );
    const ours = (await send()).headers['dpop-nonce'] as string;
    const [step, mac] = ours.split('.') as [string, string];
    for (const nonce of [
      foreign,
      `0${step}.${mac}`,
      `${Number(step) + 1}.${mac}`,
      `${step}.${mac.toLowerCase() === mac ? mac.toUpperCase() : mac.toLowerCase()}`,
      `${ours} `,
      '',
    ]) {
      const answer = await send(nonce);
      expect(brief(answer)).toBe('401 use_dpop_nonce');
      expect(answer.headers['dpop-nonce']).toBe(ours);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// FIXED: two guards on one request (a prefix guard and a route guard) consumed the proof twice
// ---------------------------------------------------------------------------------------------

/**
 * A prefix guard for authentication and a route guard for the route's scopes is the ordinary way
 * to layer them (README, Hono: `api.use('/api/*', requireAuth(...))`; Express: `app.use('/api',
 * requireAuth(verifier))`); with Bearer it works (the cache answers the second). With DPoP the
 * first guard inserts the proof's jti into the replay store and the second finds it there: the
 * client's one correct proof is refused as `dpop_replayed` (401 invalid_dpop_proof "already
 * used"), on every retry. NestJS alone dedups (its `verified` WeakMap, adapters/nestjs/index.ts).
 *
 * Root cause: src/dpop.ts inserted the proof on every check, with no notion of "this same request
 * already consumed this proof". Fixed: the replay insert is shared per request object (the
 * second guard awaits the first one's insert); every other check still runs, and another request
 * with the same proof is still a replay (tested below).
 */
describe('two guards on one DPoP request', () => {
  let verifier: Verifier;
  let token: string;
  beforeAll(async () => {
    verifier = createVerifier(options());
    token = await bound();
  });
  const call = async (url: string, path = '/api/admin') =>
    brief(await rawRequest(url, 'GET', path, await dpopHeaders(token, 'GET', `${ORIGIN}${path}`)));

  it('Bearer: a prefix guard and a route guard both pass (the control)', async () => {
    const app = express();
    app.use('/api', expressAuth(verifier));
    app.get(
      '/api/admin',
      expressAuth(verifier, { scopes: ['read:products'] }),
      (_q, r) => void r.json({ ok: true }),
    );
    const api = await listen('express', createServer(app));
    try {
      const plain = await mint(issuerKey, m2mClaims());
      expect(
        brief(
          await rawRequest(api.url, 'GET', '/api/admin', [['Authorization', `Bearer ${plain}`]]),
        ),
      ).toBe('200');
    } finally {
      await api.close();
    }
  });

  it('express: app.use(prefix guard) + route guard accept one correct proof', async () => {
    const app = express();
    app.use('/api', expressAuth(verifier));
    app.get(
      '/api/admin',
      expressAuth(verifier, { scopes: ['read:products'] }),
      (_q, r) => void r.json({ ok: true }),
    );
    const api = await listen('express', createServer(app));
    try {
      expect(await call(api.url)).toBe('200'); // was '401 invalid_dpop_proof' (dpop_replayed)
    } finally {
      await api.close();
    }
  });

  it('koa: router.use(prefix guard) + route guard accept one correct proof', async () => {
    const app = new Koa();
    app.silent = true;
    const router = new Router();
    router.use('/api', koaAuth(verifier));
    router.get('/api/admin', koaAuth(verifier, { scopes: ['read:products'] }), (ctx) => {
      ctx.body = { ok: true };
    });
    app.use(router.routes());
    const api = await listen('koa', createServer(app.callback()));
    try {
      expect(await call(api.url)).toBe('200');
    } finally {
      await api.close();
    }
  });

  it('fastify: a scope-wide onRequest guard + a route guard accept one correct proof', async () => {
    const app = Fastify();
    app.addHook('onRequest', fastifyAuth(verifier));
    app.get(
      '/api/admin',
      { onRequest: fastifyAuth(verifier, { scopes: ['read:products'] }) },
      async () => ({ ok: true }),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      expect(await call(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)).toBe(
        '200',
      );
    } finally {
      await app.close();
    }
  });

  it("hono: app.use('/api/*', guard) (the README's pattern) + a route guard accept one correct proof", async () => {
    const app = new Hono();
    app.use('/api/*', honoAuth(verifier));
    app.get('/api/admin', honoAuth(verifier, { scopes: ['read:products'] }), (c) =>
      c.json({ ok: true }),
    );
    const headers = Object.fromEntries(await dpopHeaders(token, 'GET', `${ORIGIN}/api/admin`));
    const response = await app.request('http://127.0.0.1/api/admin', { headers });
    expect(response.status).toBe(200);
    // The same proof on another request is still a replay, through both guards.
    const again = await app.request('http://127.0.0.1/api/admin', { headers });
    expect(again.status).toBe(401);
    expect(again.headers.get('www-authenticate')).toContain('already used');
  });

  it('property: a proof is consumed once per request, however many guards check it', async () => {
    // Several guards on one request object (authenticate() called k times), then a second
    // request object with the same proof: the first passes every guard, the second none.
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        async (k, m) => {
          const headers = Object.fromEntries(
            await dpopHeaders(token, 'GET', `${ORIGIN}/api/admin`),
          );
          const request = () => ({
            method: 'GET',
            url: '/api/admin',
            headers: { ...lower(headers) },
          });
          const first = request();
          const answers = await Promise.all(
            Array.from({ length: k }, () =>
              verifier.authenticate(first).then(
                () => 'ok',
                (e: AuthError) => e.reason,
              ),
            ),
          );
          expect(answers).toEqual(Array.from({ length: k }, () => 'ok'));
          for (let i = 0; i < m; i++) {
            const other = request();
            expect(
              await verifier.authenticate(other).then(
                () => 'ok',
                (e: AuthError) => e.reason,
              ),
            ).toBe('dpop_replayed');
          }
        },
      ),
      { numRuns: 15 },
    );
  });

  it('nestjs: a controller @RequireAuth and a handler @RequireAuth run one check (holds)', async () => {
    @Controller('api')
    @RequireAuth()
    class Layered {
      @Get('admin')
      @RequireAuth({ scopes: ['read:products'] })
      admin(@Auth() auth: AuthInfo) {
        return { ok: true, client: auth.clientId };
      }
    }
    @Module({ imports: [ResourceGuardModule.forRoot({ verifier })], controllers: [Layered] })
    class LayeredModule {}
    const app = await NestFactory.create(LayeredModule, new ExpressAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    const server = app.getHttpServer() as Server;
    try {
      expect(await call(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)).toBe('200');
    } finally {
      server.closeAllConnections();
      await app.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// FIXED: Hono's mount() hid the prefix from the guard (`mountPath` now gives it back)
// ---------------------------------------------------------------------------------------------

/**
 * `outer.mount('/api', inner.fetch)` hands the inner app a NEW Request whose URL has `/api`
 * stripped, and nothing of the original: the guard saw `${origin}/products` for a request sent
 * to `/api/products`, so a proof made for `https://api.shop.example/products` (another resource of
 * the same origin) opened `/api/products`, and the client's correct proof was refused. The Hono
 * adapter now takes `mountPath` (README, Hono), as Express and Koa read `originalUrl`.
 */
describe('hono: a guarded app mounted with mount() and mountPath', () => {
  let verifier: Verifier;
  let token: string;
  let outer: Hono;
  beforeAll(async () => {
    verifier = createVerifier(options());
    token = await bound();
    const inner = new Hono();
    inner.get('/products', honoAuth(verifier, { mountPath: '/api' }), (c) => c.json({ ok: true }));
    outer = new Hono();
    outer.mount('/api', inner.fetch);
  });
  const status = async (htu: string, path = '/api/products') =>
    (
      await outer.request(`http://127.0.0.1${path}`, {
        headers: Object.fromEntries(await dpopHeaders(token, 'GET', htu)),
      })
    ).status;

  it('a proof for the URL without the mount prefix does not open /api/products', async () => {
    expect(await status(`${ORIGIN}/products`)).toBe(401); // was 200
  });

  it('the proof for the URL the client called is accepted, query and all', async () => {
    expect(await status(`${ORIGIN}/api/products`)).toBe(200); // was 401 dpop_htu_mismatch
    expect(await status(`${ORIGIN}/api/products`, '/api/products?page=2')).toBe(200);
  });

  it('mountPath is checked where the route is declared', () => {
    for (const bad of ['api', '/api?x=1', '/a#b', 7, '/a b']) {
      expect(() => honoAuth(verifier, { mountPath: bad as string })).toThrow(/mountPath/);
    }
    expect(() => honoAuth(verifier, { mountPath: '/api/' })).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// FIXED: trustHost compared the Host header as a string, not as an origin
// ---------------------------------------------------------------------------------------------

/**
 * With `trustHost`, `Host: api.shop.example:443` (what several HTTP clients and proxies send) and
 * a proof for `https://api.shop.example/...` is refused on every adapter, as is an IPv6 host in
 * another spelling (`[0:0::1]`). RFC 9449 §4.3 asks for RFC 3986 §6.2.3 scheme-based
 * normalisation (a default port is no port), which CONFORMANCE.md says is done.
 *
 * Root cause: src/dpop-request.ts `originOf` (`bare.toLowerCase() === value.toLowerCase()`,
 * line 67): `bare` is built from `url.host`, which drops a default port and re-spells an
 * IPv6 address, so the raw value never equals it. Fixed as suggested: accept the value when the
 * parsed URL has pathname `/`, no search, hash or credentials and the value has no `/`, `?`,
 * `#` or `@` after the scheme, and return `url.origin`.
 */
describe('trustHost: the Host header as an origin', () => {
  let verifier: Verifier;
  let token: string;
  beforeAll(async () => {
    verifier = createVerifier(options({ dpop: { trustHost: true } }));
    token = await bound();
  });
  const check = async (host: string, htu: string) =>
    outcome(
      verifier.authenticate({
        method: 'GET',
        url: '/api/products',
        headers: {
          host,
          authorization: `DPoP ${token}`,
          dpop: await proof(holder, 'GET', htu, token),
        },
      }),
    );

  it('holds: the Host header exactly, in any case; another host is refused', async () => {
    expect(await check('api.shop.example', `${ORIGIN}/api/products`)).toBe('ok');
    expect(await check('API.Shop.Example', `${ORIGIN}/api/products`)).toBe('ok');
    expect(await check('[::1]:8080', 'http://[::1]:8080/api/products')).toBe('ok');
    expect(await check('evil.example', `${ORIGIN}/api/products`)).toBe('401 dpop_htu_mismatch');
    expect(await check('api.shop.example/api', `${ORIGIN}/api/api/products`)).toBe(
      '401 dpop_htu_mismatch',
    );
    expect(await check('x@api.shop.example', `${ORIGIN}/api/products`)).toBe(
      '401 dpop_htu_mismatch',
    );
  });

  it('a Host header with the default port (:443 for https, :80 for http) is that origin', async () => {
    expect(await check('api.shop.example:443', `${ORIGIN}/api/products`)).toBe('ok');
    expect(await check('api.shop.example:80', 'http://api.shop.example/api/products')).toBe('ok');
  });

  it('an IPv6 Host header in another spelling is that origin', async () => {
    expect(await check('[0:0::1]:8080', 'http://[::1]:8080/api/products')).toBe('ok');
  });
});

// ---------------------------------------------------------------------------------------------
// 3. After authentication, and errors: 'throw'
// ---------------------------------------------------------------------------------------------

describe.each(STARTERS)('after a DPoP authentication on %s', (_name, start) => {
  let api: Running;
  let token: string;
  beforeAll(async () => {
    api = await start(createVerifier(options()));
    token = await bound();
  });
  afterAll(() => api.close());

  it('a handler that throws is a 500 from the framework, never a 401, and answered once', async () => {
    const answer = await rawRequest(
      api.url,
      'GET',
      '/api/boom',
      await dpopHeaders(token, 'GET', `${ORIGIN}/api/boom`),
    );
    expect(answer.status).toBe(500);
    expect(answer.headers['www-authenticate']).toBeUndefined();
    expect(answer.raw.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
    expectNothingEchoed(answer, token);
  });
});

describe("errors: 'throw' carries the DPoP answer (status, challenge, DPoP-Nonce, Retry-After) to the framework", () => {
  let token: string;
  let down = false;
  let verifier: Verifier;
  beforeAll(async () => {
    token = await bound();
    verifier = createVerifier(
      options({
        dpop: {
          origin: ORIGIN,
          nonce: { secret: 'k'.repeat(32) },
          replay: { insertIfAbsent: () => (down ? Promise.reject(new Error('store down')) : true) },
        },
      }),
    );
  });

  const apps: [string, () => Promise<Running>][] = [
    [
      'express',
      async () => {
        const app = express();
        app.get(
          '/api/products',
          expressAuth(verifier, { errors: 'throw' }),
          (_q, r) => void r.json({ ok: true }),
        );
        app.use(
          (error: AuthError, _q: express.Request, r: express.Response, _n: express.NextFunction) =>
            void r.status(error.status).set(error.headers).json(error.body),
        );
        return listen('express', createServer(app));
      },
    ],
    [
      'koa (default error handling)',
      async () => {
        const app = new Koa();
        app.silent = true;
        const router = new Router();
        router.get('/api/products', koaAuth(verifier, { errors: 'throw' }), (ctx) => {
          ctx.body = { ok: true };
        });
        app.use(router.routes());
        return listen('koa', createServer(app.callback()));
      },
    ],
    [
      'fastify (default error handler)',
      async () => {
        const app = Fastify();
        app.get(
          '/api/products',
          { onRequest: fastifyAuth(verifier, { errors: 'throw' }) },
          async () => ({ ok: true }),
        );
        await app.listen({ port: 0, host: '127.0.0.1' });
        return {
          name: 'fastify',
          url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
          close: () => app.close(),
        };
      },
    ],
    [
      'hono (default onError: getResponse)',
      async () => {
        const { createAdaptorServer } = await import('@hono/node-server');
        const app = new Hono();
        app.get('/api/products', honoAuth(verifier, { errors: 'throw' }), (c) =>
          c.json({ ok: true }),
        );
        return listen('hono', createAdaptorServer({ fetch: app.fetch }) as Server);
      },
    ],
    [
      'hapi (Boom)',
      async () => {
        const server = Hapi.server({ port: 0, host: '127.0.0.1' });
        await server.register({ plugin: hapiPlugin, options: { verifier } });
        server.auth.strategy('t', SCHEME, { errors: 'throw' });
        server.route({
          method: 'GET',
          path: '/api/products',
          options: { auth: 't' },
          handler: () => ({ ok: true }),
        });
        await server.start();
        return { name: 'hapi', url: server.info.uri, close: () => server.stop({ timeout: 0 }) };
      },
    ],
  ];

  it.each(apps)('%s', async (_label, make) => {
    const api = await make();
    try {
      const send = async (nonce?: string) =>
        rawRequest(
          api.url,
          'GET',
          '/api/products',
          await dpopHeaders(
            token,
            'GET',
            `${ORIGIN}/api/products`,
            nonce === undefined ? {} : { nonce },
          ),
        );
      const first = await send();
      expect(first.status).toBe(401);
      expect(first.headers['www-authenticate']).toMatch(
        /DPoP realm="[^"]+", error="use_dpop_nonce"/,
      );
      const nonce = first.headers['dpop-nonce'];
      expect(nonce).toMatch(/^\d+\.[\w-]{22}$/);
      down = true;
      const outage = await send(nonce);
      down = false;
      expect(outage.status).toBe(503);
      expect(Number(outage.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(outage.raw).not.toContain('store down');
      expect((await send(nonce)).status).toBe(200);
      for (const answer of [first, outage]) expectNothingEchoed(answer, token);
    } finally {
      down = false;
      await api.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Direct use: verify() on raw strings, a Web Request's joined headers
// ---------------------------------------------------------------------------------------------

describe('direct use', () => {
  let verifier: Verifier;
  let token: string;
  let plain: string;
  beforeAll(async () => {
    verifier = createVerifier(options());
    token = await bound();
    plain = await mint(issuerKey, m2mClaims());
  });

  it('verify() never accepts a bound token, nor a wrapped or padded one; no token in the error', async () => {
    for (const input of [
      token,
      `Bearer ${plain}`,
      `DPoP ${plain}`,
      ` ${plain}`,
      `${plain} `,
      `${plain}\n`,
      `${plain},${plain}`,
      '',
      `${plain}\u0000`,
    ]) {
      const error = await verifier.verify(input).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(input.slice(0, 8))).toBeInstanceOf(AuthError);
      const text = `${(error as AuthError).message} ${(error as AuthError).stack} ${JSON.stringify((error as AuthError).body)} ${JSON.stringify((error as AuthError).headers)}`;
      expect(text).not.toContain(plain.split('.')[2]);
      expect(text).not.toContain(token.split('.')[2]);
    }
    expect(await outcome(verifier.verify(plain))).toBe('ok');
  });

  it('a Web Request joins repeated fields with a comma: two proofs, two credentials are 400s, as on node', async () => {
    const p = await proof(holder, 'GET', `${ORIGIN}/api/products`, token);
    const twoProofs = new Headers({ authorization: `DPoP ${token}` });
    twoProofs.append('dpop', p);
    twoProofs.append('dpop', p);
    expect(
      await outcome(
        verifier.authenticate(new Request('http://x/api/products', { headers: twoProofs })),
      ),
    ).toBe('400 dpop_multiple_proofs');
    const twoAuth = new Headers({ dpop: p });
    twoAuth.append('authorization', `DPoP ${token}`);
    twoAuth.append('authorization', `Bearer ${plain}`);
    expect(
      await outcome(
        verifier.authenticate(new Request('http://x/api/products', { headers: twoAuth })),
      ),
    ).toBe('400 multiple_credentials');
    const emptySecond = new Headers({ authorization: `DPoP ${token}` });
    emptySecond.append('dpop', p);
    emptySecond.append('dpop', '');
    expect(
      await outcome(
        verifier.authenticate(new Request('http://x/api/products', { headers: emptySecond })),
      ),
    ).toMatch(/^40[01] /);
    expect(
      await outcome(
        verifier.authenticate(
          new Request('http://x/api/products', {
            headers: { authorization: `DPoP ${token}`, dpop: p },
          }),
        ),
      ),
    ).toBe('ok');
  });

  it('a Web Request with a non-canonical method (patch) is refused against a PATCH proof (methods are case-sensitive)', async () => {
    const p = await proof(holder, 'PATCH', `${ORIGIN}/api/products`, token);
    const request = new Request('http://x/api/products', {
      method: 'patch',
      headers: { authorization: `DPoP ${token}`, dpop: p },
    });
    expect(await outcome(verifier.authenticate(request))).toBe('401 dpop_htm_mismatch');
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Replay across instances on a real Redis (adapters/redis)
// ---------------------------------------------------------------------------------------------

describe.skipIf(!hasRedisServer)('DPoP replay on a real Redis, two adapters sharing it', () => {
  let redis: RedisServer;
  const clients: { disconnect(): Promise<unknown> }[] = [];
  let a: Running;
  let b: Running;
  let token: string;

  const client = async () => {
    const c = createClient({
      url: redis.url,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: () => 50, connectTimeout: 500 },
    });
    c.on('error', () => undefined);
    await c.connect();
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    redis = await startRedisServer();
    const replayTimeout = 0.3;
    // Two instances: two verifiers, two clients, one Redis.
    const va = createVerifier(
      options({
        dpop: { origin: ORIGIN, replayTimeout, replay: redisReplayStore(await client()) },
      }),
    );
    const vb = createVerifier(
      options({
        dpop: { origin: ORIGIN, replayTimeout, replay: redisReplayStore(await client()) },
      }),
    );
    a = await expressApi(va);
    b = await honoApi(vb);
    token = await bound();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    for (const c of clients) await c.disconnect().catch(() => undefined);
    await redis?.stop();
  });

  const send = (api: Running, headers: Header[]) =>
    rawRequest(api.url, 'GET', '/api/products', headers);

  it('one proof: accepted by one instance, refused by the other; concurrently, exactly one 200', async () => {
    const headers = await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`);
    expect(brief(await send(a, headers))).toBe('200');
    expect(brief(await send(b, headers))).toBe('401 invalid_dpop_proof');
    expect(brief(await send(a, headers))).toBe('401 invalid_dpop_proof');
    const fresh = await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`);
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => send(i % 2 ? a : b, fresh)),
    );
    expect(answers.map(brief).sort()).toEqual([
      '200',
      ...Array.from({ length: 11 }, () => '401 invalid_dpop_proof'),
    ]);
  });

  it('the same jti in another proof for the same URL (another iat) is a replay; for another URL it is not', async () => {
    const jti = `jti-${Math.random()}`;
    const now = Math.floor(Date.now() / 1000);
    const first = await proof(holder, 'GET', `${ORIGIN}/api/products`, token, {
      payload: { jti, iat: now },
    });
    const second = await proof(holder, 'GET', `${ORIGIN}/api/products`, token, {
      payload: { jti, iat: now - 1 },
    });
    const elsewhere = await proof(holder, 'GET', `${ORIGIN}/api/products/p-1`, token, {
      payload: { jti },
    });
    const auth: Header = ['Authorization', `DPoP ${token}`];
    expect(brief(await send(a, [auth, ['DPoP', first]]))).toBe('200');
    expect(brief(await send(b, [auth, ['DPoP', second]]))).toBe('401 invalid_dpop_proof');
    expect(
      brief(await rawRequest(b.url, 'GET', '/api/products/p-1', [auth, ['DPoP', elsewhere]])),
    ).toBe('200');
  });

  it('Redis paused (slower than replayTimeout): 503 with Retry-After, never 200 or 500; then it recovers', async () => {
    const admin = await client();
    await admin.sendCommand(['CLIENT', 'PAUSE', '1500', 'WRITE']);
    try {
      const started = Date.now();
      const answers = await Promise.all([
        send(a, await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`)),
        send(b, await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`)),
      ]);
      expect(Date.now() - started).toBeLessThan(1400);
      for (const answer of answers) {
        expect(brief(answer)).toBe('503 temporarily_unavailable');
        expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
    } finally {
      await admin.sendCommand(['CLIENT', 'UNPAUSE']);
    }
    expect(brief(await send(a, await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`)))).toBe(
      '200',
    );
  });

  it('Redis down: 503 on both instances, never 200 or 500; back up: accepted again', async () => {
    await redis.stop();
    try {
      for (const api of [a, b]) {
        const answer = await send(api, await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`));
        expect(brief(answer)).toBe('503 temporarily_unavailable');
        expect(answer.raw).not.toMatch(/ECONNREFUSED|Socket|redis/i);
      }
    } finally {
      await redis.start();
    }
    let last = '';
    for (let i = 0; i < 60 && last !== '200'; i++) {
      last = brief(await send(b, await dpopHeaders(token, 'GET', `${ORIGIN}/api/products`)));
      if (last !== '200') await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(last).toBe('200');
  });
});
