/** Waiting for a background key-set refresh to land, not just to be asked. */
import { expect } from 'vitest';

interface HasHealth {
  health(): readonly { readonly state: string }[];
}

/**
 * Resolves once every key set of every verifier is `fresh`: the JWKS was answered AND applied.
 * (Counting the server's hits only says the request arrived; on a loaded machine the response
 * can take longer than a fixed sleep to be parsed and installed.) Polls on real timers and never
 * moves a faked `Date` (`vi.waitFor` advances fake timers while it waits), for up to 5 s.
 */
export async function untilFresh(...verifiers: HasHealth[]): Promise<void> {
  const fresh = () => verifiers.every((v) => v.health().every((set) => set.state === 'fresh'));
  const deadline = performance.now() + 5000;
  while (!fresh() && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  expect(verifiers.map((v) => v.health().map((set) => set.state))).toEqual(
    verifiers.map((v) => v.health().map(() => 'fresh')),
  );
}
