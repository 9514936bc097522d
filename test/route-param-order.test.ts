/**
 * The README's note on param loaders (Express `app.param`, @koa/router `router.param`): they run
 * before a route's own middleware, the guard included, so a route-level guard lets an
 * unauthenticated caller tell which ids exist; a guard mounted on the path (`app.use(path, …)`,
 * `router.use(path, …)`) runs first. Both halves are checked on the real frameworks, so the note
 * is caught out if either framework changes its order.
 */
import { createServer } from 'node:http';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Koa from 'koa';
import Router from '@koa/router';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { Verifier } from 'resource-guard';
import { requireAuth as expressAuth } from 'resource-guard/express';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import { AUDIENCE, ISSUER, makeKey, mint } from './helpers/keys.ts';

const PRODUCTS = new Set(['p-1']);
let verifier: Verifier;
let token: string;
const servers: Server[] = [];

beforeAll(async () => {
  const key = await makeKey();
  verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [key.jwk] } });
  token = await mint(key);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

async function serve(listener: RequestListener): Promise<string> {
  const server = createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Status for each id: anonymous, then with the token. */
async function probe(base: string): Promise<Record<string, [number, number]>> {
  const out: Record<string, [number, number]> = {};
  for (const id of ['p-1', 'p-404']) {
    const anonymous = await fetch(`${base}/products/${id}`);
    const bearer = await fetch(`${base}/products/${id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await Promise.all([anonymous.text(), bearer.text()]);
    out[id] = [anonymous.status, bearer.status];
  }
  return out;
}

function expressApp(guardOnPath: boolean): express.Express {
  const app = express();
  app.param('id', (_req, res, next, id: string) => {
    if (!PRODUCTS.has(id)) res.status(404).json({ error: 'not_found' });
    else next();
  });
  const guard = expressAuth(verifier, { scopes: ['read:products'] });
  if (guardOnPath) {
    app.use('/products', guard);
    app.get('/products/:id', (req, res) => res.json({ id: req.params.id }));
  } else {
    app.get('/products/:id', guard, (req, res) => res.json({ id: req.params.id }));
  }
  return app;
}

function koaApp(guardOnPath: boolean): RequestListener {
  const router = new Router();
  const guard = koaAuth(verifier, { scopes: ['read:products'] });
  if (guardOnPath) router.use('/products', guard);
  router.param('id', (id, ctx, next) => {
    if (!PRODUCTS.has(id)) {
      ctx.status = 404;
      ctx.body = { error: 'not_found' };
      return undefined;
    }
    return next();
  });
  const handler = (ctx: Koa.Context): void => {
    ctx.body = { id: ctx.params.id };
  };
  if (guardOnPath) router.get('/products/:id', handler);
  else router.get('/products/:id', guard, handler);
  return new Koa().use(router.routes()).callback();
}

describe.each([
  ['Express', (onPath: boolean) => expressApp(onPath) as RequestListener],
  ['Koa', koaApp],
])('%s param loaders and the guard', (_name, make) => {
  it('a route-level guard runs after the loader: an anonymous caller can tell ids apart (the pitfall the README names)', async () => {
    expect(await probe(await serve(make(false)))).toEqual({
      'p-1': [401, 200],
      'p-404': [404, 404],
    });
  });

  it('a guard on the path runs first: every anonymous caller gets 401, whatever the id', async () => {
    expect(await probe(await serve(make(true)))).toEqual({
      'p-1': [401, 200],
      'p-404': [401, 404],
    });
  });
});
