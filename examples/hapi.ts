/**
 * The shopping API on Hapi, guarded by resource-guard.
 *
 *   ISSUER=https://your-tenant.logto.app/oidc npm run example:hapi
 */
import Hapi from '@hapi/hapi';
import type { Lifecycle, Server } from '@hapi/hapi';
import { AuthError } from 'resource-guard';
import type { Verifier } from 'resource-guard';
import { resourceGuard } from 'resource-guard/hapi';
import type { ResourceGuardRefs, StrategyOptions } from 'resource-guard/hapi';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

export interface Address {
  readonly port: number;
  readonly host: string;
}

export async function createApp(
  verifier: Verifier,
  address: Address = { port: 0, host: '127.0.0.1' },
  store = new ProductStore(),
): Promise<Server> {
  const server = Hapi.server({ port: address.port, host: address.host });
  await server.register({ plugin: resourceGuard, options: { verifier } });
  // One strategy per set of requirements, checked here, once.
  server.auth.strategy('read', 'resource-guard', {
    scopes: ['read:products'],
  } satisfies StrategyOptions);
  server.auth.strategy('write', 'resource-guard', {
    scopes: ['write:products'],
  } satisfies StrategyOptions);
  server.auth.strategy('maybe', 'resource-guard', { optional: true } satisfies StrategyOptions);
  server.ext('onPreResponse', onPreResponse);

  server.route({ method: 'GET', path: '/health', handler: () => ({ status: 'ok' }) });
  // Readiness: 200 while the issuer's keys can verify tokens, 503 when not.
  server.route({
    method: 'GET',
    path: '/health/keys',
    handler: (_request, h) => {
      const { status, body } = keysHealth(verifier);
      return h.response(body).code(status);
    },
  });

  // Authentication runs before the payload is read; `auth` is typed by ResourceGuardRefs.
  server.route<ResourceGuardRefs>([
    {
      method: 'GET',
      path: '/products',
      options: { auth: 'read' },
      handler: (request) => ({
        products: store.list(),
        client: request.auth.credentials.auth.clientId,
      }),
    },
    {
      // Optional authentication: anonymous callers get the featured list, a valid token a
      // personalized one; a bad token is still refused (never downgraded to anonymous).
      method: 'GET',
      path: '/products/featured',
      options: { auth: { strategy: 'maybe', mode: 'optional' } },
      handler: (request) => ({
        products: store.featured(),
        personalized: request.auth.isAuthenticated,
      }),
    },
    {
      method: 'GET',
      path: '/products/{id}',
      options: { auth: 'read' },
      handler: (request, h) =>
        store.get(String(request.params.id)) ?? h.response({ error: 'not_found' }).code(404),
    },
    {
      method: 'POST',
      path: '/products',
      options: { auth: 'write', payload: { allow: 'application/json', maxBytes: 16 * 1024 } },
      handler(request, h) {
        const input = parseNewProduct(request.payload);
        if (typeof input === 'string') {
          return h.response({ error: 'invalid_product', error_description: input }).code(400);
        }
        return h.response(store.add(input)).code(201);
      },
    },
  ]);
  return server;
}

/**
 * Our own answers for Hapi's Boom errors: its 404 and its 400s (a bad payload, a malformed URL)
 * put the framework's wording in the body. Client faults keep their 4xx; anything else is a bare
 * 500. resource-guard's answers (a Boom whose `data` is the `AuthError`) pass unchanged.
 */
const onPreResponse: Lifecycle.Method = (request, h) => {
  const { response } = request;
  if (!('isBoom' in response) || response.data instanceof AuthError) return h.continue;
  const status = response.output.statusCode;
  if (status === 404) return h.response({ error: 'not_found' }).code(404);
  if (status >= 400 && status < 500) {
    return h
      .response({ error: 'invalid_request', error_description: 'Malformed request' })
      .code(status);
  }
  return h.response({ error: 'server_error' }).code(500);
};

export async function serve(config: ApiConfig): Promise<Server> {
  const server = await createApp(await startVerifier(config), config);
  await server.start();
  console.log(`Shopping API (Hapi) on ${server.info.uri}`); // the real port, also with PORT=0
  return server;
}

runIfMain(import.meta.url, serve);
