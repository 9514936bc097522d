/**
 * A real JWKS server on loopback, fresh for every test, publishing `key`; `next` is a second key
 * for rotations. Exported as live bindings: import them and call `useKeySetFixture()` once at the
 * top of a test file.
 */
import { afterEach, beforeAll, beforeEach, vi } from 'vitest';
import { startJwksServer } from './jwks-server.ts';
import type { JwksServer } from './jwks-server.ts';
import { makeKey } from './keys.ts';
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
