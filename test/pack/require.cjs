// CommonJS: require() of every subpath of the packed package (Node >= 20.19 loads ES modules
// synchronously through require when their graph has no top-level await).
'use strict';
/* eslint-disable @typescript-eslint/no-require-imports -- require() is what this file checks */
const assert = require('node:assert/strict');

const { exports: subpaths } = require('resource-guard/package.json');
const names = Object.keys(subpaths)
  .filter((subpath) => subpath !== './package.json')
  .map((subpath) => `resource-guard${subpath.slice(1)}`);
assert.deepEqual(names, [
  'resource-guard',
  'resource-guard/kit',
  'resource-guard/express',
  'resource-guard/koa',
  'resource-guard/fastify',
  'resource-guard/nestjs',
  'resource-guard/hapi',
  'resource-guard/hono',
  'resource-guard/redis',
  'resource-guard/testing',
  'resource-guard/otel',
]);

const loaded = Object.fromEntries(names.map((name) => [name, require(name)]));
const core = loaded['resource-guard'];
assert.equal(typeof core.createVerifier, 'function');
assert.equal(typeof core.AuthError, 'function');
assert.equal(typeof core.logto, 'function');
for (const adapter of ['express', 'koa', 'fastify']) {
  assert.equal(typeof loaded[`resource-guard/${adapter}`].requireAuth, 'function', adapter);
}
assert.equal(typeof loaded['resource-guard/fastify'].resourceGuard, 'function');
assert.equal(typeof loaded['resource-guard/kit'].routeGuard, 'function');
assert.equal(typeof loaded['resource-guard/nestjs'].ResourceGuardModule, 'function');
assert.equal(typeof loaded['resource-guard/hono'].requireAuth, 'function');
assert.equal(typeof loaded['resource-guard/hapi'].resourceGuard, 'object');
assert.equal(typeof loaded['resource-guard/testing'].createTestIssuer, 'function');
assert.equal(typeof loaded['resource-guard/otel'].instrument, 'function');
assert.equal(typeof loaded['resource-guard/redis'].redisReplayStore, 'function');
assert.equal(typeof core.MemoryReplayStore, 'function');

// The same module instances as import(): one key cache, one AuthError class.
const verifier = core.createVerifier({
  issuer: 'https://tenant.example.test/oidc',
  audience: 'https://shopping.api',
});
Promise.all([import('resource-guard'), verifier.verify('opaque').catch((error) => error)])
  .then(([esm, error]) => {
    assert.equal(esm.AuthError, core.AuthError);
    assert.ok(error instanceof core.AuthError);
    assert.equal(error.reason, 'opaque_token');
    console.log(`require: ok (${names.join(', ')})`);
  })
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
