/**
 * The shopping API on Fastify, guarded by resource-guard.
 *
 *   ISSUER=https://your-tenant.logto.app/oidc npm run example:fastify
 */
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Verifier } from 'resource-guard';
import { resourceGuard } from 'resource-guard/fastify';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

export async function createApp(
  verifier: Verifier,
  store = new ProductStore(),
): Promise<FastifyInstance> {
  // Our own error handlers: Fastify's defaults put the error's message in the body, and its router
  // errors (a malformed %-escape, an overlong parameter) quote the whole path back to the client.
  // Client faults keep their 4xx; anything else is a bare 500. Never a message or stack trace.
  const onError = (error: { statusCode?: number }, _request: unknown, reply: FastifyReply) => {
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply
        .code(status)
        .send({ error: 'invalid_request', error_description: 'Malformed request' });
    }
    return reply.code(500).send({ error: 'server_error' });
  };
  const app = Fastify({ bodyLimit: 16 * 1024, frameworkErrors: onError });
  await app.register(resourceGuard, { verifier });
  app.setErrorHandler(onError);

  app.get('/health', async () => ({ status: 'ok' }));
  // Readiness: 200 while the issuer's keys can verify tokens, 503 when not.
  app.get('/health/keys', async (_request, reply) => {
    const { status, body } = keysHealth(verifier);
    return reply.code(status).send(body);
  });

  // onRequest: authentication runs before the body is parsed.
  const canRead = { onRequest: app.requireAuth({ scopes: ['read:products'] }) };
  const canWrite = { onRequest: app.requireAuth({ scopes: ['write:products'] }) };

  app.get('/products', canRead, async (request) => ({
    products: store.list(),
    client: request.auth?.clientId,
  }));

  // Optional authentication: anonymous callers get the featured list, a valid token a personalized
  // one; a bad token is still refused (never downgraded to anonymous).
  const mayRead = { onRequest: app.requireAuth({ optional: true }) };
  app.get('/products/featured', mayRead, async (request) => ({
    products: store.featured(),
    personalized: request.auth !== null,
  }));

  app.get<{ Params: { id: string } }>('/products/:id', canRead, async (request, reply) => {
    const product = store.get(request.params.id);
    return product ?? reply.code(404).send({ error: 'not_found' });
  });

  app.post('/products', canWrite, async (request, reply) => {
    const input = parseNewProduct(request.body);
    if (typeof input === 'string') {
      return reply.code(400).send({ error: 'invalid_product', error_description: input });
    }
    return reply.code(201).send(store.add(input));
  });

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not_found' }));
  return app;
}

export async function serve(config: ApiConfig): Promise<FastifyInstance> {
  const app = await createApp(await startVerifier(config));
  await app.listen({ port: config.port, host: config.host });
  const { port } = app.server.address() as AddressInfo; // the real one, also with PORT=0
  console.log(`Shopping API (Fastify) on http://${config.host}:${port}`);
  return app;
}

runIfMain(import.meta.url, serve);
