/**
 * The shopping API on Express, guarded by resource-guard.
 *
 *   ISSUER=https://your-tenant.logto.app/oidc npm run example:express
 */
import express from 'express';
import type { ErrorRequestHandler, Request, Response } from 'express';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Verifier } from 'resource-guard';
import { requireAuth, resourceMetadata } from 'resource-guard/express';
import { keysHealth, runIfMain, startVerifier } from './config.ts';
import type { ApiConfig } from './config.ts';
import { parseNewProduct, ProductStore } from './products.ts';

export function createApp(verifier: Verifier, store = new ProductStore()): express.Express {
  const app = express();
  app.disable('x-powered-by');

  if (verifier.resourceMetadata) app.use(resourceMetadata(verifier));

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Readiness: 200 while the issuer's keys can verify tokens, 503 when not.
  app.get('/health/keys', (_req, res) => {
    const { status, body } = keysHealth(verifier);
    res.status(status).json(body);
  });

  const canRead = requireAuth(verifier, { scopes: ['read:products'] });
  const canWrite = requireAuth(verifier, { scopes: ['write:products'] });

  app.get('/products', canRead, (req, res) => {
    res.json({ products: store.list(), client: req.auth?.clientId });
  });

  // Optional authentication: anonymous callers get the featured list, a valid token a personalized
  // one; a bad token is still refused (never downgraded to anonymous).
  app.get('/products/featured', requireAuth(verifier, { optional: true }), (req, res) => {
    res.json({ products: store.featured(), personalized: req.auth !== undefined });
  });

  app.get('/products/:id', canRead, (req, res) => {
    const product = store.get(req.params.id as string);
    if (product === undefined) res.status(404).json({ error: 'not_found' });
    else res.json(product);
  });

  // Authentication runs before the body is parsed: an anonymous caller's body is never read.
  app.post('/products', canWrite, express.json({ limit: '16kb' }), (req, res) => {
    const input = parseNewProduct(req.body);
    if (typeof input === 'string') {
      res.status(400).json({ error: 'invalid_product', error_description: input });
      return;
    }
    res.status(201).json(store.add(input));
  });

  // Our own 404 and error handler: Express's defaults answer in HTML ("Cannot GET /path").
  const notFound = (res: Response) => res.status(404).json({ error: 'not_found' });
  app.use((_req, res) => notFound(res));

  // Client faults (bad JSON, too large, bad encoding, a malformed %-escape in a route parameter)
  // carry a 4xx status; anything else is a 500 without details. Never a message or stack trace.
  const onError: ErrorRequestHandler = (error, _req, res, _next) => {
    const status = Number((error as { status?: unknown }).status);
    if (status >= 400 && status < 500) {
      res.status(status).json({ error: 'invalid_request', error_description: 'Malformed request' });
    } else {
      res.status(500).json({ error: 'server_error' });
    }
  };
  app.use(onError);

  // A URL the router cannot parse (`GET //a@b`) skips every middleware above and gets Express's
  // built-in HTML 404. That final handler is `app.handle`'s third argument: default it to ours.
  type Handle = (req: Request, res: Response, done?: () => void) => void;
  const { handle } = app as unknown as { handle: Handle };
  Object.assign(app, {
    handle: ((req, res, done = () => notFound(res)) =>
      handle.call(app, req, res, done)) satisfies Handle,
  });
  return app;
}

/** Starts the API with the given configuration; resolves once it listens. */
export async function serve(config: ApiConfig): Promise<Server> {
  const server = createApp(await startVerifier(config)).listen(config.port, config.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo; // the real one, also with PORT=0
  console.log(`Shopping API (Express) on http://${config.host}:${port}`);
  return server;
}

runIfMain(import.meta.url, serve);
