import { createVerifier } from 'resource-guard';
import type { VerifierOptions } from 'resource-guard';
import { AUDIENCE, ISSUER, makeKey } from './keys.ts';
import { clock } from './outcome.ts';

/**
 * A verifier on one static ES256 key, with `Date` faked at a whole second (`now`, in s): the
 * set-up of the tests that move the clock while (or between) verifications. `extra` gets the
 * clock, for hooks that move it.
 */
export async function onStaticKey(
  extra: (time: ReturnType<typeof clock>) => Partial<VerifierOptions> = () => ({}),
) {
  const issuerKey = await makeKey('ES256');
  const now = Math.floor(Date.now() / 1000);
  const time = clock(now * 1000);
  const verifier = createVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwks: { keys: [issuerKey.jwk] },
    ...extra(time),
  });
  return { issuerKey, now, time, verifier };
}
