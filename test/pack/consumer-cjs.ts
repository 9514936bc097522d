// A CommonJS TypeScript consumer (its package.json has no "type": "module"): compiled with
// "module": "nodenext", the imports below become require() calls of the ESM package. Type-checked
// against the tarball's .d.ts files, then run.
import assert from 'node:assert/strict';
import { AuthError, createVerifier } from 'resource-guard';
import type { AuthInfo, VerifierOptions } from 'resource-guard';
import { requireAuth } from 'resource-guard/express';
import { requireAuth as koaAuth } from 'resource-guard/koa';
import { resourceGuard } from 'resource-guard/fastify';

const options: VerifierOptions = {
  issuer: 'https://tenant.example.test/oidc',
  audience: 'https://shopping.api',
};
const verifier = createVerifier(options);
const clientOf = (auth: AuthInfo | undefined): string | undefined => auth?.clientId;
assert.equal(typeof requireAuth(verifier, { scopes: ['read:products'] }), 'function');
assert.equal(typeof koaAuth(verifier, { errors: 'throw' }), 'function');
assert.equal(typeof resourceGuard, 'function');
assert.equal(typeof require, 'function'); // really CommonJS
assert.equal(clientOf(undefined), undefined);

verifier.verify('opaque').then(
  () => assert.fail('an opaque token verified'),
  (error: unknown) => {
    assert.ok(error instanceof AuthError);
    console.log('CommonJS TypeScript consumer: ok');
  },
);
