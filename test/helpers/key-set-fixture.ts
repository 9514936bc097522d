/**
 * A real JWKS server on loopback, fresh for every test, publishing `key`; `next` is a second key
 * for rotations. Exported as live bindings: import them and call `useKeySetFixture()` once at the
 * top of a test file.
 */
import { afterEach, beforeAll, beforeEach, vi } from 'vitest';
import { createVerifier } from 'resource-guard';
import type { RejectionEvent, VerifierOptions } from 'resource-guard';
import { startJwksServer } from './jwks-server.ts';
import type { JwksServer } from './jwks-server.ts';
import { AUDIENCE, ISSUER, makeKey } from './keys.ts';
import type { TestKey } from './keys.ts';

export let jwks: JwksServer;
export let key: TestKey;
export let next: TestKey;

export function useKeySetFixture(): void {
  beforeAll(async () => {
    [key, next] = await Promise.all([makeKey('ES384'), makeKey('ES384')]);
  });
  beforeEach(async () => {
    jwks = await startJwksServer([key.jwk]);
  });
  afterEach(async () => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    await jwks.close();
  });
}

/**
 * A verifier for {@link ISSUER} and {@link AUDIENCE} on the fixture's JWKS (or on
 * `options.jwksUri`, for a file with a key set of its own), with every `onRejected` event
 * collected in `events`. `options` override all of it.
 */
export function fixtureVerifier(options: Partial<VerifierOptions> = {}) {
  const events: RejectionEvent[] = [];
  const verifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: options.jwksUri ?? jwks.url,
    onRejected: (event) => events.push(event),
    ...options,
  });
  return { verifier, events };
}
