#!/usr/bin/env bash
# The floor of every peer range in package.json, installed exactly (the other checks install the
# newest majors): express 4.21.0, koa 2.15.0, fastify 5.0.0, @hapi/hapi 21.0.0 with @hapi/boom
# 10.0.0, hono 4.0.0, @nestjs/common and core 11.0.0, redis (node-redis) 4.0.0, @opentelemetry/api
# 1.7.0; check.mjs first holds the list to package.json's peerDependencies, so that a range moved
# without this list fails here. src/apps.ts (one guarded GET /products per framework) is
# type-checked against the types those versions ship or pair with (@types/express 4, @types/koa 2;
# @hapi/hapi 21.0.0 ships none: its server is plain JS in check.mjs) and run: each framework on
# 127.0.0.1 port 0, a local JWKS, no token (401 + Bearer challenge), a reader's token (200, the
# auth info), a token without the scope (403 insufficient_scope), two Authorization headers (400).
# Then the DPoP replay store on node-redis 4.0.0 and a real redis-server (a proof accepted once,
# its replay refused, a 503 once Redis is gone), and resource-guard/otel counting all of it
# through @opentelemetry/api 1.7.0's global meter provider.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cat > package.json <<'JSON'
{ "name": "oldest-peers", "private": true, "type": "module", "scripts": { "build": "tsc" } }
JSON
peers=(express@4.21.0 koa@2.15.0 fastify@5.0.0 @hapi/hapi@21.0.0 @hapi/boom@10.0.0 hono@4.0.0
  @nestjs/common@11.0.0 @nestjs/core@11.0.0 redis@4.0.0 @opentelemetry/api@1.7.0)
# With what those versions were used with: @koa/router 12 (koa 2), @hono/node-server 1.8 (hono
# 4.0), @nestjs/platform-express 11.0.0 (which brings its own express 5).
install_packed "${peers[@]}" @koa/router@12 @hono/node-server@1.8.0 \
  @nestjs/platform-express@11.0.0 reflect-metadata@0.2 rxjs@7 jose@6 typescript@5.9 \
  @types/node@20 @types/express@4 @types/koa@2 @types/koa__router@12
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "experimentalDecorators": true,
    "emitDecoratorMetadata": true,
    "skipLibCheck": true,
    "types": ["node"],
    "rootDir": "src",
    "outDir": "dist"
  },
  "include": ["src"]
}
JSON
mkdir src
cat > src/apps.ts <<'TS'
// One guarded route, GET /products (scope read:products), per framework, on 127.0.0.1 port 0.
import 'reflect-metadata';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import Router from '@koa/router';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { metrics } from '@opentelemetry/api';
import type { MeterProvider } from '@opentelemetry/api';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { createClient } from 'redis';
import type { AuthInfo, ReplayStore, Verifier } from 'resource-guard';
import { requireAuth as expressAuth } from 'resource-guard/express';
import { resourceGuard as fastifyGuard } from 'resource-guard/fastify';
import { requireAuth as honoAuth } from 'resource-guard/hono';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import { Auth, RequireAuth, ResourceGuardModule } from 'resource-guard/nestjs';
import { instrument } from 'resource-guard/otel';
import type { Instrumentation } from 'resource-guard/otel';
import { redisReplayStore } from 'resource-guard/redis';

export interface Running {
  readonly url: string;
  close(): Promise<void>;
}

const read = { scopes: ['read:products'] };
export const answer = (auth: AuthInfo) => ({ client: auth.clientId, scopes: [...auth.scopes] });
const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const closing = (server: Server) => () =>
  new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });

export async function express4(verifier: Verifier): Promise<Running> {
  const app = express();
  app.get('/products', expressAuth(verifier, read), (req, res) => {
    // @ts-expect-error req.auth is AuthInfo | undefined, not any
    const wrong: number = req.auth;
    void wrong;
    res.json(answer(req.auth!));
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: urlOf(server), close: closing(server) };
}

export async function koa2(verifier: Verifier): Promise<Running> {
  const router = new Router();
  router.get('/products', koaAuth(verifier, read), (ctx) => {
    // @ts-expect-error ctx.state.auth is AuthInfo | undefined, not any
    const wrong: number = ctx.state.auth;
    void wrong;
    ctx.body = answer(ctx.state.auth!);
  });
  const server = new Koa().use(router.routes()).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: urlOf(server), close: closing(server) };
}

