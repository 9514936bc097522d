/**
 * The shopping API on Koa, guarded by resource-guard.
 *
 *   ISSUER=https://your-tenant.logto.app/oidc npm run example:koa
 */
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa from 'koa';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Verifier } from 'resource-guard';
import { requireAuth, resourceMetadata } from 'resource-guard/koa';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

export function createApp(verifier: Verifier, store = new ProductStore()): Koa {
  const app = new Koa();
  const router = new Router();

  // Our own error handler: Koa's default answers with the error's message. Client faults (bad
  // JSON, too large, unparseable URLs) become a 4xx; anything else a bare 500. Never a message or
  // stack trace.
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const { status, code } = error as { status?: unknown; code?: unknown };
      // A request line Koa cannot parse as a URL surfaces here as ERR_INVALID_URL, or as a URIError
      // (a broken %-escape in a `//host@` form): the client's fault.
      const badUrl = code === 'ERR_INVALID_URL' || error instanceof URIError;
      const clientFault = badUrl ? 400 : Number(status);
      ctx.status = clientFault >= 400 && clientFault < 500 ? clientFault : 500;
      ctx.body =
        ctx.status === 500
          ? { error: 'server_error' }
          : { error: 'invalid_request', error_description: 'Malformed request' };
    }
  });

  if (verifier.resourceMetadata) app.use(resourceMetadata(verifier));

  router.get('/health', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  // Readiness: 200 while the issuer's keys can verify tokens, 503 when not.
  router.get('/health/keys', (ctx) => {
    const { status, body } = keysHealth(verifier);
    ctx.status = status;
    ctx.body = body;
  });

  const canRead = requireAuth(verifier, { scopes: ['read:products'] });
  const canWrite = requireAuth(verifier, { scopes: ['write:products'] });

  router.get('/products', canRead, (ctx) => {
    ctx.body = { products: store.list(), client: ctx.state.auth?.clientId };
  });

  // Optional authentication: anonymous callers get the featured list, a valid token a personalized
  // one; a bad token is still refused (never downgraded to anonymous).
  router.get('/products/featured', requireAuth(verifier, { optional: true }), (ctx) => {
    ctx.body = { products: store.featured(), personalized: ctx.state.auth !== undefined };
  });

  router.get('/products/:id', canRead, (ctx) => {
    const product = store.get(ctx.params.id as string);
    ctx.status = product ? 200 : 404;
    ctx.body = product ?? { error: 'not_found' };
  });

  // Authentication runs before the body is parsed: an anonymous caller's body is never read.
  router.post(
    '/products',
    canWrite,
    bodyParser({
      jsonLimit: '16kb',
      enableTypes: ['json'],
      // Any failure to read the body is the client's: some (bad gzip) carry no 4xx status.
      onError: (error, ctx) => ctx.throw(clientStatus(error)),
    }),
    (ctx) => {
      const input = parseNewProduct(ctx.request.body);
      if (typeof input === 'string') {
        ctx.status = 400;
        ctx.body = { error: 'invalid_product', error_description: input };
        return;
      }
      ctx.status = 201;
      ctx.body = store.add(input);
    },
  );

  app.use(router.routes());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { error: 'not_found' };
  });
  return app;
}

/** The error's 4xx status, or 400. */
function clientStatus(error: unknown): number {
  const status = Number((error as { status?: unknown }).status);
  return status >= 400 && status < 500 ? status : 400;
}

export async function serve(config: ApiConfig): Promise<Server> {
  const server = createApp(await startVerifier(config)).listen(config.port, config.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo; // the real one, also with PORT=0
  console.log(`Shopping API (Koa) on http://${config.host}:${port}`);
  return server;
}

runIfMain(import.meta.url, serve);
