/** A verifier from a static key set (no network): JWKs, or PEM public keys. */
import { createPublicKey } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import { outcome } from './helpers/outcome.ts';
import { AUDIENCE, ISSUER, makeKey, mint } from './helpers/keys.ts';

describe('the jwks option', () => {
  it('verifies with the given keys and never touches the network', async () => {
    const key = await makeKey('ES384');
    const fetch = vi.fn(globalThis.fetch);
    const verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { keys: [key.jwk] },
      fetch,
    });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
    const stranger = await makeKey('ES384');
    expect(await outcome(verifier.verify(await mint(stranger)))).toBe('401 unknown_kid');
    expect(fetch).not.toHaveBeenCalled();
  });

  it('takes PEM public keys; the kid is the RFC 7638 thumbprint, as Logto names its keys', async () => {
    const key = await makeKey('RS256'); // kid = thumbprint
    const pem = createPublicKey({ key: key.jwk as never, format: 'jwk' })
      .export({ type: 'spki', format: 'pem' })
      .toString();
    const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, jwks: { keys: [pem] } });
    expect(await outcome(verifier.verify(await mint(key)))).toBe('ok');
  });

  it('is checked at start-up: private or symmetric keys only, bad PEM, with jwksUri', async () => {
    const key = await makeKey('ES256');
    const base = { issuer: ISSUER, audience: AUDIENCE };
    expect(() =>
      createVerifier({ ...base, jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }),
    ).toThrow(/`jwks` holds no usable public signing key/);
    expect(() =>
      createVerifier({
        ...base,
        jwks: { keys: ['-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----'] },
      }),
    ).toThrow(/`jwks.keys` item 0 is not a PEM public key/);
    expect(() => createVerifier({ ...base, jwks: { keys: [] } })).toThrow(/`jwks` must be/);
    expect(() =>
      createVerifier({ ...base, jwks: { keys: [key.jwk] }, jwksUri: 'https://x.test/jwks' }),
    ).toThrow(/two key sources/);
  });
});
