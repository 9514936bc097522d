/**
 * One key, a real JWKS server on loopback and a verifier on it, shared by a whole adapter test
 * file; `token` is a valid M2M token ({@link m2mClaims}) minted with `key`. Exported as live
 * bindings: import them and call `useAdapterFixture()` once at the top of a test file.
 */
import { afterAll, beforeAll } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { Verifier, VerifierOptions } from 'resource-guard';
import { startJwksServer } from './jwks-server.ts';
import type { JwksServer } from './jwks-server.ts';
import { AUDIENCE, ISSUER, makeKey, mint } from './keys.ts';
import type { TestKey } from './keys.ts';

export let jwks: JwksServer;
export let key: TestKey;
export let verifier: Verifier;
export let token: string;

/** `options` go to `createVerifier` over issuer, audience and the server's `jwksUri`. */
export function useAdapterFixture(options: Partial<VerifierOptions> = {}): void {
  beforeAll(async () => {
    key = await makeKey();
    jwks = await startJwksServer([key.jwk]);
    verifier = createVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      jwksUri: jwks.url,
      ...options,
    });
    token = await mint(key);
  });
  afterAll(() => jwks.close());
}
