/**
 * The shopping API on Hono, guarded by resource-guard, served on Node by @hono/node-server.
 *
 *   ISSUER=https://your-tenant.logto.app/oidc npm run example:hono
 *
 * `createApp` is runtime-agnostic: on Bun, Deno or Cloudflare Workers export `app` (or
 * `app.fetch`) instead of calling `serve`.
 */
import { serve as serveNode } from '@hono/node-server';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { Server } from 'node:http';
import type { Verifier } from 'resource-guard';
import { requireAuth, resourceMetadata } from 'resource-guard/hono';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

export function createApp(verifier: Verifier, store = new ProductStore()): Hono {
  const app = new Hono();

  if (verifier.resourceMetadata) app.use(resourceMetadata(verifier));

  app.get('/health', (c) => c.json({ status: 'ok' }));
  // Readiness: 200 while the issuer's keys can verify tokens, 503 when not.
  app.get('/health/keys', (c) => {
    const { status, body } = keysHealth(verifier);
    return c.json(body, status);
  });

  const canRead = requireAuth(verifier, { scopes: ['read:products'] });
  const canWrite = requireAuth(verifier, { scopes: ['write:products'] });

  // c.get('auth') is typed AuthInfo (not optional) after the guard.
  app.get('/products', canRead, (c) =>
    c.json({ products: store.list(), client: c.get('auth').clientId }),
  );

  // Optional authentication: anonymous callers get the featured list, a valid token a personalized
  // one; a bad token is still refused (never downgraded to anonymous). Declared before /:id.
  app.get('/products/featured', requireAuth(verifier, { optional: true }), (c) =>
    c.json({ products: store.featured(), personalized: c.get('auth') !== undefined }),
  );

  app.get('/products/:id', canRead, (c) => {
    const product = store.get(c.req.param('id'));
    return product ? c.json(product) : c.json({ error: 'not_found' }, 404);
  });

  // Authentication runs before the body is read: an anonymous caller's body is never touched.
  app.post(
    '/products',
    canWrite,
    bodyLimit({
      maxSize: 16 * 1024,
      onError: (c) =>
        c.json({ error: 'invalid_request', error_description: 'Request body too large' }, 413),
    }),
    async (c) => {
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        return c.json(
          { error: 'invalid_request', error_description: 'Malformed request body' },
          400,
        );
      }
      const input = parseNewProduct(body);
      if (typeof input === 'string') {
        return c.json({ error: 'invalid_product', error_description: input }, 400);
      }
      return c.json(store.add(input), 201);
    },
  );

  // Our own 404 and error handler: Hono's defaults answer in plain text. Client faults keep their
  // 4xx; anything else is a bare 500. Never a message or stack trace.
  app.notFound((c) => c.json({ error: 'not_found' }, 404));
  app.onError((error, c) => {
    if (error instanceof HTTPException && error.status < 500) {
      return c.json(
        { error: 'invalid_request', error_description: 'Malformed request' },
        error.status,
      );
    }
    return c.json({ error: 'server_error' }, 500);
  });
  return app;
}

/** Starts the API with the given configuration; resolves once it listens. */
export async function serve(config: ApiConfig): Promise<Server> {
  const app = createApp(await startVerifier(config));
  return new Promise((resolve, reject) => {
    const server = serveNode(
      { fetch: app.fetch, port: config.port, hostname: config.host },
      (info) => {
        console.log(`Shopping API (Hono) on http://${config.host}:${info.port}`); // the real port
        resolve(server as Server);
      },
    );
    server.once('error', reject);
  });
}

runIfMain(import.meta.url, serve);
