// Runs inside a folder where only the packed tarball (and the frameworks) are installed.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import * as core from 'resource-guard';
import * as expressAdapter from 'resource-guard/express';
import * as koaAdapter from 'resource-guard/koa';
import * as fastifyAdapter from 'resource-guard/fastify';
import * as honoAdapter from 'resource-guard/hono';
import * as hapiAdapter from 'resource-guard/hapi';
import * as nestAdapter from 'resource-guard/nestjs';
import * as kit from 'resource-guard/kit';
import * as testing from 'resource-guard/testing';
import * as otel from 'resource-guard/otel';
import * as redisStore from 'resource-guard/redis';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import express from 'express';

assert.equal(typeof core.createVerifier, 'function');
assert.equal(typeof core.AuthError, 'function');
assert.equal(typeof core.sendAuthError, 'function');
assert.equal(typeof core.authErrorResponse, 'function');
assert.equal(typeof core.logto, 'function');
assert.equal(typeof core.sendResourceMetadata, 'function');
assert.equal(typeof expressAdapter.resourceMetadata, 'function');
assert.equal(typeof koaAdapter.resourceMetadata, 'function');
assert.equal(typeof expressAdapter.requireAuth, 'function');
assert.equal(typeof koaAdapter.requireAuth, 'function');
assert.equal(typeof fastifyAdapter.requireAuth, 'function');
assert.equal(typeof fastifyAdapter.resourceGuard, 'function');
assert.equal(typeof honoAdapter.requireAuth, 'function');
assert.equal(typeof honoAdapter.resourceMetadata, 'function');
assert.equal(typeof hapiAdapter.resourceGuard.register, 'function');
assert.equal(typeof nestAdapter.ResourceGuardModule, 'function');
assert.equal(typeof kit.routeGuard, 'function');
assert.equal(typeof testing.createTestIssuer, 'function');
assert.equal(typeof otel.instrument, 'function');
assert.equal(typeof redisStore.redisReplayStore, 'function');
// The Redis store needs no redis package at run time: it drives the client it is given.
{
  const sent = [];
  const store = redisStore.redisReplayStore({
    sendCommand: async (args) => (sent.push(args), 'OK'),
  });
  assert.equal(await store.insertIfAbsent('k', 1500), true);
  assert.deepEqual(sent, [['SET', 'rg:dpop:k', '1', 'NX', 'PX', '1500']]);
}

// A real token, a real JWKS on loopback, the Express adapter from the tarball.
const { privateKey, publicKey } = await generateKeyPair('ES384');
const jwk = await exportJWK(publicKey);
jwk.kid = await calculateJwkThumbprint(jwk);
const jwks = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
await new Promise((r) => jwks.listen(0, '127.0.0.1', r));
const issuer = 'https://tenant.example.test/oidc';
const verifier = core.createVerifier({
  issuer,
  audience: 'https://shopping.api',
  jwksUri: `http://127.0.0.1:${jwks.address().port}/jwks`,
});
const now = Math.floor(Date.now() / 1000);
const token = await new SignJWT({
  scope: 'read:products',
  client_id: 'app',
  jti: 'j',
})
  .setProtectedHeader({ alg: 'ES384', typ: 'at+jwt', kid: jwk.kid })
  .setIssuer(issuer)
  .setAudience('https://shopping.api')
  .setSubject('app')
  .setIssuedAt(now)
  .setExpirationTime(now + 60)
  .sign(privateKey);

const app = express();
app.get('/', expressAdapter.requireAuth(verifier, { scopes: ['read:products'] }), (req, res) =>
  res.json({ client: req.auth.clientId }),
);
const api = app.listen(0, '127.0.0.1');
await new Promise((r) => api.once('listening', r));
const base = `http://127.0.0.1:${api.address().port}/`;
const ok = await fetch(base, { headers: { authorization: `Bearer ${token}` } });
assert.equal(ok.status, 200);
assert.deepEqual(await ok.json(), { client: 'app' });
const denied = await fetch(base);
assert.equal(denied.status, 401);
// RFC 6750 §3: at least one auth-param; the realm defaults to the first audience.
assert.equal(denied.headers.get('www-authenticate'), 'Bearer realm="https://shopping.api"');

// One compiled core: an AuthError from any path is an instance of the exported class.
const error = await verifier.verify('opaque').catch((e) => e);
assert.ok(error instanceof core.AuthError);

api.close();
jwks.close();
console.log('smoke: ok');