export async function fastify5(verifier: Verifier): Promise<Running> {
  const app = Fastify();
  await app.register(fastifyGuard, { verifier });
  app.get('/products', { onRequest: app.requireAuth(read) }, async (request) => {
    // @ts-expect-error request.auth is AuthInfo | null, not any
    const wrong: number = request.auth;
    void wrong;
    return answer(request.auth!);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: urlOf(app.server), close: () => app.close() };
}

export async function hono4(verifier: Verifier): Promise<Running> {
  const app = new Hono();
  app.get('/products', honoAuth(verifier, read), (c) => c.json(answer(c.get('auth'))));
  let server: Server | undefined;
  const port = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
      resolve(info.port),
    ) as Server;
  });
  return { url: `http://127.0.0.1:${port}`, close: closing(server!) };
}

export async function nest11(verifier: Verifier): Promise<Running> {
  @Controller('products')
  class ProductsController {
    @Get()
    @RequireAuth(read)
    list(@Auth() auth: AuthInfo) {
      return answer(auth);
    }
  }
  @Module({ imports: [ResourceGuardModule.forRoot({ verifier })], controllers: [ProductsController] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  return { url: await app.getUrl(), close: () => app.close() };
}

/** node-redis as the README creates it, and the DPoP replay store on it. */
export async function redisStore(
  url: string,
): Promise<{ store: ReplayStore; keys(): Promise<unknown>; close(): Promise<void> }> {
  const client = createClient({ url, disableOfflineQueue: true });
  client.on('error', () => {}); // Redis stopped: the store's commands fail, the API answers 503
  await client.connect();
  return {
    store: redisReplayStore(client),
    keys: () => client.sendCommand(['KEYS', 'rg:dpop:*']),
    close: () => client.disconnect(),
  };
}

/** resource-guard/otel on the global meter provider of @opentelemetry/api. */
export function otel(provider: MeterProvider): Instrumentation {
  metrics.setGlobalMeterProvider(provider);
  return instrument();
}
TS
npx tsc -p tsconfig.json

cat > check.mjs <<'JS'
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import Hapi from '@hapi/hapi';
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createVerifier } from 'resource-guard';
import { resourceGuard, SCHEME } from 'resource-guard/hapi';
import * as apps from './dist/apps.js';
import { issuer, jwks, jwksUri, sign } from './local-issuer.mjs';

const audience = 'https://shopping.api';
let redisServer;
const running = () => redisServer?.exitCode === null && redisServer.signalCode === null;
process.on('exit', () => running() && redisServer.kill('SIGKILL')); // whatever went wrong
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(1));
async function stopRedis() {
  if (!running()) return;
  const exited = new Promise((resolve) => redisServer.once('exit', resolve));
  redisServer.kill('SIGKILL');
  await exited;
}
const watchdog = setTimeout(() => {
  console.error('oldest-peers: still running after 60 s');
  process.exit(1);
}, 60_000);

// The versions under test are the floors of package.json's ranges, and resource-guard itself
// resolves them (not a copy nested elsewhere). Read from the folders require() searches: hono's
// "exports" has no ./package.json.
const tested = Object.fromEntries(
  process.env.PEERS.split(' ').map((spec) => [spec.slice(0, spec.lastIndexOf('@')), spec.slice(spec.lastIndexOf('@') + 1)]),
);
const packageJson = (folder) => JSON.parse(readFileSync(`${folder}/package.json`, 'utf8'));
const { peerDependencies } = packageJson('node_modules/resource-guard');
const searched = createRequire(import.meta.resolve('resource-guard')).resolve.paths('');
const versionOf = (name) => {
  const folder = searched.find((dir) => existsSync(`${dir}/${name}/package.json`));
  return folder && packageJson(`${folder}/${name}`).version;
};
for (const [name, range] of Object.entries(peerDependencies)) {
  const floor = /^(?:>=\s*)?(\d+)(?:\.(\d+|x))?(?:\.(\d+|x))?/.exec(range);
  assert.ok(floor, `peer ${name}: no floor in "${range}"`);
  const lowest = [floor[1], floor[2], floor[3]].map((part) => (/^\d+$/.test(part) ? part : '0'));
  assert.equal(tested[name], lowest.join('.'), `peer ${name} "${range}": test its floor here`);
  assert.equal(versionOf(name), tested[name], `${name} as resource-guard resolves it`);
}
assert.deepEqual(Object.keys(tested).sort(), Object.keys(peerDependencies).sort());

