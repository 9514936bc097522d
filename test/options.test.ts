import { describe, expect, it } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';

const base: VerifierOptions = {
  issuer: 'https://tenant.example.test/oidc',
  audience: 'https://shopping.api',
};

describe('createVerifier options', () => {
  it.each([
    ['issuer', { issuer: '' }],
    ['issuer', { issuer: [] }],
    ['issuer', { issuer: 'not a url' }],
    ['audience', { audience: undefined }],
    ['audience', { audience: [''] }],
    ['jwksUri', { jwksUri: 'ftp://keys.example/jwks' }],
    ['algorithms', { algorithms: ['HS256'] }],
    ['algorithms', { algorithms: ['none'] }],
    ['algorithms', { algorithms: [] }],
    ['clockTolerance', { clockTolerance: -1 }],
    ['maxTokenAge', { maxTokenAge: Number.NaN }],
    ['keys.maxAge', { keys: { maxAge: -5 } }],
    ['keys.timeout', { keys: { timeout: 0 } }],
    ['keys.timeout', { keys: { timeout: 3e6 } }],
    ['keys', { keys: 'abc' }],
    ['jwksUri', { jwksUri: 'http://tenant.example.test/oidc/jwks' }],
    ['cache', { cache: 'big' }],
    ['cache.maxEntries', { cache: { maxEntries: -1 } }],
    ['keys.cooldown', { keys: { cooldown: Number.POSITIVE_INFINITY } }],
    ['realm', { realm: 'a"b' }],
    ['onRejected', { onRejected: 'log' }],
    ['strict', { strict: 'yes' }],
  ])('a bad `%s` is refused with an error naming it', (name, patch) => {
    expect(() => createVerifier({ ...base, ...(patch as object) } as VerifierOptions)).toThrow(
      new RegExp(`\`${name.replace('.', '\\.')}\``),
    );
  });

  it('never mutates the caller’s options and freezes what it returns', () => {
    const options = {
      ...base,
      issuer: [base.issuer as string],
      algorithms: ['ES384' as const],
      keys: { maxAge: 60 },
    };
    const snapshot = structuredClone(options);
    const verifier = createVerifier(options);
    expect(options).toEqual(snapshot);
    expect(Object.isFrozen(verifier)).toBe(true);
  });
});
