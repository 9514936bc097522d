/**
 * One server of the HTTP benchmark, started by bench/http.ts in its own process:
 *   tsx bench/http-server.ts <express|koa|fastify> <bare|noop|assign|guarded|peer>
 * with BENCH_ISSUER, BENCH_JWKS (BENCH_TOKEN: a token its verifier verifies once before it
 * listens; BENCH_ALG for the peer) set. Prints `{"port":N}` once listening.
 * Every variant serves GET /products; `guarded` requires read:products with resource-guard,
 * `noop` has one middleware (hook) that does nothing — the framework's own price of a middleware —,
 * `assign` one that only sets `auth` to a constant object where the adapter sets it (`req.auth`,
 * `ctx.state.auth`, `request.auth`): the floor of any middleware that hands a handler its caller,
 * and `peer` (Express only) requires it with express-oauth2-jwt-bearer.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { createVerifier } from 'resource-guard';
import { requireAuth as expressAuth } from 'resource-guard/express';
import { requireAuth as fastifyAuth, resourceGuard } from 'resource-guard/fastify';
import { requireAuth as koaAuth } from 'resource-guard/koa';

const [framework, variant] = process.argv.slice(2);
const issuer = process.env.BENCH_ISSUER as string;
const jwksUri = process.env.BENCH_JWKS as string;
const audience = 'https://shopping.api';
const products = [
  { id: 'p-1', name: 'Espresso beans, 1 kg', price: 24.5 },
  { id: 'p-2', name: 'Ceramic pour-over dripper', price: 19 },
  { id: 'p-3', name: 'Burr grinder', price: 129 },
];
const verifier = createVerifier({ issuer, audience, jwksUri });
const scopes = { scopes: ['read:products'] };
/** What `assign` sets: an object, as an AuthInfo is. */
const CALLER = Object.freeze({ subject: 'bench-app', scopes: ['read:products'] });

// Every variant starts the same way: the verifier created and warmed (its JWKS fetched, its key
// imported, the bench token verified once) before the server listens, so that the servers of a
// group differ only in their middleware.
const warmToken = process.env.BENCH_TOKEN;
if (warmToken !== undefined) {
  await verifier.authenticate({ headers: { authorization: `Bearer ${warmToken}` } });
}

async function start(): Promise<number> {
  if (framework === 'express') {
    const app = express();
    app.disable('etag');
    if (variant === 'guarded') app.use(expressAuth(verifier, scopes));
    if (variant === 'noop') app.use((_req, _res, next) => next());
    if (variant === 'assign') {
      app.use((req, _res, next) => {
        (req as { auth?: unknown }).auth = CALLER;
        next();
      });
    }
    if (variant === 'peer') {
      // Imported by a computed name: its global `Express.Request.auth` type would clash with ours.
      const peer = 'express-oauth2-jwt-bearer';
      const { auth, requiredScopes } = (await import(peer)) as {
        auth: (o: object) => express.RequestHandler;
        requiredScopes: (s: string) => express.RequestHandler;
      };
      app.use(
        auth({ issuer, audience, jwksUri, tokenSigningAlg: process.env.BENCH_ALG ?? 'ES256' }),
      );
      app.use(requiredScopes('read:products'));
    }
    app.get('/products', (_req, res) => {
      res.json(products);
    });
    return listen(createServer(app));
  }
  if (framework === 'koa') {
    const app = new Koa();
    if (variant === 'guarded') app.use(koaAuth(verifier, scopes));
    if (variant === 'noop') app.use((_ctx, next) => next());
    if (variant === 'assign') {
      app.use((ctx, next) => {
        (ctx.state as { auth?: unknown }).auth = CALLER;
        return next();
      });
    }
    app.use((ctx) => {
      ctx.body = products;
    });
    return listen(createServer(app.callback()));
  }
  const app = Fastify();
  // As the README sets it up: the plugin declares `request.auth` (decorateRequest), so setting it
  // keeps Fastify's request objects in one shape.
  if (variant === 'guarded') await app.register(resourceGuard, { verifier });
  // Declared as the plugin declares it, so `assign` keeps the request objects in one shape too.
  if (variant === 'assign') app.decorateRequest('auth', null);
  const hooks = {
    guarded: { onRequest: fastifyAuth(verifier, scopes) },
    noop: { onRequest: (_request: unknown, _reply: unknown, done: () => void) => done() },
    assign: {
      onRequest: (request: { auth?: unknown }, _reply: unknown, done: () => void) => {
        request.auth = CALLER;
        done();
      },
    },
  };
  app.get('/products', hooks[variant as keyof typeof hooks] ?? {}, async () => products);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as AddressInfo).port;
}

async function listen(server: ReturnType<typeof createServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

const port = await start();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on('SIGINT', () => process.exit(0)); // lets --cpu-prof write its profile