/** GET over node:http (so that a header can be sent twice), bounded to 5 s. */
const get = (base, headers = {}, path = '/products') =>
  new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${base}${path}: no answer in 5 s`)));
    req.on('error', reject).end();
  });

// resource-guard/otel first, so that it sees every decision below: a meter provider that keeps
// what it is given, registered as @opentelemetry/api's global.
const instruments = new Map();
const instrument = (name) => {
  const entry = { callbacks: [], records: 0 };
  instruments.set(name, entry);
  return {
    add: () => void entry.records++,
    record: () => void entry.records++,
    addCallback: (callback) => void entry.callbacks.push(callback),
    removeCallback: () => {},
  };
};
const meter = {
  createCounter: instrument,
  createHistogram: instrument,
  createUpDownCounter: instrument,
  createObservableCounter: instrument,
  createObservableGauge: instrument,
  createObservableUpDownCounter: instrument,
  addBatchObservableCallback: () => {},
  removeBatchObservableCallback: () => {},
};
const instrumentation = apps.otel({ getMeter: () => meter });

const verifier = createVerifier({ issuer, audience, jwksUri });
const reader = `Bearer ${await sign({ scope: 'read:products' })}`;
const writer = `Bearer ${await sign({ scope: 'write:products' })}`;

/** The four answers every adapter owes. */
async function guarded(name, running) {
  try {
    const anonymous = await get(running.url);
    assert.equal(anonymous.status, 401, `${name}, no token: ${anonymous.text}`);
    assert.match(anonymous.headers['www-authenticate'], /^Bearer realm="https:\/\/shopping\.api"/);

    const ok = await get(running.url, { authorization: reader });
    assert.equal(ok.status, 200, `${name}, a reader's token: ${ok.text}`);
    assert.deepEqual(JSON.parse(ok.text), { client: 'shop-app', scopes: ['read:products'] });

    const short = await get(running.url, { authorization: writer });
    assert.equal(short.status, 403, `${name}, a token without the scope: ${short.text}`);
    assert.match(short.headers['www-authenticate'], /error="insufficient_scope"/);
    assert.match(short.headers['www-authenticate'], /scope="read:products"/);

    const twice = await get(running.url, { authorization: [reader, reader] });
    assert.equal(twice.status, 400, `${name}, two Authorization headers: ${twice.text}`);
    assert.match(twice.headers['www-authenticate'], /error="invalid_request"/);
  } finally {
    await running.close();
  }
  console.log(`  ${name}: 401 Bearer challenge, 200 auth info, 403 insufficient_scope, 400 two headers`);
}

/** Hapi 21.0.0 ships no .d.ts (its own types begin with 21.1.0): plain JS, not in src/apps.ts. */
async function hapi21() {
  const server = Hapi.server({ port: 0, host: '127.0.0.1' });
  await server.register({ plugin: resourceGuard, options: { verifier } });
  server.auth.strategy('read', SCHEME, { scopes: ['read:products'] });
  server.route({
    method: 'GET',
    path: '/products',
    options: { auth: 'read' },
    handler: (request) => apps.answer(request.auth.credentials.auth),
  });
  await server.start();
  return { url: server.info.uri, close: () => server.stop() };
}

/** Redis cannot listen on port 0: a port that was free a moment ago. */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Until PING gets +PONG, for at most 10 s. */
async function pong(port) {
  for (const deadline = Date.now() + 10_000; ; ) {
    const ok = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const answer = (ok) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1_000, () => answer(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => answer(String(data).startsWith('+PONG')));
      socket.once('error', () => answer(false));
    });
    if (ok) return;
    if (Date.now() > deadline || redisServer.exitCode !== null) {
      throw new Error(`redis-server did not answer on port ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The DPoP replay store on node-redis, in front of a real redis-server: a proof is good once. */
async function dpopOnRedis() {
  const port = await freePort();
  redisServer = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  await pong(port);
  const redis = await apps.redisStore(`redis://127.0.0.1:${port}`);
  const origin = 'https://api.shop.example';
  const api = await apps.express4(
    createVerifier({ issuer, audience, jwksUri, dpop: { origin, replay: redis.store } }),
  );
  try {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = await exportJWK(publicKey);
    const jkt = await calculateJwkThumbprint(jwk);
    const token = await sign({ scope: 'read:products', cnf: { jkt } });
    const ath = base64url.encode(createHash('sha256').update(token).digest());
    const proof = () =>
      new SignJWT({ jti: randomUUID(), htm: 'GET', htu: `${origin}/products`, ath })
        .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk })
        .setIssuedAt()
        .sign(privateKey);
    const call = (dpop) => get(api.url, { authorization: `DPoP ${token}`, dpop });

    const used = await proof();
    const first = await call(used);
    assert.equal(first.status, 200, `DPoP, a fresh proof: ${first.text}`);
    const replay = await call(used);
    assert.equal(replay.status, 401, `DPoP, the same proof again: ${replay.text}`);
    assert.equal(JSON.parse(replay.text).error, 'invalid_dpop_proof');
    assert.match(JSON.parse(replay.text).error_description, /already used/);
    assert.match(replay.headers['www-authenticate'], /DPoP realm="[^"]*", error="invalid_dpop_proof"/);
    const next = await call(await proof());
    assert.equal(next.status, 200, `DPoP, another fresh proof: ${next.text}`);
    const keys = await redis.keys();
    assert.equal(keys.length, 2, `two proofs, two keys in Redis: ${JSON.stringify(keys)}`);

    // Redis gone: refused with a 503 at once (disableOfflineQueue), never accepted unchecked.
    await stopRedis();
    const started = Date.now();
    const down = await call(await proof());
    assert.equal(down.status, 503, `DPoP, Redis stopped: ${down.text}`);
    assert.equal(JSON.parse(down.text).error, 'temporarily_unavailable');
    const waited = Date.now() - started; // queued commands would wait out replayTimeout (1 s)
    assert.ok(waited < 900, `DPoP, Redis stopped: 503 after ${waited} ms, not at once`);
    console.log(
      `  redis ${tested.redis}: a DPoP proof accepted once (a key in Redis), its replay refused (401 invalid_dpop_proof); Redis stopped: 503 in ${waited} ms`,
    );
  } finally {
    await api.close();
    await redis.close().catch(() => {}); // node-redis 4 may refuse: Redis is gone
    await stopRedis();
  }
}

try {
  await guarded(`express ${tested.express}`, await apps.express4(verifier));
  await guarded(`koa ${tested.koa} (@koa/router ${versionOf('@koa/router')})`, await apps.koa2(verifier));
  await guarded(`fastify ${tested.fastify}`, await apps.fastify5(verifier));
  await guarded(`@hapi/hapi ${tested['@hapi/hapi']} (@hapi/boom ${tested['@hapi/boom']})`, await hapi21());
  await guarded(`hono ${tested.hono} (@hono/node-server ${versionOf('@hono/node-server')})`, await apps.hono4(verifier));
  await guarded(`@nestjs/common and core ${tested['@nestjs/core']} (platform-express)`, await apps.nest11(verifier));
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0) {
    await dpopOnRedis();
  } else {
    console.warn(`  redis ${tested.redis} SKIPPED: redis-server is not installed (.ci/run installs it)`);
  }

  // resource-guard/otel saw every decision above through @opentelemetry/api's global.
  const observed = [];
  for (const callback of instruments.get('resource_guard.decisions').callbacks) {
    callback({ observe: (value, attributes) => observed.push({ value, ...attributes }) });
  }
  for (const name of ['resource_guard.keys.state', 'resource_guard.jwks.keys']) {
    for (const callback of instruments.get(name).callbacks) callback({ observe() {} });
  }
  const count = (key, value) =>
    observed.filter((o) => o[key] === value).reduce((sum, o) => sum + o.value, 0);
  // Six adapters: one acceptance and three refusals each (the DPoP requests come on top).
  assert.ok(count('resource_guard.outcome', 'accepted') >= 6, JSON.stringify(observed));
  for (const reason of ['missing_token', 'insufficient_scope', 'multiple_credentials']) {
    assert.ok(count('resource_guard.reason', reason) >= 6, JSON.stringify(observed));
  }
  assert.ok(instruments.get('resource_guard.decision.duration').records > 0);
  assert.ok(instruments.get('resource_guard.jwks.fetches').records > 0);
  console.log(
    `  @opentelemetry/api ${tested['@opentelemetry/api']}: resource-guard/otel counted ${count('resource_guard.outcome', 'accepted')} acceptances and ${count('resource_guard.outcome', 'refused')} refusals`,
  );
} finally {
  instrumentation.stop();
  jwks.close();
  clearTimeout(watchdog);
}
JS
PEERS="${peers[*]}" timeout 90 node check.mjs
